// Command popgate is a transparent POP3 proxy: it adds TLS to plaintext
// POP3 (RFC 2595 STLS, RFC 8314 implicit TLS), audits mailbox access, and
// scans mail with ClamAV on its way to the client, in front of POP3 servers
// that stay as they are.
//
// Package main only wires the other packages together: main.go is the
// command line (run, validate, version, audit verify), run.go builds what
// a configuration describes and runs it, reloading on SIGHUP, and
// run_generations.go closes filter instances once no configuration
// generation holds them. config reads and validates the HCL file into the
// option types of proxy (listeners, sessions, backends), tlsconf
// (certificates), and the filters (the policy chain); metrics serves
// Prometheus metrics and backend health. parser is the POP3 codec. Neither
// proxy nor the filters import HCL.
package main
