package config

import (
	"errors"
	"os"
	"time"

	"github.com/popgate/popgate/cluster"
)

// cluster converts the cluster block; nil without one.
func (b *builder) cluster(r *rawCluster) *cluster.Options {
	if r == nil {
		return nil
	}
	body := r.Body
	o := &cluster.Options{
		Redis:        r.Redis,
		PasswordFile: r.PasswordFile,
		TLSCAFile:    r.TLSCAFile,
		TLSCertFile:  r.TLSCertFile,
		TLSKeyFile:   r.TLSKeyFile,
	}
	if err := cluster.CheckURL(r.Redis); errors.Is(err, cluster.ErrPasswordInURL) {
		// Pointed at the block, not at the value: the diagnostic's
		// source snippet (printed, and logged by a refused reload) must
		// not show the password.
		rng := attrRange(body, "redis")
		b.errorf(body.MissingItemRange(), "Invalid redis",
			"The redis URL on line %d holds a password; put the password in password_file and leave it out of the URL.", rng.Start.Line)
	} else if err != nil {
		// The URL itself is not repeated: it may hold a user name.
		b.errorf(attrRange(body, "redis"), "Invalid redis", "The Redis URL is not usable: %v.", err)
	}
	for _, f := range []struct{ name, file string }{
		{"password_file", r.PasswordFile}, {"tls_ca_file", r.TLSCAFile},
		{"tls_cert_file", r.TLSCertFile}, {"tls_key_file", r.TLSKeyFile},
	} {
		if f.file != "" {
			b.fileExists(body, f.name, f.file)
		}
	}
	if (r.TLSCertFile == "") != (r.TLSKeyFile == "") {
		b.errorf(body.MissingItemRange(), "Incomplete client certificate", "tls_cert_file and tls_key_file go together.")
	}
	if r.Instance != nil {
		o.Instance = *r.Instance
		if o.Instance == "" || !validHost(o.Instance) {
			b.errorf(attrRange(body, "instance"), "Invalid instance", "instance must be a non-empty name of letters, digits, dots and dashes; leave it out to use the hostname.")
		}
	} else {
		o.Instance = defaultInstance()
	}
	o.Timeout = b.duration(body, "timeout", r.Timeout, cluster.DefaultTimeout)
	if r.Timeout != nil && (o.Timeout < 10*time.Millisecond || o.Timeout > 10*time.Second) {
		// Every login may wait this long once when Redis goes away.
		b.errorf(attrRange(body, "timeout"), "Invalid timeout", "timeout must be between 10ms and 10s; a login may wait this long when Redis goes away.")
	}
	return o
}

// defaultInstance is the hostname, or "popgate" when it is unknown.
func defaultInstance() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "popgate"
}

// topLevelOnly refuses limits that only make sense for the whole process
// inside a listener's limits block.
func (b *builder) topLevelOnly(raw *rawFile) {
	for _, l := range raw.Listeners {
		if l.Limits != nil && l.Limits.MaxSessionsPerUser != nil {
			b.errorf(attrRange(l.Limits.Body, "max_sessions_per_user"), "Top-level limit",
				"max_sessions_per_user counts a user's sessions across all listeners (and the cluster); set it in the top-level limits block.")
		}
	}
}
