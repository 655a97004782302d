// Package policy is popgate's policy filter: it refuses commands an
// administrator has denied and messages over a size limit, before they
// reach the backend.
//
// Denied commands (Config.Deny) are answered "-ERR <VERB> not permitted by
// policy" by the filter itself; the backend never sees them. The answer
// carries no response code: RFC 3206's [SYS/PERM] announces a permanent
// system failure, which makes clients abandon the session or alarm the
// user, whereas RFC 1939 section 3 answers a command the server will not
// perform with a plain -ERR. QUIT cannot be denied (New refuses it): a
// client must always be able to end its session (RFC 1939 section 6).
// CAPA answers (RFC 2449 section 6) lose the lines that announce a denied
// command, so clients do not try it: the tag of the command itself (TOP,
// UIDL, STLS, ...), SASL for AUTH (RFC 5034), USER for USER or PASS.
//
// With Config.MaxMessageSize, RETR n is preceded by "LIST n" on the same
// exchange (RFC 1939 section 5); a message whose listed size is over the
// limit is answered "-ERR message too large for this mailbox policy" and
// the RETR is not sent. The size is the backend's LIST size, which servers
// compute in their own way (Dovecot's differs from the octets RETR sends by
// dot-stuffing and line endings): the limit is a policy on the mailbox's
// own account of its messages, not a count of octets on the wire. TOP is
// not limited: it sends the header and as many lines as asked for.
//
// Contracts:
//   - The filter implements filters.Exclusive: a RETR with a size limit
//     calls next twice and must not be pipelined with other commands.
//     Between the two calls the LIST answer is read whole (it has no body)
//     and ex.Response and ex.Body are reset.
//   - A RETR whose argument is not exactly one message number is refused
//     by the filter, so that no argument form can pass the check and be
//     read differently by the backend.
//   - When the RETR is not sent, ex.Out stays "LIST n", the last command
//     the backend received, and audit records show it.
//   - A malformed LIST answer fails the RETR with -ERR [SYS/TEMP]; a -ERR
//     answer to LIST is passed on as the answer to RETR.
//   - The size check and deny apply to the client's command
//     (Exchange.Command); an outer filter's extra backend calls on the
//     same exchange (Out edited to another verb) pass untouched.
package policy
