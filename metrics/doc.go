// Package metrics records what popgate does, for Prometheus, and serves
// it over HTTP with a health report of the backends:
//
//   - /metrics: the Prometheus text exposition of popgate's metrics
//     (sessions, logins, commands, octets, backend dials, scanner
//     verdicts, throttling, reloads, lost audit records) and the Go and
//     process collectors;
//   - /healthz: JSON for operators saying whether each backend of the
//     running configuration was reachable recently (the last real
//     connection within 30 seconds, else a fresh TCP probe), the state of
//     every part registered with SetHealthPart, the parts that are
//     degraded by name, and the readiness; 503 when anything is degraded;
//   - /readyz: for load balancers, 200 while the instance accepts
//     sessions, 503 before its listeners are bound and from the moment a
//     SIGTERM drain starts (ready.go). A degraded part never makes it 503,
//     so a Redis or backend outage cannot make a load balancer drop every
//     instance at once;
//   - /status: a read-only HTML page for people (status.go): sessions by
//     listener and backend, backend health, logins, failures and
//     throttling over the last 15 minutes (status_window.go), scanner
//     verdicts and certificate expiry. Off loopback it needs the admin
//     token; /metrics, /healthz and /readyz never do.
//
// The proxy feeds it through proxy.Hooks (Server.Hooks), which include
// the scanner verdicts that travel on each exchange. Every label is either
// the name of something configured (listener, backend, filter), which the
// configuration bounds, or a value from a fixed set documented in
// docs/CONFIG.md; anything else is counted as "other", so no client can
// create series. A test keeps the sets and the documentation in step.
package metrics
