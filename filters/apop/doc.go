// Package apop is popgate's apop filter: it accepts APOP (RFC 1939
// section 7) and AUTH CRAM-MD5 (RFC 2195, over RFC 5034's AUTH) from
// clients, verifies them against a file of shared secrets, and logs in to
// the backend with USER and PASS. Clients get challenge-response logins
// that never send the password, even to a backend that offers only
// USER/PASS (over TLS to the backend, if the password must stay secret
// there too).
//
// The secrets file holds one "user:password" per line: the user name is
// everything before the first ':', the password the whole rest of the
// line, colons and spaces included. Blank lines and lines starting with
// '#' are ignored; a CR before the LF is dropped. User names are matched
// exactly (case-sensitive). Lines are at most 4096 octets; an empty user
// or password, white space in a user name, a control character anywhere,
// or a user defined twice refuses the whole file, with an error naming
// file and line but never the content. The file is refused while anyone
// but its owner may access it (mode & 0o077 != 0): chmod 600 fixes that.
// Reload reads it again (SIGHUP) and keeps the old secrets if the new file
// is refused.
//
// The filter acts only in after-auth mode (filters.Session.AfterAuth) and
// in the AUTHORIZATION state; in on-accept mode the client's APOP and AUTH
// reach the backend untouched and the backend verifies them.
//
//   - APOP name digest: the digest is the hex MD5 of the greeting's
//     timestamp (filters.Session.Timestamp, set by the session when this
//     filter is configured) followed by the secret. Without a timestamp the
//     answer is -ERR.
//   - AUTH CRAM-MD5: the filter sends a fresh challenge of the form
//     "<random.nanoseconds@host>" through Exchange.Prompt and expects
//     base64 of "name SP hexdigest", the digest being HMAC-MD5 (RFC 2104)
//     of the challenge keyed with the secret. An initial response is
//     refused (RFC 2195 has none). A "*" cancel or malformed base64 ends
//     the exchange with the session's *parser.Error.
//
// Contracts:
//   - Unknown users and wrong digests take the same path: a digest is
//     computed with a random decoy secret for an unknown user, digests are
//     compared in constant time (crypto/subtle, hex in either case), and
//     both get "-ERR [AUTH] authentication failed". The filter never
//     sleeps: the session delays failure answers and counts them.
//   - The filter takes part through its Command side
//     (filters.CommandFilter) and keeps no per-session state. APOP and
//     AUTH CRAM-MD5 in after-auth AUTHORIZATION are exclusive
//     (filters.Exclusive), whether or not the digest will verify: the
//     session lets every earlier exchange finish first and gives the
//     exchange a Backend. A session makes few login attempts, so this
//     drains the pipeline rarely.
//   - A verified login becomes USER and PASS: Exchange.Backend.Call sends
//     "USER name" (to popgate's own AUTHORIZATION server), and, if that is
//     answered +OK, Exchange.Out becomes "PASS secret", which the session
//     sends; the exchange's answer is the answer to PASS. If USER is not
//     answered +OK, its answer is the exchange's and PASS is never sent.
//     A failed attempt and a refusal are answered locally
//     (Exchange.Response) and reach no server. Exchange.Command stays the
//     client's APOP or AUTH.
//   - The filter never writes filters.Session.Login: the session, its only
//     writer, records the login from USER and PASS and names the attempt
//     from the client's command. For CRAM-MD5 the name is inside the
//     client's response, where the session cannot see it, so the filter
//     puts it in Exchange.User, on success and on failure alike (not when
//     it could not be a user of the secrets file: empty, white space or a
//     control character). Login rewriting happens later, in the session,
//     on Login.BackendUser.
//   - Secrets and digests are never logged; the user name and the outcome
//     are, at Debug level.
package apop
