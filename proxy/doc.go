// Package proxy runs popgate's listeners and client sessions: it owns the
// connections, the POP3 session state machine, and who writes to whom.
//
// RFCs enforced here:
//   - RFC 1939: the AUTHORIZATION, TRANSACTION and UPDATE states; commands
//     outside their state are refused; a session that ends without QUIT
//     never enters UPDATE, so popgate closes the backend without QUIT and no
//     deletion is committed.
//   - RFC 2449: CAPA, response codes, PIPELINING. A session keeps a FIFO of
//     outstanding commands: commands a client pipelines are sent to the
//     backend back to back and the answers are written in order, in batches.
//   - RFC 2595: STLS, allowed once, in AUTHORIZATION; plaintext pipelined
//     after STLS is discarded, never executed.
//   - RFC 3206: [SYS/TEMP], [SYS/PERM], [AUTH], [IN-USE], [LOGIN-DELAY].
//   - RFC 5034: SASL continuations.
//
// Contracts:
//   - Only the session writes to the client, and only the exchange that
//     holds the output turn. Every error reply is produced by
//     parser.ErrorResponse.
//   - A body that fails after +OK was written closes the client connection
//     without the terminating dot, so a truncated message never looks
//     complete.
//   - A panic is confined to its session.
//   - Each session keeps the Config it started with; Server.Reload affects
//     only new sessions.
package proxy
