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
// With Config.MaxMessageSize, RETR n and TOP n k are preceded by "LIST n"
// on the same exchange (RFC 1939 section 5); a message whose listed size is
// over the limit is answered "-ERR message too large for this mailbox
// policy" and the RETR or TOP is not sent. The size is the backend's LIST
// size, which servers compute in their own way (Dovecot's differs from the
// octets RETR sends by dot-stuffing and line endings): the limit is a
// policy on the mailbox's own account of its messages, not a count of
// octets on the wire. TOP is checked like RETR whatever its line count,
// TOP n 0 included: what it sends (the header and up to k lines) cannot be
// bounded before it is sent, since a header may be as large as the
// message, and cutting the answer short would make a truncated message
// look complete. A client previewing an oversized message gets the same
// -ERR as for RETR.
//
// Contracts:
//   - The filter implements filters.Exclusive: a RETR or TOP with a size
//     limit calls next twice and must not be pipelined with other commands.
//     Between the two calls the LIST answer is read whole (it has no body)
//     and ex.Response and ex.Body are reset.
//   - A RETR whose argument is not exactly one message number, or a TOP
//     whose arguments are not a message number and a line count, is
//     refused by the filter, so that no argument form can pass the check
//     and be read differently by the backend.
//   - When the RETR or TOP is not sent, ex.Out stays "LIST n", the last
//     command the backend received, and audit records show it.
//   - A malformed LIST answer fails the RETR with -ERR [SYS/TEMP]; a -ERR
//     answer to LIST is passed on as the answer to RETR or TOP.
//   - The size check and deny apply to the client's command
//     (Exchange.Command); an outer filter's extra backend calls on the
//     same exchange (Out edited to another verb) pass untouched.
package policy
