package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
)

// Defaults of the configuration; docs/CONFIG.md states the same values.
const (
	defaultConfigFile      = "config.hcl"
	defaultStateDir        = "popgate-state"
	defaultShutdownTimeout = 30 * time.Second

	defaultConnectTimeout = 10 * time.Second
	defaultACMEDirectory  = "https://acme-v02.api.letsencrypt.org/directory"
	defaultACMEHTTPPort   = 80
	defaultACMEALPNPort   = 443

	defaultClamAVAddress     = "tcp://127.0.0.1:3310"
	defaultClamAVMaxSize     = 25 << 20 // clamd's default StreamMaxLength
	defaultClamAVTimeout     = 60 * time.Second
	defaultClamAVSpoolMemory = 1 << 20
	defaultClamAVMaxScans    = 10 // clamd's default MaxThreads
	defaultClamAVScanWait    = 10 * time.Second

	defaultSpoolMemory = 256 << 20
	defaultSpoolDisk   = 4 << 30

	// rfc1939IdleMinimum is the shortest autologout timer RFC 1939
	// section 3 allows.
	rfc1939IdleMinimum = 10 * time.Minute
	// minMaxLine is the line length RFC 2449 section 4 requires servers
	// to accept; maxMaxLine is the most popgate allows.
	minMaxLine = 255
	maxMaxLine = 8192
)

// defaultLimits are the top-level limits when the file sets none.
var defaultLimits = LimitsConfig{
	MaxSessions:      10000,
	MaxSessionsPerIP: 50,
	MaxLine:          minMaxLine,
	MaxErrors:        5,
	MaxAuthTries:     3,
	PreloginTimeout:  60 * time.Second,
	IdleTimeout:      rfc1939IdleMinimum,
	WriteTimeout:     60 * time.Second,
	BackendTimeout:   60 * time.Second,
	HandshakeTimeout: 15 * time.Second,
	PipelineDepth:    128,
	IPv6Prefix:       64,
}

// defaultLog is the log block's default: info, text.
var defaultLog = LogConfig{Level: hclog.Info}

// defaultTLSMinVersion is the oldest TLS version listeners accept.
const defaultTLSMinVersion = tls.VersionTLS12

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

// builtinConfig returns the built-in configuration. It goes through the
// same decoder as a file, so its defaults are those of a file.
func builtinConfig() (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	return parseConfig([]byte(builtinSource), builtinName)
}

// defaultStateDirectory returns state_dir's default: the first directory
// of $STATE_DIRECTORY (set by systemd's StateDirectory=) when set, else
// popgate-state in the working directory.
func defaultStateDirectory() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		if i := strings.IndexByte(d, ':'); i >= 0 {
			d = d[:i]
		}
		return d
	}
	return defaultStateDir
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
