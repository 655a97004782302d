package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

func TestMaxMessageSize(t *testing.T) {
	tests := []struct {
		line     string
		sent     []string
		response parser.Response
		out      string
	}{
		{"RETR 1", []string{"LIST 1", "RETR 1"}, parser.OK("message follows"), "RETR 1"},
		{"RETR 2", []string{"LIST 2"}, tooLarge, "LIST 2"},
		{"RETR 3", []string{"LIST 3"}, parser.Err("", "no such message"), "LIST 3"},
		{"RETR 01", []string{"LIST 01", "RETR 01"}, parser.OK("message follows"), "RETR 01"},
		{"RETR", nil, parser.Err("", "invalid message number"), "RETR"},
		{"RETR 1 2", nil, parser.Err("", "invalid message number"), "RETR 1 2"},
		{"RETR 0", nil, parser.Err("", "invalid message number"), "RETR 0"},
		{"RETR -1", nil, parser.Err("", "invalid message number"), "RETR -1"},
		{"TOP 1 10", []string{"LIST 1", "TOP 1 10"}, parser.OK("done"), "TOP 1 10"},
		{"TOP 1 0", []string{"LIST 1", "TOP 1 0"}, parser.OK("done"), "TOP 1 0"},
		{"TOP 2 9999999999", []string{"LIST 2"}, tooLarge, "LIST 2"},
		{"TOP 2 0", []string{"LIST 2"}, tooLarge, "LIST 2"},
		{"TOP 3 0", []string{"LIST 3"}, parser.Err("", "no such message"), "LIST 3"},
		{"TOP 1", nil, parser.Err("", "invalid message number"), "TOP 1"},
		{"TOP 1 x", nil, parser.Err("", "invalid message number"), "TOP 1 x"},
		{"TOP 1 -1", nil, parser.Err("", "invalid message number"), "TOP 1 -1"},
		{"TOP 1 10 5", nil, parser.Err("", "invalid message number"), "TOP 1 10 5"},
		{"TOP 0 10", nil, parser.Err("", "invalid message number"), "TOP 0 10"},
	}
	f := mustNew(t, Config{MaxMessageSize: 1000})
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			b := &backend{t: t, answer: server}
			ex, body, err := serve(t, f.Wrap(b), tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.commands(); !slices.Equal(got, tt.sent) {
				t.Errorf("backend was sent %q, want %q", got, tt.sent)
			}
			if ex.Response != tt.response {
				t.Errorf("response %v, want %v", ex.Response, tt.response)
			}
			if ex.Out.String() != tt.out {
				t.Errorf("Out = %q, want %q", ex.Out, tt.out)
			}
			if tt.response.IsOK() && tt.line[:4] == "RETR" && !strings.HasSuffix(body, "body\r\n") {
				t.Errorf("RETR body %q", body)
			}
			if ex.Command.String() != tt.line {
				t.Errorf("Command edited to %q", ex.Command)
			}
		})
	}
}

func TestSizeLimitBoundary(t *testing.T) {
	for limit, allowed := range map[int64]bool{99: false, 100: true, 101: true} {
		b := &backend{t: t, answer: server}
		ex, _, _ := serve(t, mustNew(t, Config{MaxMessageSize: limit}).Wrap(b), "RETR 1")
		if ex.Response.IsOK() != allowed {
			t.Errorf("limit %d, size 100: %v", limit, ex.Response)
		}
	}
}

func TestMalformedListAnswer(t *testing.T) {
	for _, text := range []string{"", "1", "2 100", "1 x", "1 -5", "1 +5", "one 100", "1 99999999999999999999"} {
		b := &backend{t: t, answer: func(cmd parser.Command) answer {
			if cmd.Verb == "LIST" {
				return answer{resp: parser.OK(text)}
			}
			return server(cmd)
		}}
		_, _, err := serve(t, mustNew(t, Config{MaxMessageSize: 1000}).Wrap(b), "RETR 1")
		var pe *parser.Error
		if !errors.As(err, &pe) || pe.Code != parser.CodeSysTemp {
			t.Errorf("LIST answer %q: error %v, want -ERR [SYS/TEMP]", text, err)
		}
		if got := b.commands(); !slices.Equal(got, []string{"LIST 1"}) {
			t.Errorf("LIST answer %q: backend was sent %q", text, got)
		}
	}
	// Extra words after the size are allowed.
	b := &backend{t: t, answer: func(cmd parser.Command) answer {
		if cmd.Verb == "LIST" {
			return answer{resp: parser.OK("1 100 octets")}
		}
		return server(cmd)
	}}
	if ex, _, err := serve(t, mustNew(t, Config{MaxMessageSize: 1000}).Wrap(b), "RETR 1"); err != nil || !ex.Response.IsOK() {
		t.Errorf("LIST answer with trailing text: %v %v", ex.Response, err)
	}
}

func TestListFailure(t *testing.T) {
	boom := errors.New("backend connection lost")
	b := &backend{t: t, answer: func(cmd parser.Command) answer {
		if cmd.Verb == "LIST" {
			return answer{err: boom}
		}
		return server(cmd)
	}}
	_, _, err := serve(t, mustNew(t, Config{MaxMessageSize: 1000}).Wrap(b), "RETR 1")
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the LIST failure", err)
	}
	if got := b.commands(); !slices.Equal(got, []string{"LIST 1"}) {
		t.Errorf("backend was sent %q", got)
	}
}

// TestListBodyDrained checks that a body on the LIST answer (which it
// should not have) is read to its end before RETR is sent.
func TestListBodyDrained(t *testing.T) {
	body := &trackingReader{r: strings.NewReader("junk\r\n")}
	next := filters.HandlerFunc(func(_ context.Context, ex *filters.Exchange) error {
		switch ex.Out.Verb {
		case "LIST":
			ex.Response, ex.Body = parser.OK("1 10"), body
		case "RETR":
			if !body.eof {
				t.Error("RETR sent before the LIST body was drained")
			}
			ex.Response = parser.OK("")
		}
		return nil
	})
	ex, _, err := serve(t, mustNew(t, Config{MaxMessageSize: 1000}).Wrap(next), "RETR 1")
	if err != nil || !ex.Response.IsOK() || !body.eof {
		t.Fatalf("%v %v eof=%v", ex.Response, err, body.eof)
	}
}

type trackingReader struct {
	r   *strings.Reader
	eof bool
}

func (tr *trackingReader) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	if err != nil {
		tr.eof = true
	}
	return n, err
}

// TestOuterLookupPassesThrough checks that an outer filter's extra call on
// a RETR exchange (the audit filter asks UIDL n) is not size-checked.
func TestOuterLookupPassesThrough(t *testing.T) {
	b := &backend{t: t, answer: server}
	h := mustNew(t, Config{MaxMessageSize: 1000}).Wrap(b)
	retr := parser.NewCommand("RETR", "1")
	ex := &filters.Exchange{Command: retr, Out: parser.NewCommand("UIDL", "1")}
	if err := h.Serve(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	if got := b.commands(); !slices.Equal(got, []string{"UIDL 1"}) {
		t.Errorf("backend was sent %q", got)
	}
}
