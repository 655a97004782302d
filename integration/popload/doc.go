// Command popload measures popgate against a direct connection to the POP3
// server behind it, in the same run.
//
// It speaks POP3 (RFC 1939) itself over raw TCP, or over TLS (RFC 8314)
// verified with a CA file or, with -insecure, unverified, and checks what
// it reads: every multi-line body must end with its terminating dot, and
// the SHA-256 and length of the un-stuffed body must be the same through
// every target, so a proxy that loses, adds or reorders a single octet
// fails the run instead of looking fast.
//
// Usage:
//
//	popload SCENARIO [flags]
//	popload report FILE...
//
// Scenarios: retr, tls-retr, noop-rtt, noop-pipelined, logins,
// retr-pipelined (with -uidl: after a UIDL listing, as fetchmail does),
// idle, tls-idle, concurrent and scan-retr (see "popload help"); and
// floor-server, a minimal Go POP3 greeter that idle and tls-idle can
// measure as the memory floor of a Go server. Targets are named with
// -target NAME=HOST:PORT, in order; each round visits them in that order
// (A B C A B C ...), the first target is the baseline that ratios are
// taken against, and goals are checked for the -subject targets (default
// "popgate"; a comma-separated list). -versus NAME compares each subject
// with another target per round (HAProxy: pipelined NOOPs must not fall
// below it, nor the NOOP overhead rise above it); -audit AUDITED=PLAIN
// names a target that is another with the audit filter on, and reports
// their per-round ratio (within 5 % on RETR, bulk and logins); with
// -audit-file, noop-pipelined counts the records each session appends and
// reports the CPU per audit record. -pid NAME=PID names the process
// serving a target, for CPU time (the threads' schedstat run time, in ns)
// and memory readings from /proc.
//
// Every scenario prints a human-readable table and, as its last line, one
// JSON object (the Result type); -json FILE appends that line to FILE too.
// "popload report" turns such lines into the Markdown tables of
// docs/BENCHMARKS.md.
//
// Contracts:
//   - Traffic goes to loopback addresses only, and floor-server listens on
//     loopback only: every address given is checked to be a literal
//     127.0.0.0/8 or ::1 address.
//   - Every loop is bounded by a count or a deadline, and every network
//     operation by -timeout; floor-server alone serves until it is killed.
//   - A scenario that sees an error, a checksum mismatch or a missing
//     terminator exits with status 1 after printing what it measured.
package main
