// Command mkmail seeds the Maildir mailboxes and writes the Dovecot
// passwd-files used by popgate's integration environment
// (integration/start.sh). It is a test fixture generator, not part of the
// proxy.
//
// Subcommands:
//
//	mkmail passwd -instance a|b -out FILE
//	    writes a Dovecot passwd-file ({PLAIN} passwords, so APOP and
//	    CRAM-MD5 work) for the users of one Dovecot instance.
//	mkmail templates -instance a|b -dir DIR -uid N -gid N
//	    (re)generates the message templates of one instance under DIR.
//	mkmail seed -instance a|b -root DIR -templates DIR -uid N -gid N
//	           [-dovecot-conf FILE]... [USER...]
//	    replaces the mailboxes of the named users (all users of the
//	    instance when none are named) with fresh copies of their templates,
//	    hard-linked, so reseeding even 1000 users is fast. With
//	    -dovecot-conf, the users' sessions on that running Dovecot are
//	    ended first (doveadm kick), so no process writes into the new
//	    mailbox.
//	mkmail ndb -out FILE
//	    writes a ClamAV .ndb signature file matching the EICAR test string.
//
// Contracts:
//   - Content is deterministic: the same generator version always writes the
//     same bytes, so tests compare what they receive through the proxy with
//     the files in the Maildir.
//   - Messages are written with CRLF line ends, so Dovecot's RETR body is the
//     file's bytes (after dot-stuffing on the wire), except that Dovecot adds
//     a CRLF to a message that lacks a final line end.
//   - Message files are named "<seconds>.M<n>P1.popgate:2," with increasing
//     seconds, so Dovecot numbers them in template order; sorting a cur/
//     directory by name gives POP3 message order.
//   - No file in the repository carries the EICAR test string: it is
//     assembled from two halves at run time (eicar.go).
package main
