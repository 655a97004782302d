package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
)

// The defaults of the settings that belong to the configuration file
// itself. Every other default is defined next to the option it sets, in
// the package that runs it (proxy.DefaultLimits, clamav.DefaultMaxSize,
// audit.DefaultSyncInterval, spool.DefaultMemory, ...), and the decoder
// uses that; docs/CONFIG.md states the same values.
const (
	// DefaultFile is the configuration file read when none is named.
	DefaultFile = "config.hcl"
	// DefaultStateDir is state_dir's default, relative to the working
	// directory, when $STATE_DIRECTORY is not set.
	DefaultStateDir = "popgate-state"
	// DefaultShutdownTimeout is shutdown_timeout's default.
	DefaultShutdownTimeout = 30 * time.Second
)

// Bounds the file's values are checked against.
const (
	// rfc1939IdleMinimum is the shortest autologout timer RFC 1939
	// section 3 allows.
	rfc1939IdleMinimum = 10 * time.Minute
	// minMaxLine is the line length RFC 2449 section 4 requires servers
	// to accept; maxMaxLine is the most popgate allows.
	minMaxLine = 255
	maxMaxLine = 8192
)

// defaultLog is the log block's default: info, text.
var defaultLog = Log{Level: hclog.Info}

// builtinSource is the configuration used when no file is given and
// ./config.hcl does not exist: a plaintext listener on 127.0.0.1:1110 in
// front of a POP3 server on 127.0.0.1:110, relaying it transparently.
const builtinSource = `
listener "pop3" {
  address = "127.0.0.1:1110"
}
backend "local" {
  address = "127.0.0.1:110"
}
`

// builtinName is the file name diagnostics of the built-in configuration
// carry.
const builtinName = "<built-in>"

// Builtin returns the built-in configuration: a plaintext listener on
// 127.0.0.1:1110 in front of a POP3 server on 127.0.0.1:110. It goes
// through the same decoder as a file, so its defaults are those of a file.
func Builtin() (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	return Parse([]byte(builtinSource), builtinName)
}

// defaultStateDirectory returns state_dir's default: the first directory
// of $STATE_DIRECTORY (set by systemd's StateDirectory=) when set, else
// DefaultStateDir in the working directory.
func defaultStateDirectory() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		if i := strings.IndexByte(d, ':'); i >= 0 {
			d = d[:i]
		}
		return d
	}
	return DefaultStateDir
}

// absPath returns p made absolute against the working directory, or p
// itself if that fails.
func absPath(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
