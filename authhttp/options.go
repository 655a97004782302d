package authhttp

import (
	"time"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one request, waiting for a slot included.
	// nginx's default is 60s; a login that waits that long has long been
	// given up by the client, so popgate's is shorter.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxInFlight is the default bound on requests in flight and
	// on connections to the service.
	DefaultMaxInFlight = 32
	// DefaultCacheEntries bounds the answer cache.
	DefaultCacheEntries = 10000
	// MaxWaitRounds is how often an Auth-Status: WAIT answer is followed
	// before the login fails with ErrService.
	MaxWaitRounds = 3
	// MaxWait caps one Auth-Wait delay.
	MaxWait = 30 * time.Second
)

// Options configure a Client. The zero value of every field but URL means
// its default.
type Options struct {
	// URL is the service's http:// or https:// URL.
	URL string
	// Timeout bounds one request, from asking for a slot to the last
	// header of the answer; 0 means DefaultTimeout.
	Timeout time.Duration
	// Headers are sent with every request (nginx's auth_http_header),
	// e.g. a shared key. Their values are secrets: never logged.
	Headers map[string]string
	// CacheTTL keeps OK answers this long; 0 disables the cache.
	CacheTTL time.Duration
	// CacheEntries bounds the cache; 0 means DefaultCacheEntries.
	CacheEntries int
	// MaxInFlight bounds the requests in flight and the connections to
	// the service; 0 means DefaultMaxInFlight.
	MaxInFlight int
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.CacheEntries <= 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	return o
}
