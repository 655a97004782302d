package audit

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// uidlListing is the command of the filter's one UIDL listing per session.
var uidlListing = parser.NewCommand("UIDL")

// Exclusive reports whether ex needs the backend to itself: a RETR, TOP or
// DELE in the TRANSACTION state of a message whose unique-id is not known,
// in a session where no UIDL listing was asked for yet and the backend has
// not shown it has no UIDL. The Command side then asks the backend for one
// listing, which teaches the unique-id of every message; after it, or
// after the client's own listing, no exchange of the session is exclusive
// because of the filter. It implements filters.Exclusive.
func (f *Filter) Exclusive(ex *filters.Exchange) bool {
	msg, ok := listingTarget(ex)
	return ok && f.state(ex.Session).needsListing(msg)
}

// listingTarget returns the message of ex when ex is a command whose
// records name a unique-id (RETR, TOP, DELE) and the session can ask for
// a UIDL listing (TRANSACTION, RFC 1939 section 7).
func listingTarget(ex *filters.Exchange) (int, bool) {
	switch ex.Command.Verb {
	case "RETR", "TOP", "DELE":
	default:
		return 0, false
	}
	if ex.Session == nil || ex.Session.State() != filters.Transaction {
		return 0, false
	}
	return parseMsg(ex.Command.Arg(0))
}

// Command numbers the exchange and remembers it for the Response side and
// Finish. An exclusive exchange (see Exclusive) first asks the backend
// "UIDL" through ex.Backend; a backend that answers -ERR is not asked
// again in the session. A failed listing is recorded with the client's
// command and ends the exchange with its error. It implements
// filters.CommandFilter.
func (f *Filter) Command(ctx context.Context, ex *filters.Exchange) error {
	s := ex.Session
	st := f.state(s)
	e := inflight{ex: ex, start: ex.Started, pre: filters.Authorization}
	if e.start.IsZero() {
		e.start = time.Now()
	}
	if s != nil {
		e.pre = s.State()
	}
	var err error
	if ex.Backend != nil {
		// Exclusive said yes; the answer may have changed since, as
		// earlier exchanges finished, but only from yes to no.
		if msg, ok := listingTarget(ex); ok && st.needsListing(msg) {
			err = f.list(ctx, ex.Backend, st)
		}
	}
	if st.begin(&e, s, err == nil) {
		version, cipher, sni := tlsFields(s)
		f.record(&tlsRecord{
			header:     st.header(EventTLS, time.Now()),
			TLSVersion: version, TLSCipher: cipher, SNI: sni,
		})
	}
	if err != nil {
		rec := f.commandRecord(st, ex, e.seq, e.start, parser.ErrorResponse(err), err)
		rec.Complete = true
		f.recordCommand(&rec)
		return err
	}
	if isListing(ex.Command) && e.pre == filters.Transaction {
		// The client's own listing teaches every unique-id as its
		// answer streams past, before any later answer is read.
		st.setListed(true)
	}
	return nil
}

// list asks the backend for the UIDL listing (RFC 1939 section 7) and
// stores every unique-id in it.
func (f *Filter) list(ctx context.Context, b filters.Backend, st *session) error {
	resp, body, err := b.Call(ctx, uidlListing)
	if err != nil {
		return fmt.Errorf("audit: UIDL listing: %w", err)
	}
	if !resp.IsOK() {
		st.setUnsupported()
		return nil
	}
	st.setListed(true)
	if body == nil {
		return nil
	}
	if _, err := io.Copy(newUIDLScanner(st.storeUID), body); err != nil {
		return fmt.Errorf("audit: UIDL listing: %w", err)
	}
	return nil
}

// isListing reports whether cmd asks for a UIDL listing.
func isListing(cmd parser.Command) bool {
	return cmd.Verb == "UIDL" && len(cmd.Args) == 0
}
