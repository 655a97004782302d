// Package audit is popgate's audit filter: a JSON-lines trail of who
// accessed which mailbox, how, and what they read and deleted.
//
// Every record is one JSON object (RFC 8259) on one line, with snake_case
// field names. Every record starts with "time" (RFC 3339 with nanoseconds,
// UTC), "event", "instance" (only when Config.Instance is set: the
// cluster's name of this popgate instance), "session" (the session id),
// "client" (the real client address, ip:port, after the PROXY protocol)
// and "listener". The events:
//
//   - session_start: local, tls_version, tls_cipher, sni (empty in
//     plaintext).
//   - tls: once, when a session that started in plaintext is first seen
//     with TLS after STLS (RFC 2595); tls_version, tls_cipher, sni.
//   - session_end: duration_ms, bytes_in, bytes_out, reason,
//     deletes_marked, deletes_committed, from filters.SessionEnd.
//   - command, for every exchange: seq (ordinal in the session, in the
//     client's order), verb, args (as parser.Command.Redacted prints them:
//     PASS, APOP and AUTH secrets masked), out (the command sent to the
//     backend, redacted, when it differs), status ("+OK"/"-ERR"), code (RFC
//     2449/3206 response code), bytes (body octets, decoded, delivered to
//     the client), duration_us, complete (false when the body was cut short
//     or never read to its end) and error (why the exchange failed: then
//     status and code are those of the -ERR the session answers).
//   - auth, after the command record of an exchange that completes a login
//     attempt (PASS, APOP, AUTH with a mechanism; RFC 1939, RFC 5034)
//     with a final +OK or -ERR: client_user, backend_user, mechanism and
//     backend from the session's filters.Login as the session recorded it
//     once the exchange was over (client_user from Exchange.User when the
//     session learnt no name: a CRAM-MD5 login the apop filter answered),
//     result ("ok"/"fail") and code. Never the password.
//   - retrieve, for RETR and TOP answered +OK: verb, msg, lines (TOP),
//     uidl, size (octets delivered), message_id (RFC 5322 section 3.6.4)
//     and complete.
//   - delete, for DELE answered +OK: msg and uidl (if known).
//   - commit, for QUIT answered +OK in the TRANSACTION state (RFC 1939
//     section 6): count and msgs, the deletions marked since the last RSET
//     (msgs_truncated when the list was cut at 100,000).
//   - scan, after the records of a RETR or TOP whose exchange carries a
//     scanner's filters.Verdict (the clamav filter's): verb, msg, verdict
//     ("clean", "infected", "error", "skipped-oversize" for an Err with an
//     Oversize() bool method, see Oversize), virus, action (what the
//     scanner did: "deliver", "replace", "reject", "tempfail", "pass"),
//     error, bytes (octets scanned) and duration_us (the wait for the
//     verdict after the last octet, Verdict.Wait).
//   - chain_break, written by the writer itself (session, client and
//     listener empty): reason ("torn tail", "unverifiable tail", "torn
//     write"), skipped_offset, skipped_bytes and skipped_sha256 of the
//     octets before it that are no record.
//
// Unique-ids (RFC 1939 section 7) are learnt from the client's own UIDL
// commands as their answers stream past, bounded per session. The first
// RETR, TOP or DELE in the TRANSACTION state of a message whose unique-id
// is still unknown, in a session where neither the client nor the filter
// asked for a UIDL listing yet, is exclusive (filters.Exclusive): the
// session lets earlier exchanges finish, and the filter's Command side
// asks the backend for the whole listing once, through Exchange.Backend.
// That listing teaches every message's unique-id, so a pipelined burst of
// RETRs drains the pipeline at most once per session, and never when the
// client sent UIDL first. A backend that answers the listing -ERR has no
// UIDL and is not asked again in the session.
//
// The Message-ID is found by a scanner that looks at the body as the
// session streams it, without buffering or delaying it, within the first
// 64 KiB of the header section.
//
// Hash chain (Config.Chain): the last two fields of each line are
// "prev_hash", the hash of the record before it, and "hash", the hex
// SHA-256 of the line as written up to the hash field, with the closing
// brace: the line is content[:len(content)-1] + `,"hash":"` + hex + `"}`.
// A chain starts with prev_hash "". When a file is opened that already
// ends in a chained record, its hash continues the chain; after Reopen
// (logrotate's rename and SIGHUP) the new file's first record carries the
// old file's last hash, so VerifyFrom can check a series of files. Verify
// detects any change to a line (a single byte anywhere, including the last
// line), but not whole records removed from the start or the end.
//
// Segments: when a file is opened whose end is no record (a partial last
// line, or last lines that do not verify), or a write fails part-way, the
// octets stay where they are, are ended with a newline, and a chain_break
// record names their offset, length and SHA-256; its prev_hash is the hash
// of the last record before them, and the chain goes on from it. Check
// reports the runs of linked records (segments) and the breaks between
// them; a break is recorded when a chain_break names exactly the octets
// skipped. Any other break is an edit, a removal or damage not yet seen.
//
// Files: a writer owns one audit file and holds it under an exclusive
// flock(2), so a second process on the same file fails at New (ErrLocked):
// in a cluster every instance writes a chain of its own, in a file of its
// own, and `popgate audit verify` checks each file as its own chain.
// Filters of one process on the same path share its writer (and its chain,
// and the strictest of their sync policies); the last Close closes it.
// Sync policies: SyncInterval (default, fsync at most every SyncInterval,
// outside the writer's lock), SyncRecord (fsync after every record),
// SyncNone.
//
// The filter takes part in each exchange through the sides of the filters
// API: Exclusive and Command on the session's reading goroutine (number
// the exchange, make the one listing), Response on its answer goroutine
// (learn unique-ids, tap the body, write the records of an answer without
// body), and Finish after the answer went out or failed (records of a
// failed exchange, auth, scan).
//
// Contracts:
//   - The filter belongs first in the chain: it then sees each client
//     command, with Out equal to Command before inner filters edit it, and
//     the final answer on its way to the client.
//   - Records of an exchange with a body are written when the session has
//     read it to its end, or closed it (io.Closer, which is passed on to
//     the wrapped body), or the read failed, or the exchange finished, or
//     the session ended: the filter cannot know sooner how much was
//     delivered. Command records follow the client's order.
//   - Records are whole lines, chained in the order they are written. The
//     records of an exchange whose answer has not reached the client yet
//     (command, retrieve, delete, commit) wait for the session's Flush
//     (filters.Flusher), which it calls just before it sends a burst's
//     answers: a pipelined burst's records go out with one write, before
//     its answers. Every other record (session, auth, scan, admin) is
//     written at once, with everything queued before it. Nothing waits
//     longer than the sync interval, and with SyncRecord nothing waits. A
//     crash of popgate can lose the records of the burst being answered
//     (and, unless Sync is SyncRecord, what the kernel had not written
//     back); a write cut short keeps the whole records and names the rest
//     in a chain_break. A failing write is logged once until
//     writing works again, counted for every record through
//     Config.OnWriteError, and never stops mail access. A record written
//     after Close is counted and logged at error level.
//   - Per-session state lives in filters.Session values, is bounded
//     (100,000 unique-ids of at most 70 octets, 4 MiB), behind a mutex
//     because the Command side of an exchange runs while earlier answers
//     stream back, and dropped at SessionEnded, which also finishes the
//     records of exchanges the session left unfinished.
//   - A record costs one encoding without reflection (encode.go, octet for
//     octet what encoding/json writes), one SHA-256 when chaining, and the
//     its share of a write; BenchmarkPipelinedNOOPRecord measures it per
//     exchange, proxy's BenchmarkProxyNoopPipelined100 per burst.
//   - Secrets never reach the trail: commands are written only in their
//     Redacted form, and Login.Password is never read.
package audit
