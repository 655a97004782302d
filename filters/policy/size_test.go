package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// TestMaxMessageSize checks each RETR and TOP form in a new session: the
// first size check reads one full LIST; a message the listing does not
// name is asked for with "LIST n", whose -ERR is the answer. The size
// check never edits Out: a refused RETR or TOP is not sent, and the LIST
// is the filter's own round trip, not the exchange's command.
func TestMaxMessageSize(t *testing.T) {
	tests := []struct {
		line     string
		sent     []string
		response parser.Response
	}{
		{"RETR 1", []string{"LIST", "RETR 1"}, parser.OK("message follows")},
		{"RETR 2", []string{"LIST"}, tooLarge},
		{"RETR 3", []string{"LIST", "LIST 3"}, parser.Err("", "no such message")},
		{"RETR 01", []string{"LIST", "RETR 01"}, parser.OK("message follows")},
		{"RETR", nil, parser.Err("", "invalid message number")},
		{"RETR 1 2", nil, parser.Err("", "invalid message number")},
		{"RETR 0", nil, parser.Err("", "invalid message number")},
		{"RETR -1", nil, parser.Err("", "invalid message number")},
		{"TOP 1 10", []string{"LIST", "TOP 1 10"}, parser.OK("done")},
		{"TOP 1 0", []string{"LIST", "TOP 1 0"}, parser.OK("done")},
		{"TOP 2 9999999999", []string{"LIST"}, tooLarge},
		{"TOP 2 0", []string{"LIST"}, tooLarge},
		{"TOP 3 0", []string{"LIST", "LIST 3"}, parser.Err("", "no such message")},
		{"TOP 1", nil, parser.Err("", "invalid message number")},
		{"TOP 1 x", nil, parser.Err("", "invalid message number")},
		{"TOP 1 -1", nil, parser.Err("", "invalid message number")},
		{"TOP 1 10 5", nil, parser.Err("", "invalid message number")},
		{"TOP 0 10", nil, parser.Err("", "invalid message number")},
	}
	f := mustNew(t, Config{MaxMessageSize: 1000})
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			ex, sent, err := serve(t, f, tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sent, tt.sent) {
				t.Errorf("backend was sent %q, want %q", sent, tt.sent)
			}
			if ex.Response != tt.response {
				t.Errorf("response %v, want %v", ex.Response, tt.response)
			}
			if ex.exclusive != (len(tt.sent) > 0) {
				t.Errorf("exclusive = %v; want it exactly when the backend is asked", ex.exclusive)
			}
			if ex.Out.String() != tt.line {
				t.Errorf("Out = %q, want %q", ex.Out, tt.line)
			}
			if tt.response.IsOK() && tt.line[:4] == "RETR" && !strings.HasSuffix(ex.body, "body\r\n") {
				t.Errorf("RETR body %q", ex.body)
			}
			if ex.Command.String() != tt.line {
				t.Errorf("Command edited to %q", ex.Command)
			}
		})
	}
}

// TestOneListPerSession checks that a session's listing is read once: a
// burst of RETR and TOP after the first is checked from the cache, not
// exclusive, so it stays pipelined.
func TestOneListPerSession(t *testing.T) {
	s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), server)
	for i, step := range []struct {
		line      string
		exclusive bool
		response  parser.Response
	}{
		{"RETR 1", true, parser.OK("message follows")},
		{"RETR 2", false, tooLarge},
		{"TOP 1 5", false, parser.OK("done")},
		{"TOP 2 0", false, tooLarge},
		{"RETR 01", false, parser.OK("message follows")},
		{"RETR 1", false, parser.OK("message follows")},
	} {
		ex, err := s.serve(step.line)
		if err != nil || ex.Response != step.response || ex.exclusive != step.exclusive {
			t.Errorf("%d %s: %v, %v, exclusive %v; want %v, exclusive %v",
				i, step.line, ex.Response, err, ex.exclusive, step.response, step.exclusive)
		}
	}
	want := []string{"LIST", "RETR 1", "TOP 1 5", "RETR 01", "RETR 1"}
	if got := s.commands(); !slices.Equal(got, want) {
		t.Errorf("backend was sent %q, want %q", got, want)
	}
}

