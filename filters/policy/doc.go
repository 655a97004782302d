// Package policy is popgate's policy filter: it refuses commands an
// administrator has denied and messages over a size limit, before they
// reach the backend.
//
// Denied commands (Config.Deny) are answered "-ERR <VERB> not permitted by
// policy" by the filter itself; the backend never sees them. The answer
// carries no response code: RFC 3206's [SYS/PERM] announces a permanent
// system failure, which makes clients abandon the session or alarm the
// user, whereas RFC 1939 section 3 answers a command the server will not
// perform with a plain -ERR. Denying RETR denies TOP as well, since
// "TOP n 9999999999" sends the whole message (RFC 1939 section 7); there is
// no way to deny RETR and allow TOP. Denying TOP alone leaves RETR allowed.
// QUIT cannot be denied (New refuses it): a client must always be able to
// end its session (RFC 1939 section 6). CAPA answers (RFC 2449 section 6)
// lose the lines that announce a denied command, so clients do not try it:
// the tag of the command itself (TOP, UIDL, ...), SASL for AUTH (RFC 5034),
// USER for USER or PASS.
//
// The filter sees only the commands the session passes to the filter chain
// (proxy.ReachesFilters). The session performs STLS itself and refuses
// commands it does not know, so a Deny entry for them would never be
// consulted; main's validation refuses STLS there.
//
// Denied commands are answered on the Command side of the chain
// (filters.CommandFilter); CAPA answers are filtered on the Response side
// (filters.ResponseFilter), which wraps the body and streams it.
//
// With Config.MaxMessageSize, RETR n and TOP n k are checked against the
// backend's scan listing (RFC 1939 section 5), read once per session: the
// first RETR or TOP whose message size the session has not cached runs
// alone (filters.Exclusive) and sends one full LIST through
// Exchange.Backend, and the whole listing is cached; every later RETR or
// TOP of a listed message is checked from the cache on the Command side
// and stays pipelined. The sizes of a session's messages never change, so
// the cache holds for the session. A message the listing does not name
// (no such message, or one marked as deleted, which RSET may bring back)
// is never cached as missing: it is asked for with "LIST n", alone, each
// time, and its -ERR is the answer to the RETR or TOP, as before; its size,
// once known, is cached. A message whose size is over the limit is
// answered "-ERR message too large for this mailbox policy" and the RETR
// or TOP is not sent. The size is the backend's LIST size, which servers
// compute in their own way (Dovecot's differs from the octets RETR sends
// by dot-stuffing and line endings): the limit is a policy on the
// mailbox's own account of its messages, not a count of octets on the
// wire. TOP is checked like RETR whatever its line count, TOP n 0
// included: what it sends (the header and up to k lines) cannot be
// bounded before it is sent, since a header may be as large as the
// message, and cutting the answer short would make a truncated message
// look complete. A client previewing an oversized message gets the same
// -ERR as for RETR.
//
// Contracts:
//   - The filter implements filters.Exclusive for a RETR or TOP under a
//     size limit whose size the session's cache does not hold, and for
//     nothing else, so that a session pays one drained pipeline for its
//     listing, not one per message. The cache keeps two bits per message,
//     up to message number 4194304 (1 MiB per session at most); a message
//     numbered above that is asked for with "LIST n" each time.
//   - A RETR whose argument is not exactly one message number, or a TOP
//     whose arguments are not a message number and a line count, is
//     refused by the filter, so that no argument form can pass the check
//     and be read differently by the backend.
//   - The LIST round trips are the filter's own (Exchange.Backend): the
//     exchange's Out stays the client's RETR or TOP, not sent when
//     refused.
//   - A malformed listing (any line that is not "msg size ...") or a
//     malformed answer to "LIST n" fails the RETR or TOP with
//     -ERR [SYS/TEMP] and caches nothing; a -ERR answer to either LIST is
//     passed on as the answer to the RETR or TOP and caches nothing. A
//     LIST that fails on the wire ends the session. A size that is not
//     cached on an exchange without a Backend (one the session did not
//     run alone) is refused -ERR [SYS/TEMP], never sent unchecked.
//   - A message marked as deleted keeps its cached size: a RETR of it over
//     the limit is answered "too large" rather than by the backend's
//     "already deleted"; both are -ERR.
//   - The size check and deny apply to the client's command
//     (Exchange.Command); an exchange an outer filter turned into another
//     verb (Out edited) passes untouched.
//   - The size cache is per session and per filter instance
//     (filters.Session values); only the Command side and Exclusive, on
//     the session's reading goroutine, use it, and it is locked anyway.
package policy
