// Package admin is popgate's admin interface: a small HTTP API with JSON
// bodies, served on a unix socket (mode 0600) and, optionally, on a TCP
// address with a bearer token. It lists the proxy's open sessions, kicks
// them, and blocks users and addresses for a while; `popgate sessions`
// and `popgate kick` are its clients (Client).
//
// API (version 1):
//
//	GET  /v1/sessions?user=U&addr=A&backend=B&id=ID   {"sessions": [SessionInfo...]}
//	POST /v1/kick   {"user","addr","id","block"}        {"kicked": N, "blocks": [Block...]}
//	GET  /v1/blocks                                    {"blocks": [Block...]}
//
// Contracts:
//   - It is never served on a public listener: the socket, and the TCP
//     address only with a token (validated in config). The socket's mode
//     0600 is its access control.
//   - On TCP every request carries "Authorization: Bearer TOKEN"; the
//     token is compared in constant time, a wrong or missing one is
//     answered 401, and no token is ever logged.
//   - Every action (kick, block) is logged and written to every audit
//     trail of the running configuration (Recorder) before it is
//     answered.
//   - A block is applied before the kick, so a kicked client cannot log
//     in again in between.
package admin
