// Command popgate is a transparent POP3 proxy: it adds TLS to plaintext
// POP3 (RFC 2595 STLS, RFC 8314 implicit TLS), audits mailbox access, and
// scans mail with ClamAV on its way to the client, in front of POP3 servers
// that stay as they are.
//
// Package main reads the HCL configuration (config*.go), validates it with
// source-located diagnostics, and wires the packages together (run.go):
// parser is the POP3 codec, proxy runs listeners and sessions, filters and
// its sub-packages are the policy chain, tlsconf manages certificates.
// Neither proxy nor filters import HCL.
package main
