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
// client gets instead: the message, a notice, or -ERR. It puts the verdict
// on ex. The backend's body is read to its end and closed (when it is an
// io.Closer), unless the delivered body reads on from it.
func (f *Filter) serve(ctx context.Context, ex *filters.Exchange) error {
	log := f.logger.With("command", ex.Command.Redacted())
	if ex.Session != nil {
		log = log.With("session", ex.Session.ID)
	}
	rc, err := f.receive(ctx, ex.Body)
	if err != nil {
		closeBody(ex.Body)
		ex.Body = nil
		log.Warn("message body from the backend failed", "error", err)
		return err
	}
	defer rc.closeSrc()
	var action string
	switch {
	case rc.spoolErr != nil:
		action = f.tempFail(ex, rc)
	case rc.scanErr != nil && f.cfg.OnError == OnErrorPass:
		action = f.deliver(ex, rc, false)
	case rc.scanErr != nil:
		action = f.tempFail(ex, rc)
	case rc.verdict.Clean:
		action = f.deliver(ex, rc, f.cfg.AddHeader)
	case f.cfg.OnInfected == OnInfectedReject:
		action = ActionReject
		rc.dropSpool()
		ex.Response, ex.Body = respInfected, nil
	default:
		action = ActionReplace
		f.replace(ex, rc)
	}
	if f.cfg.KeepReplaced && (action == ActionReplace || action == ActionReject) {
		f.keep(ex.Session, ex.Out.Arg(0))
	}
	v := &filters.Verdict{Scanned: rc.scanErr == nil, Action: action, Size: rc.size, Err: rc.scanErr}
	if v.Scanned {
		v.Clean, v.Virus, v.Wait = rc.verdict.Clean, rc.verdict.Virus, rc.verdict.Wait
	}
	switch {
	case rc.spoolErr != nil:
		// Our own failure, not the scanner's: the message is lost.
		v.Err = rc.spoolErr
		log.Error("cannot spool message for scanning", "error", v.Err, "size", v.Size, "action", action)
	case v.Err != nil:
		log.Warn("message not scanned", "error", v.Err, "size", v.Size, "action", action)
	case v.Clean:
		log.Debug("message clean", "size", v.Size, "wait", v.Wait)
	default:
		log.Info("virus found", "virus", v.Virus, "size", v.Size, "action", action)
	}
	ex.Verdict = v
	return nil
}

// closeBody closes r when it is an io.Closer: a body the filter read to
// its end and replaced (filters.ResponseFilter).
func closeBody(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}

// tempFail answers -ERR [SYS/TEMP] in place of the message.
func (f *Filter) tempFail(ex *filters.Exchange, rc *receipt) string {
	rc.dropSpool()
	ex.Response, ex.Body = respUnavailable, nil
	return ActionTempFail
}

// deliver hands the spooled message (and any unread rest) to the client,
// with ScannedHeader in front when header is set.
func (f *Filter) deliver(ex *filters.Exchange, rc *receipt, header bool) string {
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
	body := &spooledBody{sp: rc.sp}
	rc.sp = nil // owned by the body now
	if rc.rest != nil {
		parts = append(parts, rc.rest)
		// The rest is read from the backend's body: the delivered
		// body closes it.
		body.src, rc.src = rc.src, nil
	}
	body.r = io.MultiReader(parts...)
	ex.Body = body
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
	src  io.Reader // the backend's body the rest is read from, or nil
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
	b.once.Do(func() {
		b.err = b.sp.Close()
		closeBody(b.src)
	})
	return b.err
}

var _ io.Closer = (*spooledBody)(nil)