// TestMissingFromListing checks a message the cached listing does not
// name, as a message marked as deleted: it is asked for with "LIST n"
// each time, since RSET may bring it back (RFC 1939 section 5), and its
// size is cached once known, so that it cannot pass unchecked.
func TestMissingFromListing(t *testing.T) {
	deleted := true // message 2 is marked as deleted until RSET
	b := func(cmd parser.Command) (parser.Response, string) {
		switch {
		case cmd.Verb == "RSET":
			deleted = false
		case deleted && cmd.Verb == "LIST" && len(cmd.Args) == 0:
			return parser.OK("1 messages"), "1 100\r\n"
		case deleted && cmd.Arg(0) == "2":
			return parser.Err("", "message 2 already deleted"), ""
		}
		return server(cmd)
	}
	s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), b)
	for i, step := range []struct {
		line      string
		exclusive bool
		response  parser.Response
		sent      []string
	}{
		{"RETR 1", true, parser.OK("message follows"), []string{"LIST", "RETR 1"}},
		{"RETR 2", true, parser.Err("", "message 2 already deleted"), []string{"LIST 2"}},
		{"RETR 2", true, parser.Err("", "message 2 already deleted"), []string{"LIST 2"}},
		{"RSET", false, parser.OK("done"), []string{"RSET"}},
		{"RETR 2", true, tooLarge, []string{"LIST 2"}},
		{"TOP 2 0", false, tooLarge, nil},
	} {
		ex, err := s.serve(step.line)
		if err != nil || ex.Response != step.response || ex.exclusive != step.exclusive {
			t.Errorf("%d %s: %v, %v, exclusive %v; want %v, exclusive %v",
				i, step.line, ex.Response, err, ex.exclusive, step.response, step.exclusive)
		}
		if got := s.commands(); !slices.Equal(got, step.sent) {
			t.Errorf("%d %s: backend was sent %q, want %q", i, step.line, got, step.sent)
		}
	}
}

// TestListRefused checks that a -ERR answer to the full LIST (before
// login, say) is the answer to the RETR, and that nothing is cached: the
// next RETR asks again.
func TestListRefused(t *testing.T) {
	refuse := true
	b := func(cmd parser.Command) (parser.Response, string) {
		if refuse && cmd.Verb == "LIST" {
			return parser.Err("", "not now"), ""
		}
		return server(cmd)
	}
	s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), b)
	ex, err := s.serve("RETR 1")
	if err != nil || ex.Response != parser.Err("", "not now") {
		t.Fatalf("RETR 1: %v %v", ex.Response, err)
	}
	refuse = false
	if ex, err := s.serve("RETR 2"); err != nil || !ex.exclusive || ex.Response != tooLarge {
		t.Errorf("RETR 2 after a refused LIST: %v %v, exclusive %v", ex.Response, err, ex.exclusive)
	}
	if got, want := s.commands(), []string{"LIST", "LIST"}; !slices.Equal(got, want) {
		t.Errorf("backend was sent %q, want %q", got, want)
	}
}

func TestSizeLimitBoundary(t *testing.T) {
	for limit, allowed := range map[int64]bool{99: false, 100: true, 101: true} {
		ex, _, _ := serve(t, mustNew(t, Config{MaxMessageSize: limit}), "RETR 1")
		if ex.Response.IsOK() != allowed {
			t.Errorf("limit %d, size 100: %v", limit, ex.Response)
		}
	}
}

// isSysTemp reports whether err answers -ERR [SYS/TEMP].
func isSysTemp(err error) bool {
	var pe *parser.Error
	return errors.As(err, &pe) && pe.Code == parser.CodeSysTemp
}

