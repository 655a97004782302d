// Package spool holds message bodies that must wait for a verdict (a virus
// scan, for instance) before they may be delivered.
//
// A Spool keeps the first octets in memory, up to a bound, and moves to a
// temporary file once the bound is crossed, so memory stays flat whatever
// the size of the mail; maddy's buffer package is the model. A total bound
// (maxSize) caps what one Spool may hold, on disk or in memory; writing past
// it fails with ErrTooLarge.
//
// A Budget bounds what many Spools hold together, in memory and on disk
// (popgate's top-level spool block): Spools made by Budget.New take their
// octets from it. A Spool whose next octets do not fit in the memory left
// moves to its temporary file; one whose octets do not fit on the disk left
// fails that Write with ErrBudget and stores none of it. Close gives the
// octets back.
//
// Contracts:
//   - Octets are read back exactly as written, from the start, once writing
//     has finished: Reader seals the Spool and may be called several times.
//   - Disk errors (ENOSPC, EIO, an absent or read-only directory) are
//     returned by Write or Reader, never swallowed; after one, the Spool
//     refuses further writes and reads.
//   - The temporary file is unlinked as soon as it is created where the
//     operating system allows it (Unix), so it never outlives the process,
//     even after a crash; Close closes it (and removes it where it could not
//     be unlinked early). Its disk usage shows in df, not in ls.
//   - A Spool is not safe for concurrent use.
package spool
