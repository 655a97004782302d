// Package metrics records what popgate does, for Prometheus, and serves
// it over HTTP with a health report of the backends:
//
//   - /metrics: the Prometheus text exposition of popgate's metrics
//     (sessions, logins, commands, octets, backend dials, scanner
//     verdicts, throttling, reloads, lost audit records) and the Go and
//     process collectors;
//   - /healthz: JSON saying whether each backend of the running
//     configuration was reachable recently (the last real connection
//     within 30 seconds, else a fresh TCP probe); 503 when one is not;
//   - /status: a read-only HTML page for people (status.go): sessions by
//     listener and backend, backend health, logins, failures and
//     throttling over the last 15 minutes (status_window.go), scanner
//     verdicts and certificate expiry. Off loopback it needs the admin
//     token; /metrics and /healthz never do.
//
// The proxy feeds it through proxy.Hooks (Server.Hooks), which include
// the scanner verdicts that travel on each exchange. Every label is either
// the name of something configured (listener, backend, filter), which the
// configuration bounds, or a value from a fixed set documented in
// docs/CONFIG.md; anything else is counted as "other", so no client can
// create series. A test keeps the sets and the documentation in step.
package metrics
