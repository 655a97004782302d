package config

import (
	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/admin"
)

// rawAdmin is the admin block.
type rawAdmin struct {
	Socket  *string `hcl:"socket,optional"`
	Address string  `hcl:"address,optional"`
	Token   string  `hcl:"token,optional"`

	Body hcl.Body `hcl:",body"`
}

// minAdminToken is the shortest token popgate accepts without a warning.
const minAdminToken = 16

// admin converts the admin block; without one the socket still has its
// default path (admin.DefaultSocket), so the interface is always on.
func (b *builder) admin(r *rawAdmin, stateDir string, top hcl.Body) admin.Options {
	opts := admin.Options{Socket: admin.DefaultSocket(stateDir)}
	rng := attrRange(top, "state_dir") // a default socket's length comes from state_dir
	if r != nil {
		body := r.Body
		if r.Socket != nil {
			rng = attrRange(body, "socket")
			if *r.Socket == "" {
				b.errorf(rng, "Invalid socket", "socket must not be empty.")
			} else {
				opts.Socket, opts.SocketSet = absPath(*r.Socket), true
			}
		}
		opts.Address, opts.Token = r.Address, r.Token
		if r.Address != "" {
			b.address(body, "address", r.Address, false, true)
			if r.Token == "" {
				b.errorf(attrRange(body, "address"), "Admin address without token",
					"The admin interface on TCP %q needs a token: set token too.", r.Address)
			}
		}
		if r.Token != "" && len(r.Token) < minAdminToken {
			b.warnf(attrRange(body, "token"), "Short admin token",
				"The admin token has %d characters; use at least %d random ones.", len(r.Token), minAdminToken)
		}
	}
	if len(opts.Socket) > admin.MaxSocketPath {
		b.errorf(rng, "Admin socket path too long",
			"The admin socket %q is %d octets long; a unix socket path holds at most %d. Set admin { socket = \"...\" } to a shorter path.",
			opts.Socket, len(opts.Socket), admin.MaxSocketPath)
	}
	return opts
}
