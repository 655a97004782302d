// Package rewrite is popgate's rewrite filter: it edits the login name
// before routing and before the backend login, so clients may log in as
// "Alice@Example.org" to a backend that knows "alice", or the reverse.
//
// Rules, for a login L:
//
//  1. Map file: if the lower-cased L is a login of the map, the mapped
//     backend login is used verbatim and no other rule applies.
//  2. Otherwise, in this order: Lowercase lower-cases L; StripDomain
//     removes everything from the last '@' on; AddDomain appends
//     "@" + AddDomain when the result has no '@'. StripDomain with
//     AddDomain thus replaces the domain.
//
// A result that is empty (StripDomain leaving nothing counts, even with
// AddDomain), longer than MaxLoginLength (248 octets, so a
// USER line fits RFC 2449's 255-octet limit), not UTF-8, or holding white
// space or a control character is refused: the login fails with
// "-ERR [AUTH] authentication failed" (RFC 3206) and nothing reaches the
// backend.
//
// Map file format: one mapping per line, "login backend-login", two
// fields separated by spaces or tabs, for example
//
//	# client login        backend login
//	alice@example.org     a.smith
//	Bob                   bob@legacy.example.org
//
// Logins are matched case-insensitively (the map's logins are lower-cased
// when read); backend logins are used exactly as written. Blank lines and
// lines whose first non-blank character is '#' are ignored, a CR before
// the LF is dropped, and lines are at most 1024 octets. A line with other
// than two fields, a login ending in ':' ("login: backend" is not the
// format), an unusable login or backend login, or a login mapped twice
// refuses the whole file, with an error naming file and line. Reload
// reads the file again (SIGHUP) and keeps the old map if the new file is
// refused.
//
// Where it acts:
//
//   - After-auth mode (filters.Session.AfterAuth): the filter implements
//     filters.LoginRewriter. The session calls RewriteLogin once the
//     client has given its credentials, by any mechanism (USER/PASS, SASL,
//     or APOP and CRAM-MD5 through the apop filter), before routing. It
//     rewrites Login.BackendUser (which starts as the client's login, or
//     holds an earlier rewriter's result) and never Login.User, which
//     stays the client's login for the audit trail. The Command side does
//     nothing there.
//   - On-accept mode: the client logs in to the backend directly, so the
//     Command side (filters.CommandFilter) rewrites the login name (first
//     argument) of USER and APOP in Exchange.Out in the AUTHORIZATION
//     state; Exchange.Command keeps the client's. An unusable result is
//     answered "-ERR [AUTH] authentication failed" (a *parser.Error) and
//     nothing is sent. An APOP digest is computed by the client over its
//     secret only, so a rewritten APOP login succeeds only if the backend
//     holds the same secret under the rewritten name; otherwise the backend
//     refuses it, as expected. SASL (AUTH) commands pass the Command side
//     unchanged: the session, which follows the SASL exchange, calls
//     RewriteLogin for the login name inside the client's response (AUTH
//     PLAIN, the user step of AUTH LOGIN, the user part of CRAM-MD5).
//
// Contracts:
//   - The filter keeps no per-session state and makes no extra round
//     trips: it is never exclusive and does not slow a pipeline.
//   - It never writes filters.Session.Login (the session is its only
//     writer): it edits Exchange.Out, or the *filters.Login the session
//     hands to RewriteLogin.
package rewrite
