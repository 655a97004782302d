package admin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Options configures the admin interface. config fills it from the admin
// block.
type Options struct {
	// Socket is the unix socket's path; never "" once configured. Its
	// default is DefaultSocket's.
	Socket string
	// SocketSet is true when the admin block named the socket: then the
	// CLI looks only there.
	SocketSet bool
	// Address is an optional TCP host:port also serving the API; "" for
	// none.
	Address string
	// Token is the bearer token TCP requests must carry; required with
	// Address. A secret: never log it.
	Token string
}

// SocketName is the socket's file name in its default directory.
const SocketName = "admin.sock"

// MaxSocketPath is the longest socket path, in octets, a unix socket
// address holds (sun_path is 108 octets with its terminating NUL).
const MaxSocketPath = 107

// DefaultSocket is the socket's default path: admin.sock in systemd's
// $RUNTIME_DIRECTORY (its first entry) when that is set, else in
// stateDir.
func DefaultSocket(stateDir string) string {
	if d := runtimeDirectory(); d != "" {
		return filepath.Join(d, SocketName)
	}
	return filepath.Join(stateDir, SocketName)
}

// UnitSocket is where the shipped systemd unit's popgate puts its socket
// (RuntimeDirectory=popgate).
const UnitSocket = "/run/popgate/" + SocketName

// SocketCandidates lists where a client looks for the socket, in order:
// only Socket when the configuration named it; else the default path as
// this process computes it, then stateDir's admin.sock and the unit's
// /run/popgate/admin.sock, so a shell without $RUNTIME_DIRECTORY finds
// the socket of a popgate systemd started.
func (o Options) SocketCandidates(stateDir string) []string {
	if o.SocketSet {
		return []string{o.Socket}
	}
	var out []string
	for _, p := range []string{o.Socket, filepath.Join(stateDir, SocketName), UnitSocket} {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func runtimeDirectory() string {
	d := os.Getenv("RUNTIME_DIRECTORY")
	if i := strings.IndexByte(d, ':'); i >= 0 {
		d = d[:i]
	}
	return d
}
