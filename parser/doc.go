// Package parser is popgate's POP3 codec: it knows bytes and framing only,
// never sockets, sessions or policy.
//
// It implements the wire format of
//
//   - RFC 1939 (POP3): commands, +OK/-ERR status lines, and multi-line
//     bodies terminated by a line holding a single "." and byte-stuffed
//     with a leading "." (section 3);
//   - RFC 2449 (CAPA and extensions): command lines of at most 255
//     octets including CRLF (section 4) and extended response codes in
//     brackets such as "[IN-USE]" and "[LOGIN-DELAY]" (section 8);
//   - RFC 3206: the response codes "[SYS/TEMP]", "[SYS/PERM]" and
//     "[AUTH]";
//   - RFC 5034 (SASL AUTH): continuation lines "+ base64" from the server,
//     and AUTH without argument listing mechanisms as a multi-line body.
//
// The shape follows net/textproto: a Reader wraps a *bufio.Reader and a
// Writer wraps a *bufio.Writer; a body is read through DotReader and written
// through DotWriter. Which responses carry a body is decided in exactly one
// place, HasBody.
//
// Contracts kept by this package:
//
//   - Only CRLF ends a line. A line (everything up to the next CRLF) that
//     holds a bare CR, a bare LF or a NUL is refused whole with ErrBadLine,
//     after it has been consumed through its CRLF, so the next line is read
//     correctly and nothing can be smuggled inside a line. Writers refuse
//     such bytes in the same way.
//   - Lines are bounded: a line longer than Reader.MaxLine is consumed and
//     refused with ErrLineTooLong. Discarding it, like reading a body, takes
//     constant memory whatever the input size, even gigabytes without a
//     CRLF.
//   - A line returned by ReadLine is valid only until the next call on the
//     Reader. A body returned by DotReader is valid until the next call on
//     the Reader, which first drains what the caller left unread, so the
//     stream never desyncs.
//   - Bodies are decoded and encoded byte-exact: CRLF is preserved,
//     un-stuffing happens only at a real line start, a body cut short
//     returns io.ErrUnexpectedEOF and never a clean io.EOF, and an empty
//     body is exactly ".\r\n".
//   - Commands are parsed and re-serialised (Command.String), never
//     forwarded as raw bytes; Command.Redacted masks secrets for logs.
//   - Nothing in this package flushes a bufio.Writer on its own: the caller
//     decides when bytes go out.
package parser
