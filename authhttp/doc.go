// Package authhttp is the client of an nginx-compatible mail auth_http
// service (nginx's ngx_mail_auth_http_module): popgate asks it, for every
// login, whether the login is good and which server the session goes to.
//
// The protocol, as nginx speaks it for POP3:
//   - Request: an HTTP GET of the configured URL carrying Auth-Method
//     (plain, apop, cram-md5, external), Auth-User and Auth-Pass
//     (URL-escaped the way nginx escapes them: space, '%', control
//     octets, DEL and every octet >= 0x80), Auth-Salt for APOP and
//     CRAM-MD5 (the greeting's timestamp), Auth-Protocol: pop3,
//     Auth-Login-Attempt (1 for the first attempt of a session),
//     Client-IP, Client-Host, Auth-SSL: on for a TLS client, and the
//     configured extra headers (nginx's auth_http_header).
//   - Response: the HTTP status is ignored, as nginx ignores it. Auth-Status
//     "OK" accepts the login; "WAIT" asks to repeat the request after
//     Auth-Wait seconds; any other text refuses it, and the text is what
//     the client is told. Auth-Server and Auth-Port choose the server,
//     Auth-User and Auth-Pass replace the backend login, Auth-Wait delays
//     a refusal. Auth-Error-Code is SMTP's and is ignored for POP3.
//
// Contracts:
//   - Every failure to get a usable answer (service down, timeout, an
//     answer without Auth-Status, a bad Auth-Port) is an error wrapping
//     ErrService: the session answers it [SYS/TEMP], never [AUTH].
//   - Keep-alive and a bounded pool: at most Options.MaxInFlight requests
//     are in flight, each on a kept-alive connection of the Client's pool
//     (pool.go), and at most that many connections wait idle; the other
//     requests wait, within the timeout, for a slot. net/http writes the
//     requests and parses the answers; the pool makes each request on the
//     caller's goroutine, with no hand-over to a Transport's goroutines.
//   - The optional cache (Options.CacheTTL) keeps only OK answers, keyed
//     by a keyed hash (HMAC-SHA-256 with a per-process random key) of
//     everything that decides the answer, the password or digest
//     included: a wrong password never meets a cached OK, and no password
//     is kept as a key.
//   - Nothing this package logs or returns as an error text carries
//     Auth-Pass, the configured headers' values, or the URL's user info.
package authhttp
