package audit

import (
	"errors"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// oversizer is implemented by scanner errors that mean "not scanned because
// the message is larger than the scanner accepts". Oversize makes one, so
// this package needs no import of clamav.
type oversizer interface{ Oversize() bool }

// oversizeError marks its cause as a skip for size.
type oversizeError struct{ err error }

func (e oversizeError) Error() string  { return e.err.Error() }
func (e oversizeError) Unwrap() error  { return e.err }
func (e oversizeError) Oversize() bool { return true }

// Oversize returns err marked so that RecordVerdict writes the verdict
// "skipped-oversize" for it; its text and errors.Is/As are unchanged. The
// wiring uses it for the scanner's "too big to scan" errors, for instance
// clamav.ErrTooBig. A nil err stays nil.
func Oversize(err error) error {
	if err == nil {
		return nil
	}
	return oversizeError{err}
}

// RecordVerdict writes a scan record for the message retrieved by cmd (RETR
// or TOP) in session s. main connects it to the clamav filter's verdict
// callback. The verdict written is:
//
//   - "skipped-oversize" when err, or an error it wraps, has an
//     Oversize() bool method that returns true (mark it with Oversize);
//   - "error" for any other non-nil err, whose text is written too;
//   - "clean" when clean is true, otherwise "infected", with virus the
//     signature name the scanner reported.
//
// bytes is the number of octets scanned and dur how long the scan took.
func (f *Filter) RecordVerdict(s *filters.Session, cmd parser.Command, virus string, clean bool, err error, bytes int64, dur time.Duration) {
	rec := scanRecord{
		header:     newHeader(EventScan, s, time.Now()),
		Verb:       cmd.Verb,
		Virus:      virus,
		Bytes:      bytes,
		DurationUS: dur.Microseconds(),
	}
	rec.Msg, _ = parseMsg(cmd.Arg(0))
	var o oversizer
	switch {
	case err != nil && errors.As(err, &o) && o.Oversize():
		rec.Verdict = VerdictSkippedOversize
		rec.Error = err.Error()
	case err != nil:
		rec.Verdict = VerdictError
		rec.Error = err.Error()
	case clean:
		rec.Verdict = VerdictClean
	default:
		rec.Verdict = VerdictInfected
	}
	f.record(&rec)
}
