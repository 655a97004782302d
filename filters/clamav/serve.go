package clamav

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/spool"
	"github.com/popgate/popgate/parser"
)

// serve scans the body of a +OK answer to RETR or TOP and decides what the
// client gets instead: the message, a notice, or -ERR.
func (f *Filter) serve(ctx context.Context, ex *filters.Exchange) error {
	log := f.logger.With("command", ex.Command.Redacted())
	if ex.Session != nil {
		log = log.With("session", ex.Session.ID)
	}
	rc, err := f.receive(ctx, ex.Body)
	if err != nil {
		ex.Body = nil
		log.Warn("message body from the backend failed", "error", err)
		return err
	}
	ev := VerdictEvent{Command: ex.Command, Verdict: rc.verdict, Err: rc.scanErr, Size: rc.size}
	switch {
	case rc.spoolErr != nil:
		ev.Action = f.tempFail(ex, rc)
	case rc.scanErr != nil && f.cfg.OnError == OnErrorPass:
		ev.Action = f.deliver(ex, rc, false)
	case rc.scanErr != nil:
		ev.Action = f.tempFail(ex, rc)
	case rc.verdict.Clean:
		ev.Action = f.deliver(ex, rc, f.cfg.AddHeader)
	case f.cfg.OnInfected == OnInfectedReject:
		ev.Action = ActionReject
		rc.dropSpool()
		ex.Response, ex.Body = respInfected, nil
	default:
		ev.Action = ActionReplace
		f.replace(ex, rc)
	}
	if f.cfg.KeepReplaced && (ev.Action == ActionReplace || ev.Action == ActionReject) {
		f.keep(ex.Session, ex.Out.Arg(0))
	}
	switch {
	case rc.spoolErr != nil:
		// Our own failure, not the scanner's: the message is lost.
		ev.Err = rc.spoolErr
		log.Error("cannot spool message for scanning", "error", ev.Err, "size", ev.Size, "action", ev.Action)
	case ev.Err != nil:
		log.Warn("message not scanned", "error", ev.Err, "size", ev.Size, "action", ev.Action)
	case ev.Verdict.Clean:
		log.Debug("message clean", "size", ev.Size, "wait", ev.Verdict.Wait)
	default:
		log.Info("virus found", "virus", ev.Verdict.Virus, "size", ev.Size, "action", ev.Action)
	}
	if f.cfg.OnVerdict != nil {
		f.cfg.OnVerdict(ex.Session, ev)
	}
	return nil
}

// tempFail answers -ERR [SYS/TEMP] in place of the message.
func (f *Filter) tempFail(ex *filters.Exchange, rc *receipt) Action {
	rc.dropSpool()
	ex.Response, ex.Body = respUnavailable, nil
	return ActionTempFail
}

// deliver hands the spooled message (and any unread rest) to the client,
// with ScannedHeader in front when header is set.
func (f *Filter) deliver(ex *filters.Exchange, rc *receipt, header bool) Action {
	r, err := rc.sp.Reader()
	if err != nil {
		rc.spoolErr = err
		return f.tempFail(ex, rc)
	}
	parts := make([]io.Reader, 0, 3)
	if header {
		parts = append(parts, strings.NewReader(ScannedHeader))
		ex.Response = addOctets(ex.Response, int64(len(ScannedHeader)), false)
	}
	parts = append(parts, r)
	if rc.rest != nil {
		parts = append(parts, rc.rest)
	}
	ex.Body = &spooledBody{r: io.MultiReader(parts...), sp: rc.sp}
	rc.sp = nil // owned by the body now
	if rc.scanErr != nil {
		return ActionPass
	}
	return ActionDeliver
}

// replace hands the client a notice in place of an infected message.
func (f *Filter) replace(ex *filters.Exchange, rc *receipt) {
	var fields headerFields
	// A spool that cannot be read back leaves the fields unknown: the
	// notice then carries defaults, which is still right.
	if r, err := rc.sp.Reader(); err == nil {
		fields = readHeaderFields(r)
	}
	rc.dropSpool()
	notice := buildNotice(fields, rc.verdict.Virus, rc.size, time.Now(), f.cfg.AddHeader)
	ex.Body = bytes.NewReader(notice)
	ex.Response = addOctets(ex.Response, int64(len(notice)), true)
}

// addOctets corrects the size in a "+OK N octets ..." reply (RFC 1939
// section 7, RETR example): it adds n to N, or sets N to n when set is
// true. Other replies are returned unchanged.
func addOctets(r parser.Response, n int64, set bool) parser.Response {
	num, rest, ok := strings.Cut(r.Text, " ")
	if !ok || !strings.HasPrefix(strings.ToLower(rest), "octets") {
		return r
	}
	old, err := strconv.ParseInt(num, 10, 64)
	if err != nil || old < 0 {
		return r
	}
	if !set {
		n += old
	}
	r.Text = strconv.FormatInt(n, 10) + " " + rest
	return r
}

// spooledBody is the Body of a delivered message: it reads the spool back
// and closes it at the end of the body, on a read error, or on Close,
// whichever comes first. The session may Close it from another goroutine.
type spooledBody struct {
	r    io.Reader
	sp   *spool.Spool
	once sync.Once
	err  error
}

// Read reads the message; at its end the spool is released.
func (b *spooledBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil {
		b.Close()
	}
	return n, err
}

// Close releases the spool; reads then fail. It is idempotent.
func (b *spooledBody) Close() error {
	b.once.Do(func() { b.err = b.sp.Close() })
	return b.err
}

var _ io.Closer = (*spooledBody)(nil)
