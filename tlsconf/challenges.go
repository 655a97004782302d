package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/go-hclog"
)

// challengeServers answer HTTP-01 and TLS-ALPN-01 validations for as long
// as the manager runs, not only while this instance solves a challenge:
// with a storage shared by several instances the CA may reach any of them,
// and certmagic's distributed solving finds the token in the storage. The
// acmeManager owns them and closes them in stop.
type challengeServers struct {
	http *http.Server
	alpn net.Listener
	done chan struct{}
}

// startChallengeServers binds the challenge ports on a.ListenHost. A port
// that cannot be bound (in use by a listener of popgate's own, which
// answers TLS-ALPN-01 too, or by another server) is logged and skipped.
func startChallengeServers(a *ACME, issuer *certmagic.ACMEIssuer, alpn *tls.Config, log hclog.Logger) *challengeServers {
	cs := &challengeServers{done: make(chan struct{})}
	httpPort, alpnPort := a.HTTPPort, a.TLSALPNPort
	if httpPort == 0 {
		httpPort = certmagic.HTTPChallengePort
	}
	if alpnPort == 0 {
		alpnPort = certmagic.TLSALPNChallengePort
	}
	httpAddr := net.JoinHostPort(a.ListenHost, strconv.Itoa(httpPort))
	if ln, err := net.Listen("tcp", httpAddr); err != nil {
		log.Warn("cannot listen for HTTP-01 challenges; another instance or server must answer them", "address", httpAddr, "error", err)
	} else {
		cs.http = &http.Server{
			Handler:           issuer.HTTPChallengeHandler(http.NotFoundHandler()),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug}),
		}
		go cs.http.Serve(ln)
		log.Info("answering HTTP-01 challenges from the shared storage", "address", httpAddr)
	}
	alpnAddr := net.JoinHostPort(a.ListenHost, strconv.Itoa(alpnPort))
	if ln, err := net.Listen("tcp", alpnAddr); err != nil {
		log.Warn("cannot listen for TLS-ALPN-01 challenges; another instance or server must answer them", "address", alpnAddr, "error", err)
		close(cs.done)
	} else {
		cs.alpn = ln
		go cs.serveALPN(ln, alpn)
		log.Info("answering TLS-ALPN-01 challenges from the shared storage", "address", alpnAddr)
	}
	return cs
}

// serveALPN completes TLS-ALPN-01 handshakes (RFC 8737): the validation
// is the handshake itself; the connection is closed after it.
func (cs *challengeServers) serveALPN(ln net.Listener, conf *tls.Config) {
	defer close(cs.done)
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go func() {
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tls.Server(c, conf).HandshakeContext(ctx)
		}()
	}
}

// close stops both servers.
func (cs *challengeServers) close() {
	if cs == nil {
		return
	}
	if cs.http != nil {
		cs.http.Close()
	}
	if cs.alpn != nil {
		cs.alpn.Close()
	}
	<-cs.done
}
