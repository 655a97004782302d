package proxy

// The filters a transcript's "filter:" headers name: popgate's own, and
// small in-test ones that stand in for what cannot run here (clamav needs
// clamd) or make the core's ordering visible.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/apop"
	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/filters/policy"
	"github.com/popgate/popgate/filters/rewrite"
	"github.com/popgate/popgate/parser"
)

// endObserver reports the end of the session for S< steps.
type endObserver struct{ ended chan sessionReport }

func (o *endObserver) Name() string { return "transcript-observer" }

func (o *endObserver) SessionStarted(*filters.Session) {}

func (o *endObserver) SessionEnded(s *filters.Session, end filters.SessionEnd) {
	select {
	case o.ended <- sessionReport{login: s.Login, end: end}:
	default:
	}
}

// newFilter makes the filter a "filter:" header names.
func (r *transcriptRun) newFilter(spec []string) (filters.Filter, error) {
	name, args := spec[0], spec[1:]
	opts := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		opts[k] = v
	}
	creds := func() map[string]string {
		m := map[string]string{}
		for _, a := range args {
			u, p, _ := strings.Cut(a, ":")
			m[u] = p
		}
		return m
	}
	switch name {
	case "tap":
		return tapFilter{}, nil
	case "seq":
		return &seqFilter{}, nil
	case "roundtrip":
		if len(args) < 2 {
			return nil, errors.New("usage: roundtrip VERB COMMAND...")
		}
		return &roundTripFilter{verb: args[0], call: parser.NewCommand(args[1], args[2:]...)}, nil
	case "policy":
		cfg := policy.Config{}
		if v, ok := opts["deny"]; ok {
			cfg.Deny = strings.Split(v, ",")
		}
		if v, ok := opts["max_message_size"]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, err
			}
			cfg.MaxMessageSize = n
		}
		return policy.New(cfg)
	case "audit":
		r.auditLog = filepath.Join(r.t.TempDir(), "audit.log")
		f, err := audit.New(audit.Config{Path: r.auditLog, Sync: audit.SyncNone, Chain: opts["chain"] == "true"}, nil)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, f)
		return f, nil
	case "apop":
		path := filepath.Join(r.t.TempDir(), "secrets")
		var lines strings.Builder
		for u, p := range creds() {
			lines.WriteString(u + ":" + p + "\n")
		}
		if err := os.WriteFile(path, []byte(lines.String()), 0o600); err != nil {
			return nil, err
		}
		return apop.New(apop.Config{SecretsFile: path, Host: "popgate.test"}, nil)
	case "rewrite":
		_, strip := opts["strip_domain"]
		_, lower := opts["lowercase"]
		return rewrite.New(rewrite.Config{StripDomain: strip, Lowercase: lower, AddDomain: opts["add_domain"]}, nil)
	case "verifier":
		return secretsVerifier(creds()), nil
	case "verdict":
		if len(args) != 2 || args[0] != "reject" && args[0] != "replace" && args[0] != "fail" {
			return nil, errors.New("usage: verdict reject|replace|fail MSG")
		}
		return verdictFilter{action: args[0], msg: args[1]}, nil
	}
	return nil, fmt.Errorf("unknown filter %q", name)
}

// tapFilter has both sides and changes nothing: with it on, bodies are
// decoded for the Response side and re-encoded for the client.
type tapFilter struct{}

func (tapFilter) Name() string { return "tap" }

func (tapFilter) Command(context.Context, *filters.Exchange) error { return nil }

func (tapFilter) Response(context.Context, *filters.Exchange) error { return nil }

// seqFilter numbers each exchange its Command side sees and appends the
// number to the answer its Response side sees, so a transcript shows that
// the two sides of every exchange meet, in order, however deep the
// pipeline.
type seqFilter struct {
	mu   sync.Mutex
	next map[*filters.Session]int
	seen map[*filters.Exchange]int
}

func (f *seqFilter) Name() string { return "seq" }

func (f *seqFilter) Command(_ context.Context, ex *filters.Exchange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next == nil {
		f.next, f.seen = map[*filters.Session]int{}, map[*filters.Exchange]int{}
	}
	f.next[ex.Session]++
	f.seen[ex] = f.next[ex.Session]
	return nil
}

func (f *seqFilter) Response(_ context.Context, ex *filters.Exchange) error {
	f.mu.Lock()
	n, ok := f.seen[ex]
	delete(f.seen, ex)
	f.mu.Unlock()
	if !ok {
		return errors.New("seq: a Response side without its Command side")
	}
	ex.Response.Text = strings.TrimSpace(ex.Response.Text + fmt.Sprintf(" #%d", n))
	return nil
}

// roundTripFilter makes an extra backend round trip before every command
// with a given verb, as audit's UIDL listing and policy's LIST do before
// their first: it asks to run alone, then calls the backend, reading the
// body of the answer whole.
type roundTripFilter struct {
	verb string
	call parser.Command
}

func (f *roundTripFilter) Name() string { return "roundtrip" }

func (f *roundTripFilter) Exclusive(ex *filters.Exchange) bool { return ex.Command.Verb == f.verb }

func (f *roundTripFilter) Command(ctx context.Context, ex *filters.Exchange) error {
	if ex.Command.Verb != f.verb {
		return nil
	}
	if ex.Backend == nil {
		return errors.New("roundtrip: an exclusive exchange without a Backend")
	}
	resp, body, err := ex.Backend.Call(ctx, f.call)
	if err != nil {
		return err
	}
	if body != nil {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return err
		}
	}
	if !resp.IsOK() {
		return parser.NewError(parser.CodeSysTemp, "round trip refused", nil)
	}
	return nil
}

// verdictFilter stands in for the clamav filter, which needs clamd: its
// Response side reads the start of one message's body, as a scanner
// does, then refuses the message (reject), replaces it (replace), or
// fails with an error that is no *parser.Error (fail), so a transcript
// shows that the rest of the backend's body is drained and the pipeline
// stays in step, or that the session ends.
type verdictFilter struct{ action, msg string }

func (f verdictFilter) Name() string { return "verdict" }

func (f verdictFilter) Response(_ context.Context, ex *filters.Exchange) error {
	if ex.Command.Verb != "RETR" || ex.Command.Arg(0) != f.msg || ex.Body == nil || !ex.Response.IsOK() {
		return nil
	}
	if _, err := io.ReadFull(ex.Body, make([]byte, 8)); err != nil {
		return err
	}
	switch f.action {
	case "reject":
		return parser.NewError("", "message refused by the scanner", nil)
	case "fail":
		return errors.New("verdict: the scanner failed")
	}
	if c, ok := ex.Body.(io.Closer); ok {
		c.Close()
	}
	ex.Body = strings.NewReader("Subject: replaced\r\n\r\n.the message was replaced\r\n")
	return nil
}
