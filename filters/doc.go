// Package filters is popgate's filter chain: the policy layer between a
// client session and its backend.
//
// A filter is a named value (Filter) that takes part in exchanges through
// small optional interfaces, in the manner of CoreDNS's plugins and
// caddy-l4's handlers, but split in two sides so that a pipelined session
// needs no goroutine per exchange:
//   - CommandFilter sees each command before it goes to the backend, in
//     order: it may rewrite Exchange.Out or answer locally;
//   - ResponseFilter sees each answer before it goes to the client, in
//     order, innermost filter first: it may change the answer or wrap its
//     Body;
//   - Exclusive asks for an exchange to run alone, with an
//     Exchange.Backend for extra round trips (APOP's USER before PASS,
//     audit's one UIDL listing, policy's one LIST);
//   - Finisher learns when an exchange is over, with what the other
//     filters put on it (Verdict).
//
// Chain holds a listener's filters in configuration order and runs the
// two sides; the proxy decides on which goroutine.
//
// Contracts:
//   - Filters never touch a socket. Only the session writes to the client;
//     filters return a *parser.Error or set Exchange.Response to answer.
//   - Exchange.Command is the client's original command and is never
//     edited, so audit logs show both it and Exchange.Out.
//   - The session is the only writer of Session.Login; a filter that
//     learns a login name the session cannot see sets Exchange.User.
//   - The Command side of one exchange may run while the Response side of
//     an earlier one streams its body: per-session state used by both
//     sides must be synchronised.
//   - Secrets are never logged: use parser.Command.Redacted.
//
// The configured filters live in sub-packages: audit, apop, rewrite, clamav
// and policy; filtertest runs a chain the way the session does, for their
// tests.
package filters