// TestMalformedListAnswer checks that a listing the filter cannot read
// fails the RETR with -ERR [SYS/TEMP] and caches nothing, whether it is
// the full listing or the answer to "LIST n".
func TestMalformedListAnswer(t *testing.T) {
	bad := []string{"1", "1 x", "1 -5", "1 +5", "one 100", "0 100", "1 99999999999999999999", "", strings.Repeat("1", 2000) + " 5"}
	for _, line := range bad {
		b := func(cmd parser.Command) (parser.Response, string) {
			if cmd.Verb == "LIST" {
				return parser.OK(""), "2 5000\r\n" + line + "\r\n"
			}
			return server(cmd)
		}
		s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), b)
		if _, err := s.serve("RETR 1"); !isSysTemp(err) {
			t.Errorf("listing line %.20q: error %v, want -ERR [SYS/TEMP]", line, err)
		}
		if got := s.commands(); !slices.Equal(got, []string{"LIST"}) {
			t.Errorf("listing line %.20q: backend was sent %q", line, got)
		}
		if !s.chain.Exclusive(filtertest.Exchange(s.sess, parser.NewCommand("RETR", "2"))) {
			t.Errorf("listing line %.20q: part of a malformed listing cached", line)
		}
	}
	// "LIST n", for a message the full listing did not name.
	for _, text := range []string{"", "1", "2 100", "1 x", "1 -5", "1 +5", "one 100", "1 99999999999999999999"} {
		b := func(cmd parser.Command) (parser.Response, string) {
			switch {
			case cmd.Verb == "LIST" && len(cmd.Args) == 0:
				return parser.OK(""), ""
			case cmd.Verb == "LIST":
				return parser.OK(text), ""
			}
			return server(cmd)
		}
		s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), b)
		if _, err := s.serve("RETR 1"); !isSysTemp(err) {
			t.Errorf("LIST 1 answer %q: error %v, want -ERR [SYS/TEMP]", text, err)
		}
		if got := s.commands(); !slices.Equal(got, []string{"LIST", "LIST 1"}) {
			t.Errorf("LIST 1 answer %q: backend was sent %q", text, got)
		}
	}
	// Extra words after the size are allowed, in both.
	b := func(cmd parser.Command) (parser.Response, string) {
		switch {
		case cmd.Verb == "LIST" && len(cmd.Args) == 0:
			return parser.OK(""), "2 5000 octets\r\n"
		case cmd.Verb == "LIST":
			return parser.OK("1 100 octets"), ""
		}
		return server(cmd)
	}
	s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), b)
	for _, step := range []struct {
		line string
		want parser.Response
	}{{"RETR 1", parser.OK("message follows")}, {"RETR 2", tooLarge}} {
		if ex, err := s.serve(step.line); err != nil || ex.Response != step.want {
			t.Errorf("listing with trailing text, %s: %v %v", step.line, ex.Response, err)
		}
	}
}

// failing is a Backend whose LIST fails as a lost connection does.
type failing struct {
	err  error
	sent []string
}

func (b *failing) Call(_ context.Context, cmd parser.Command) (parser.Response, io.Reader, error) {
	b.sent = append(b.sent, cmd.String())
	return parser.Response{}, nil, b.err
}

// TestListFailure checks that a LIST the backend cannot answer ends the
// session: the error is not a *parser.Error.
func TestListFailure(t *testing.T) {
	boom := errors.New("backend connection lost")
	f := mustNew(t, Config{MaxMessageSize: 1000})
	b := &failing{err: boom}
	ex := filtertest.Exchange(&filters.Session{ID: "s1"}, parser.NewCommand("RETR", "1"))
	ex.Backend = b
	err := f.Command(context.Background(), ex)
	var pe *parser.Error
	if !errors.Is(err, boom) || errors.As(err, &pe) {
		t.Fatalf("error %v, want the LIST failure", err)
	}
	if !slices.Equal(b.sent, []string{"LIST"}) {
		t.Errorf("backend was sent %q", b.sent)
	}
}

