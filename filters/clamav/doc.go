// Package clamav is popgate's virus scanning filter and its clamd client.
//
// The client speaks clamd's INSTREAM command (clamd(8)) over TCP or a unix
// socket: "zINSTREAM\0", then chunks of a 4-octet big-endian length and
// that many octets, then a zero-length chunk; clamd answers one
// NUL-terminated line, "stream: OK", "stream: NAME FOUND" or "... ERROR".
// A Stream is an io.Writer that gathers octets into ChunkSize chunks;
// Close returns the Verdict. Past StreamMaxLength clamd answers
// "INSTREAM size limit exceeded. ERROR" and closes the connection, which a
// writer still sending sees as EPIPE or ECONNRESET: the Stream then reads
// the reply and reports ErrSizeLimit rather than the write error.
//
// The filter (name "clamav") works on the Response side of the chain
// (filters.ResponseFilter): it handles +OK answers to RETR and TOP (RFC 1939
// sections 7 and 11) and passes every other answer straight on. It reads
// the body to its end, writing every octet both into a spool
// (filters/spool) and into a clamd stream, so the verdict is ready when the
// last octet has arrived: the latency added is clamd's tail, with no second
// pass over the message. Then:
//
//   - clean: the spooled message is delivered unchanged, or with
//     ScannedHeader in front when Config.AddHeader is set.
//   - infected, on_infected "replace" (default): a notice is delivered
//     instead, an RFC 5322 message with CRLF lines that keeps the Date,
//     From, To, Subject (prefixed with SubjectPrefix) and Message-ID fields
//     of the original and names the virus in a text/plain body.
//   - infected, on_infected "reject": the answer is -ERR with response code
//     SYS/PERM (RFC 3206), and the message stays on the server.
//   - no verdict (clamd unreachable, timed out, refusing; a body larger
//     than MaxSize; no scan slot free within ScanWait; the shared spool
//     budget exhausted): on_error "reject" (default) answers -ERR with code SYS/TEMP
//     for that message only, and the session goes on; on_error "pass"
//     delivers the message unscanned and logs a warning.
//   - a spool failure (disk full): -ERR with code SYS/TEMP, whatever on_error says,
//     since the message can no longer be delivered whole.
//
// A Filter runs at most Config.MaxConcurrentScans scans at once across
// all its sessions (clamd's MaxThreads, 10 by default); a further scan
// waits up to Config.ScanWait, or until its session ends, and then has no
// verdict. Each filter instance has its own bound, even when two point at
// the same clamd.
//
// With Config.KeepReplaced, a DELE of a message the session found infected
// is answered -ERR by the Command side and not sent, so the original stays
// on the server (keep.go). DELE is then exclusive (filters.Exclusive): the
// session lets every earlier answer, and so every verdict, go out before
// the DELE is decided. Without it, a client that reads the notice and
// sends DELE deletes the original at QUIT, like any other message, and
// DELE stays pipelined.
//
// Contracts:
//   - Memory stays flat whatever the message size: one read buffer, one
//     chunk buffer, and at most Config.SpoolMemory octets per message; the
//     rest waits in an unlinked temporary file in Config.SpoolDir. All
//     spools count against Config.Spool, the budget shared with other
//     filters, when set.
//   - Disk use per message is bounded by Config.MaxSize. A body larger than
//     MaxSize stops being scanned at that point. With on_error "reject" the
//     rest is read and discarded (the backend must be drained anyway), so
//     such a message is never deliverable: that is what "reject" means.
//     With on_error "pass" the filter stops reading and delivers the
//     spooled prefix followed by the rest of the body straight from the
//     backend, unscanned.
//   - A truncated backend body (io.ErrUnexpectedEOF or any read error) is
//     returned from the Response side, wrapped, which ends the session,
//     and nothing is delivered: a truncated message never looks complete.
//   - The backend's body is closed, when it is an io.Closer, once the
//     filter has read it; when the delivered body reads on from it (on_error
//     "pass" past MaxSize), the delivered body closes it.
//   - A delivered Body that holds a spool implements io.Closer: it
//     releases the spool at its end, on a read error, or on Close. The
//     session Closes a Body that implements io.Closer when the exchange
//     ends, so a client that goes away mid-message does not hold a spool
//     until garbage collection.
//   - Where the message changes (ScannedHeader, notice), a "+OK N octets"
//     reply is corrected to the octets delivered; LIST sizes are not.
//   - Every scanned message gets a filters.Verdict on its exchange
//     (Exchange.Verdict), which the session reports to metrics and the
//     audit filter records in its Finish: Scanned and Clean or Virus when
//     clamd answered, Err when it did not (ErrTooBig, which has an
//     Oversize() bool method for audit, ErrBusy, ErrSizeLimit, ReplyError,
//     spool.ErrBudget, a spool failure), Action one of the Action
//     constants, Size the octets read from the backend before the
//     decision, and Wait clamd's latency after the last octet. It is also
//     logged: clean at Debug, infected at Info, not scanned at Warn, spool
//     failures at Error. A truncated body gets no verdict.
//   - The kept set of a session is written by Response sides and read by
//     DELE's Command side, which may run at the same time; it is locked.
//   - The filter opens no socket but clamd's.
package clamav
