package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/popgate/popgate/tlsconf"
)

// Options configures the connection to Redis: the cluster block.
type Options struct {
	// Redis is the server's URL: unix:///path/to/socket (with an
	// optional ?db=N), redis://host:port/db, or rediss://host:port/db
	// for TLS. It carries no password (CheckURL refuses one); an ACL
	// user name is allowed.
	Redis string
	// PasswordFile holds the password (the first line); "" means none.
	PasswordFile string
	// TLSCAFile verifies a rediss:// server; "" means the system roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a client certificate for rediss://.
	TLSCertFile, TLSKeyFile string
	// Instance names this instance in leases and logs; never "" (config
	// defaults it to the hostname).
	Instance string
	// Timeout bounds every Redis call; 0 means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds one Redis call when Options.Timeout is zero: long
// enough for a round trip across a data centre, short enough that a login
// never notices a dead Redis more than once.
const DefaultTimeout = 500 * time.Millisecond

// ErrPasswordInURL is CheckURL's error for a URL with a password.
var ErrPasswordInURL = errors.New("the URL holds a password; put it in password_file instead")

// CheckURL validates a Redis URL the way New will use it. It refuses a
// password inside the URL, which would end up in process listings,
// configuration backups and error texts: the password goes in a file.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		if userPassword(raw) {
			return ErrPasswordInURL
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL
		}
		return fmt.Errorf("not a URL: %w", err)
	}
	if _, has := u.User.Password(); has {
		return ErrPasswordInURL
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return errors.New("unix:// needs the socket's absolute path, as in unix:///run/redis/redis-server.sock")
		}
	case "redis", "rediss":
		if u.Host == "" {
			return fmt.Errorf("%s:// needs a host, as in %s://127.0.0.1:6379/0", u.Scheme, u.Scheme)
		}
	default:
		return fmt.Errorf("scheme %q is not unix, redis or rediss", u.Scheme)
	}
	if _, err := redis.ParseURL(raw); err != nil {
		return fmt.Errorf("not a Redis URL: %w", redacted(err, raw))
	}
	return nil
}

// userPassword reports whether raw, a URL that does not parse, seems to
// hold user info with a password (scheme://user:password@...): its
// error must then name neither the URL nor the line it is on.
func userPassword(raw string) bool {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return false
	}
	// The password may hold '/' or '@' itself: look up to the last '@'.
	i := strings.LastIndexByte(rest, '@')
	return i >= 0 && strings.Contains(rest[:i], ":")
}

// redisOptions turns o into go-redis options: the URL, the password read
// from its file, the TLS configuration and the timeouts.
func (o *Options) redisOptions() (*redis.Options, error) {
	if err := CheckURL(o.Redis); err != nil {
		return nil, fmt.Errorf("cluster: redis: %w", err)
	}
	ro, err := redis.ParseURL(o.Redis)
	if err != nil {
		return nil, fmt.Errorf("cluster: redis: %w", redacted(err, o.Redis))
	}
	if o.PasswordFile != "" {
		data, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: reading password_file: %w", err)
		}
		pw, _, _ := strings.Cut(string(data), "\n")
		ro.Password = strings.TrimRight(pw, "\r")
	}
	if ro.TLSConfig != nil || o.TLSCAFile != "" || o.TLSCertFile != "" {
		host := ""
		if u, err := url.Parse(o.Redis); err == nil {
			host = u.Hostname()
		}
		c, err := tlsconf.ClientConfig(host, o.TLSCAFile, false, tls.VersionTLS12)
		if err != nil {
			return nil, fmt.Errorf("cluster: redis TLS: %w", err)
		}
		if o.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("cluster: redis TLS client certificate: %w", err)
			}
			c.Certificates = []tls.Certificate{cert}
		}
		ro.TLSConfig = c
	}
	t := o.timeout()
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout, ro.PoolTimeout = t, t, t, t
	ro.ContextTimeoutEnabled = true
	ro.MaxRetries = -1 // a retry doubles the wait of a session; the caller falls back instead
	ro.DialerRetries = 1
	ro.DisableIdentity = true // no CLIENT SETINFO round trips on connect
	ro.MinIdleConns = 2
	ro.PoolSize = poolSize
	return ro, nil
}

// poolSize bounds the connections to Redis: one per login in flight, and
// a login holds one for a single round trip.
const poolSize = 64

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

// redacted keeps raw (which may hold a user name) out of an error text.
func redacted(err error, raw string) error {
	if raw == "" {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), raw, "<url>"))
}
