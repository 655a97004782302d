// Package filters is popgate's filter chain: the policy layer between a
// client session and its backend.
//
// The chain has the shape of CoreDNS's plugin chain and caddy-l4's
// handlers: one small Handler interface, a HandlerFunc adapter, and
// Middleware values (func(next Handler) Handler) chained in the order the
// configuration lists them. The proxy owns the innermost Handler, which
// sends Exchange.Out to the backend (or, before login, plays the POP3 server)
// and fills in Exchange.Response and Exchange.Body.
//
// Contracts:
//   - Filters never touch a socket. Only the session writes to the client;
//     filters return an *parser.Error or set Exchange.Response to answer.
//   - A filter may rewrite Exchange.Out, answer locally without calling
//     next, call next several times (APOP becomes USER then PASS), or wrap or
//     replace the response and its Body. Exchange.Command is the client's
//     original command and is never edited, so audit logs show both.
//   - A filter that may call next more than once for a command implements
//     Exclusive; the session then runs that exchange without pipelining.
//   - Secrets are never logged: use parser.Command.Redacted.
//
// The configured filters live in sub-packages: audit, apop, rewrite, clamav
// and policy.
package filters
