// Command auditgen writes a large chained audit trail of realistic POP3
// sessions, for measuring `popgate audit search` on big trails
// (integration/bench_audit_search.sh).
//
// Usage:
//
//	auditgen -out FILE [-size 1GiB] [-end RFC3339] [-days 30] [-seed 1]
//
// Sessions look like a mail client's: session_start, CAPA, USER, PASS and
// the auth record, STAT, UIDL, then RETR (with its retrieve and scan
// records) and DELE (with its delete record) of a few messages, QUIT with
// its commit record, and session_end. Up to eight sessions are open at
// once and their records interleave, as they do in a real trail. Users are
// user0000 to user4999 and alice, whose sessions come from 203.0.113.0/24;
// times are spread evenly over -days days ending at -end. The chain is
// computed as popgate's writer computes it (filters/audit/doc.go), so
// `popgate audit verify` accepts the file.
//
// It prints one line: the records, sessions and octets written, and how
// many sessions were alice's and how many messages she read and deleted, so a
// benchmark can check the search found them all.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	out := flag.String("out", "", "write the trail to `FILE`")
	size := flag.String("size", "1GiB", "stop after about this many octets (KiB, MiB, GiB suffixes)")
	endFlag := flag.String("end", "", "time of the last record, RFC 3339 (default: now)")
	days := flag.Int("days", 30, "the trail covers this many days")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	limit, err := parseSize(*size)
	if err != nil {
		fail(err)
	}
	end := time.Now().UTC()
	if *endFlag != "" {
		if end, err = time.Parse(time.RFC3339, *endFlag); err != nil {
			fail(fmt.Errorf("-end: %w", err))
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	g := &gen{
		w:     bufio.NewWriterSize(f, 1<<20),
		rng:   rand.New(rand.NewPCG(*seed, 1)),
		limit: limit,
	}
	// Spread the records over the period: estimate about 390 octets a
	// record, so the step between records makes the trail end near end.
	g.step = time.Duration(int64(*days) * int64(24*time.Hour) / max(limit/390, 1))
	g.now = end.Add(-time.Duration(*days) * 24 * time.Hour)
	g.run()
	if err := g.w.Flush(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
	fmt.Printf("records=%d sessions=%d bytes=%d alice_sessions=%d alice_retrieves=%d alice_deletes=%d first=%s last=%s\n",
		g.records, g.sessions, g.written, g.aliceSessions, g.aliceRetrieves, g.aliceDeletes,
		g.first.Format(time.RFC3339Nano), g.last.Format(time.RFC3339Nano))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "auditgen:", err)
	os.Exit(1)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// gen writes the trail.
type gen struct {
	w     *bufio.Writer
	rng   *rand.Rand
	limit int64
	now   time.Time
	step  time.Duration
	prev  string // hash of the last record
	line  []byte

	records, sessions, written                  int64
	aliceSessions, aliceRetrieves, aliceDeletes int64
	first, last                                 time.Time
}

// session is an open session: the records it still has to write.
type session struct {
	pending []func(g *gen)
}

func (g *gen) run() {
	var open []*session
	for g.written < g.limit || len(open) > 0 {
		if g.written < g.limit && len(open) < 8 && (len(open) == 0 || g.rng.IntN(4) == 0) {
			open = append(open, g.newSession())
		}
		i := g.rng.IntN(len(open))
		s := open[i]
		s.pending[0](g)
		s.pending = s.pending[1:]
		if len(s.pending) == 0 {
			open = append(open[:i], open[i+1:]...)
		}
	}
}

// newSession plans the records of one session.
func (g *gen) newSession() *session {
	g.sessions++
	id := fmt.Sprintf("%016x", g.rng.Uint64())
	user := fmt.Sprintf("user%04d", g.rng.IntN(5000))
	client := fmt.Sprintf("198.51.100.%d:%d", g.rng.IntN(254)+1, 30000+g.rng.IntN(30000))
	alice := g.rng.IntN(500) == 0
	if alice {
		user = "alice"
		client = fmt.Sprintf("203.0.113.%d:%d", g.rng.IntN(254)+1, 30000+g.rng.IntN(30000))
		g.aliceSessions++
	}
	h := func(event string) string {
		return fmt.Sprintf(`"event":%q,"session":%q,"client":%q,"listener":"pop3s"`, event, id, client)
	}
	s := &session{}
	add := func(fn func(g *gen)) { s.pending = append(s.pending, fn) }
	seq := 0
	cmd := func(verb, args string, bytes int) {
		seq++
		n := seq
		add(func(g *gen) {
			g.record(h("command") + fmt.Sprintf(`,"seq":%d,"verb":%q,"args":%q,"status":"+OK","code":"","bytes":%d,"duration_us":%d,"complete":true`,
				n, verb, args, bytes, 100+g.rng.IntN(5000)))
		})
	}
	add(func(g *gen) {
		g.record(h("session_start") + `,"local":"192.0.2.10:995","tls_version":"TLS 1.3","tls_cipher":"TLS_AES_128_GCM_SHA256","sni":"mail.example.net"`)
	})
	cmd("CAPA", "", 60)
	cmd("USER", user, 0)
	cmd("PASS", "***", 0)
	add(func(g *gen) {
		g.record(h("auth") + fmt.Sprintf(`,"client_user":%q,"backend_user":%q,"mechanism":"USER","backend":"main","result":"ok","code":""`, user, user))
	})
	msgs := g.rng.IntN(6)
	cmd("STAT", "", 0)
	cmd("UIDL", "", 30*msgs)
	var deleted []int
	for m := 1; m <= msgs; m++ {
		size := 2000 + g.rng.IntN(200000)
		uidl := fmt.Sprintf("%08x%08x", g.rng.Uint32(), g.rng.Uint32())
		msgid := fmt.Sprintf("<%x.%d@mx%d.example.org>", g.rng.Uint64(), m, g.rng.IntN(9))
		cmd("RETR", strconv.Itoa(m), size)
		if alice {
			g.aliceRetrieves++
		}
		mm := m
		add(func(g *gen) {
			g.record(h("retrieve") + fmt.Sprintf(`,"verb":"RETR","msg":%d,"uidl":%q,"size":%d,"message_id":%q,"complete":true`, mm, uidl, size, msgid))
		})
		add(func(g *gen) {
			g.record(h("scan") + fmt.Sprintf(`,"verb":"RETR","msg":%d,"verdict":"clean","virus":"","action":"deliver","error":"","bytes":%d,"duration_us":%d`, mm, size, 200+g.rng.IntN(3000)))
		})
		if g.rng.IntN(3) > 0 {
			cmd("DELE", strconv.Itoa(m), 0)
			add(func(g *gen) { g.record(h("delete") + fmt.Sprintf(`,"msg":%d,"uidl":%q`, mm, uidl)) })
			deleted = append(deleted, m)
			if alice {
				g.aliceDeletes++
			}
		}
	}
	cmd("QUIT", "", 0)
	add(func(g *gen) {
		list := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(deleted)), ","), "[]")
		g.record(h("commit") + fmt.Sprintf(`,"count":%d,"msgs":[%s]`, len(deleted), list))
	})
	add(func(g *gen) {
		g.record(h("session_end") + fmt.Sprintf(`,"duration_ms":%d,"bytes_in":%d,"bytes_out":%d,"reason":"quit","deletes_marked":%d,"deletes_committed":true`,
			50+g.rng.IntN(5000), 100+20*seq, 500+g.rng.IntN(1000000), len(deleted)))
	})
	return s
}

// record writes one chained record whose fields after "time" are body.
func (g *gen) record(body string) {
	g.now = g.now.Add(g.step/2 + time.Duration(g.rng.Int64N(int64(g.step)+1)))
	t := g.now.UTC()
	if g.records == 0 {
		g.first = t
	}
	g.last = t
	b := append(g.line[:0], `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `",`...)
	b = append(b, body...)
	b = append(b, `,"prev_hash":"`...)
	b = append(b, g.prev...)
	b = append(b, `"}`...)
	sum := sha256.Sum256(b)
	g.prev = hex.EncodeToString(sum[:])
	b = b[:len(b)-1]
	b = append(b, `,"hash":"`...)
	b = append(b, g.prev...)
	b = append(b, "\"}\n"...)
	g.line = b
	n, err := g.w.Write(b)
	if err != nil {
		fail(err)
	}
	g.written += int64(n)
	g.records++
}
