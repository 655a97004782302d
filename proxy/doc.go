// Package proxy runs popgate's listeners and client sessions: it owns the
// connections, the POP3 session state machine, and who writes to whom.
//
// RFCs enforced here:
//   - RFC 1939: the AUTHORIZATION, TRANSACTION and UPDATE states; commands
//     outside their state are refused; a session that ends without QUIT
//     never enters UPDATE, so popgate closes the backend without QUIT and no
//     deletion is committed.
//   - RFC 2449: CAPA, response codes, PIPELINING. Commands a client
//     pipelines are sent to the backend back to back and answered in order
//     (answer.go): the reading goroutine starts each exchange and queues it
//     in a bounded FIFO, one answer goroutine completes them, as in
//     net/textproto's Pipeline. There is one exchange path (exchange.go),
//     the same with and without filters.
//   - RFC 2595: STLS, allowed once, in AUTHORIZATION; plaintext pipelined
//     after STLS is discarded, never executed.
//   - RFC 3206: [SYS/TEMP], [SYS/PERM], [AUTH], [IN-USE], [LOGIN-DELAY].
//   - RFC 5034: SASL continuations.
//
// Contracts:
//   - A session runs on at most two goroutines, and no exchange has a
//     goroutine, channel or context of its own. The client writer and the
//     backend reader belong to the answer goroutine while exchanges wait in
//     the FIFO, and to the reading goroutine once drain returned: drain is
//     the only hand-over. Every error reply is produced in answerFailure
//     or by the session's own checks, through parser.ErrorResponse.
//   - An exchange runs alone (the FIFO drained first) in AUTHORIZATION, for
//     QUIT, and when a filter's Exclusive asks for it; only then may a
//     filter make extra round trips (filters.Exchange.Backend).
//   - QUIT reaches the backend only when the client sent it, after every
//     earlier answer went out, and while the session is alive.
//   - A body that fails after +OK was written closes the client connection
//     without the terminating dot, so a truncated message never looks
//     complete.
//   - The session is the only writer of filters.Session.Login, and it
//     records how the client proved who it is (proof.go); a master login
//     is refused for a client no local verifier checked.
//   - Login throttling and MaxSessionsPerUser go through the Server's
//     LoginState (loginstate.go): in-process by default, shared by a
//     cluster otherwise. A login makes at most two calls on it when it
//     succeeds (charge, settle) and one when it fails; a login over
//     MaxSessionsPerUser is refused with [IN-USE] after the backend
//     accepted it, and that backend connection is closed without QUIT.
//   - A panic is confined to its session.
//   - Each session keeps the Config it started with; Server.Reload affects
//     only new sessions.
//   - A backend is a pool of servers (pool.go): the session's balance mode
//     ranks them, a server that cannot be reached up to its greeting (and
//     STLS, XCLIENT) is passed over for the next within the connect
//     timeout, and nothing is retried once credentials were sent. The
//     servers' health belongs to the Server, not to a Config: it survives
//     reloads while a server stays configured (pool_health.go).
package proxy
