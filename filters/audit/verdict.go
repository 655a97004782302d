package audit

import (
	"errors"
	"time"

	"github.com/popgate/popgate/filters"
)

// oversizer is implemented by scanner errors that mean "not scanned because
// the message is larger than the scanner accepts" (clamav.ErrTooBig, or an
// error marked with Oversize), so this package needs no import of clamav.
type oversizer interface{ Oversize() bool }

// oversizeError marks its cause as a skip for size.
type oversizeError struct{ err error }

func (e oversizeError) Error() string  { return e.err.Error() }
func (e oversizeError) Unwrap() error  { return e.err }
func (e oversizeError) Oversize() bool { return true }

// Oversize returns err marked so that the scan record of a Verdict with it
// as Err says "skipped-oversize"; its text and errors.Is/As are unchanged.
// A scanner whose "too big to scan" error has no Oversize method of its
// own marks it with this. A nil err stays nil.
func Oversize(err error) error {
	if err == nil {
		return nil
	}
	return oversizeError{err}
}

// recordVerdict writes the scan record of ex.Verdict, for the message
// retrieved by ex.Command (RETR or TOP). The verdict written is:
//
//   - "skipped-oversize" when Verdict.Err, or an error it wraps, has an
//     Oversize() bool method that returns true;
//   - "error" for any other Err, whose text is written too, and for a
//     verdict that was never reached;
//   - "clean" when Clean, otherwise "infected", with the virus the
//     scanner named.
//
// action is what the scanner did (Verdict.Action), bytes the octets
// scanned and duration_us the wait for the verdict after the last octet
// (Verdict.Wait).
func (f *Filter) recordVerdict(st *session, ex *filters.Exchange) {
	v := ex.Verdict
	rec := scanRecord{
		header:     st.header(EventScan, time.Now()),
		Verb:       ex.Command.Verb,
		Virus:      v.Virus,
		Action:     v.Action,
		Bytes:      v.Size,
		DurationUS: v.Wait.Microseconds(),
	}
	rec.Msg, _ = parseMsg(ex.Command.Arg(0))
	var o oversizer
	switch {
	case v.Err != nil && errors.As(v.Err, &o) && o.Oversize():
		rec.Verdict = VerdictSkippedOversize
		rec.Error = v.Err.Error()
	case v.Err != nil:
		rec.Verdict = VerdictError
		rec.Error = v.Err.Error()
	case !v.Scanned:
		rec.Verdict = VerdictError
		rec.Error = errNoVerdict.Error()
	case v.Clean:
		rec.Verdict = VerdictClean
	default:
		rec.Verdict = VerdictInfected
	}
	f.record(&rec)
}

// errNoVerdict is the error of a scan record whose Verdict says neither
// what the scanner found nor why it found nothing.
var errNoVerdict = errors.New("the scanner gave no verdict")