// TestSizeUnknownWithoutBackend checks that a RETR whose size is not
// cached is refused -ERR [SYS/TEMP], never sent unchecked, when the
// exchange has no Backend to ask.
func TestSizeUnknownWithoutBackend(t *testing.T) {
	f := mustNew(t, Config{MaxMessageSize: 1000})
	ex := filtertest.Exchange(&filters.Session{ID: "s1"}, parser.NewCommand("RETR", "1"))
	if err := f.Command(context.Background(), ex); !isSysTemp(err) {
		t.Fatalf("error %v, want -ERR [SYS/TEMP]", err)
	}
}

// TestListingReadWhole checks that the whole listing is read and cached,
// down to its last line, and that message numbers beyond the cache's
// bound are asked for one by one.
func TestListingReadWhole(t *testing.T) {
	const n = 5000
	var listing strings.Builder
	for i := 1; i <= n; i++ {
		size := 10
		if i == n {
			size = 5000
		}
		fmt.Fprintf(&listing, "%d %d\r\n", i, size)
	}
	big, bigOver := fmt.Sprint(maxCachedMsg+1), fmt.Sprint(maxCachedMsg+2)
	listing.WriteString(big + " 10\r\n" + bigOver + " 5000\r\n")
	b := func(cmd parser.Command) (parser.Response, string) {
		switch {
		case cmd.Verb == "LIST" && len(cmd.Args) == 0:
			return parser.OK(""), listing.String()
		case cmd.Verb == "LIST" && cmd.Arg(0) == bigOver:
			return parser.OK(bigOver + " 5000"), ""
		case cmd.Verb == "LIST":
			return parser.OK(cmd.Arg(0) + " 10"), ""
		}
		return parser.OK(""), "x\r\n"
	}
	s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), b)
	for _, step := range []struct {
		line      string
		exclusive bool
		ok        bool
	}{
		{"RETR 1", true, true},
		{fmt.Sprintf("RETR %d", n), false, false},
		{fmt.Sprintf("RETR %d", n-1), false, true},
		{"RETR " + big, true, true},
		{"RETR " + big, true, true},
		{"TOP " + bigOver + " 0", true, false},
		{"TOP " + bigOver + " 0", true, false},
	} {
		ex, err := s.serve(step.line)
		if err != nil || ex.exclusive != step.exclusive || ex.Response.IsOK() != step.ok {
			t.Errorf("%s: %v %v, exclusive %v", step.line, ex.Response, err, ex.exclusive)
		}
	}
	want := []string{"LIST", "RETR 1", fmt.Sprintf("RETR %d", n-1), "LIST " + big, "RETR " + big, "LIST " + big, "RETR " + big,
		"LIST " + bigOver, "LIST " + bigOver}
	if got := s.commands(); !slices.Equal(got, want) {
		t.Errorf("backend was sent %q, want %q", got, want)
	}
}

// TestOuterRewritePassesThrough checks that an exchange an outer filter
// turned into another command (Out edited to UIDL) is not size-checked.
func TestOuterRewritePassesThrough(t *testing.T) {
	s := newSession(t, mustNew(t, Config{MaxMessageSize: 1000}), server)
	ex := filtertest.Exchange(s.sess, parser.NewCommand("RETR", "1"))
	ex.Out = parser.NewCommand("UIDL", "1")
	if s.chain.Exclusive(ex) {
		t.Error("rewritten exchange exclusive")
	}
	if err := filtertest.Run(context.Background(), s.chain, ex, s.b.Answer); err != nil {
		t.Fatal(err)
	}
	if got := s.commands(); !slices.Equal(got, []string{"UIDL 1"}) {
		t.Errorf("backend was sent %q", got)
	}
}

func TestBitset(t *testing.T) {
	var b bitset
	for _, i := range []int{0, 1, 63, 64, 1000} {
		b.set(i)
	}
	for i := 0; i < 1100; i++ {
		want := i == 0 || i == 1 || i == 63 || i == 64 || i == 1000
		if b.has(i) != want {
			t.Errorf("has(%d) = %v", i, !want)
		}
	}
	var o bitset
	o.set(2)
	o.or(b)
	if !o.has(2) || !o.has(1000) || o.has(3) {
		t.Error("or lost members")
	}
}
