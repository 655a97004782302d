package proxy

// Benchmarks of a whole in-process proxy.Server against a minimal, fast
// POP3 backend on loopback, each next to the same client talking to the
// backend directly, so that the difference is what popgate adds:
//
//	go test ./proxy -run '^$' -bench . -benchmem
//	go test ./proxy -run '^$' -bench 'ProxyNoop/popgate' -cpuprofile cpu.out
//
// allocs/op and B/op count the client, the backend and the proxy; compare
// the "direct" and "popgate" sub-benchmarks to see the proxy's share.
// BenchmarkProxyIdleSessions reports live heap and stack per idle session
// after a GC (not RSS, which integration/popload measures).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/audit"
)

// newBenchBackend starts the tests' mailbox backend (script_backend_test.go)
// over messages, taking any password: it answers from prepared bytes, a
// pipelined burst in one write, and records nothing under a benchmark, so
// it costs as little as a server can and the proxy's share stands out.
func newBenchBackend(b *testing.B, messages ...[]byte) *scriptBackend {
	b.Helper()
	m := newMailbox()
	m.greeting, m.passwords = "+OK bench ready <1.2@bench>", nil
	for _, msg := range messages {
		m.wire = append(m.wire, []byte(fmt.Sprintf("+OK %d octets\r\n%s.\r\n", len(msg), stuff(msg))))
	}
	return newScriptBackend(b, m.serve)
}

// benchProxy starts a proxy in front of backend and returns the address
// of its listener.
func benchProxy(b *testing.B, backend string, connect ConnectMode, tlsConf *tls.Config, fs ...filters.Filter) string {
	b.Helper()
	l := Listener{Name: "bench", Address: "127.0.0.1:0", Backend: "be", Connect: connect,
		Limits: Limits{PreLoginTimeout: time.Hour}, Filters: fs}
	if tlsConf != nil {
		l.TLS, l.TLSConfig = TLSImplicit, tlsConf
	}
	cfg := &Config{
		Listeners: []Listener{l},
		Backends:  map[string]*Backend{"be": {Name: "be", Address: backend}},
	}
	srv := New(hclog.NewNullLogger())
	if err := srv.Start(cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addr("bench").String()
}

// benchClient is a logged-in POP3 client.
type benchClient struct {
	c net.Conn
	r *bufio.Reader
}

func dialBench(b *testing.B, addr string, login bool) *benchClient {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	bc := &benchClient{c: c, r: bufio.NewReaderSize(c, 64<<10)}
	bc.status(b)
	if login {
		io.WriteString(c, "USER bench\r\nPASS bench\r\n")
		bc.status(b)
		bc.status(b)
	}
	return bc
}

func (bc *benchClient) status(b *testing.B) {
	line, err := bc.r.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("+OK")) {
		b.Fatalf("status %q: %v", line, err)
	}
}

// body reads a body up to its terminator and returns its wire length.
func (bc *benchClient) body(b *testing.B) int {
	n := 0
	for {
		line, err := bc.r.ReadSlice('\n')
		if err != nil {
			b.Fatalf("body: %v", err)
		}
		if len(line) == 3 && line[0] == '.' {
			return n
		}
		n += len(line)
	}
}

// benchTargets runs fn against the backend directly, through popgate, and
// through popgate with a filter that has both sides and does nothing (the
// cost of the chain itself, and of decoding bodies for it).
func benchTargets(b *testing.B, backend string, fn func(b *testing.B, addr string)) {
	b.Run("direct", func(b *testing.B) { fn(b, backend) })
	b.Run("popgate", func(b *testing.B) { fn(b, benchProxy(b, backend, ConnectOnAccept, nil)) })
	b.Run("popgate-filter", func(b *testing.B) { fn(b, benchProxy(b, backend, ConnectOnAccept, nil, benchFilter{})) })
	b.Run("popgate-audit", func(b *testing.B) {
		f, err := audit.New(audit.Config{Path: filepath.Join(b.TempDir(), "audit.jsonl"), Chain: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		fn(b, benchProxy(b, backend, ConnectOnAccept, nil, f))
	})
}

// benchFilter is a filter with both sides that changes nothing.
type benchFilter struct{}

func (benchFilter) Name() string                                      { return "bench" }
func (benchFilter) Command(context.Context, *filters.Exchange) error  { return nil }
func (benchFilter) Response(context.Context, *filters.Exchange) error { return nil }

func BenchmarkProxyNoop(b *testing.B) {
	bb := newBenchBackend(b)
	benchTargets(b, bb.addr(), func(b *testing.B, addr string) {
		c := dialBench(b, addr, true)
		b.ReportAllocs()
		for b.Loop() {
			io.WriteString(c.c, "NOOP\r\n")
			c.status(b)
		}
	})
}

func BenchmarkProxyNoopPipelined100(b *testing.B) {
	bb := newBenchBackend(b)
	batch := bytes.Repeat([]byte("NOOP\r\n"), 100)
	benchTargets(b, bb.addr(), func(b *testing.B, addr string) {
		c := dialBench(b, addr, true)
		b.ReportAllocs()
		for b.Loop() {
			c.c.Write(batch)
			for range 100 {
				c.status(b)
			}
		}
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "NOOPs/s")
	})
}

func BenchmarkProxyRetr10MiB(b *testing.B) {
	msg := benchMessage(10 << 20)
	bb := newBenchBackend(b, msg)
	benchTargets(b, bb.addr(), func(b *testing.B, addr string) {
		c := dialBench(b, addr, true)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			io.WriteString(c.c, "RETR 1\r\n")
			c.status(b)
			c.body(b)
		}
	})
}

func BenchmarkProxyRetrPipelined1000(b *testing.B) {
	msgs := make([][]byte, 1000)
	var cmds bytes.Buffer
	for i := range msgs {
		msgs[i] = []byte(fmt.Sprintf("Subject: message %d\r\n\r\nThis is small message number %d.\r\n", i+1, i+1))
		fmt.Fprintf(&cmds, "RETR %d\r\n", i+1)
	}
	bb := newBenchBackend(b, msgs...)
	benchTargets(b, bb.addr(), func(b *testing.B, addr string) {
		c := dialBench(b, addr, true)
		b.ReportAllocs()
		for b.Loop() {
			go c.c.Write(cmds.Bytes())
			for range msgs {
				c.status(b)
				c.body(b)
			}
		}
		b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "messages/s")
	})
}

// BenchmarkProxyIdleSessions opens b.N idle sessions (greeting read, no
// login) and reports the live heap and goroutine stacks they hold. The
// numbers include the in-process client's side of each connection (and,
// for on-accept, the bench backend's), so they are upper bounds for
// popgate; -benchtime 4000x gives stable figures within the default limit
// of 20000 open files.
func BenchmarkProxyIdleSessions(b *testing.B) {
	bb := newBenchBackend(b)
	for _, tc := range []struct {
		name    string
		connect ConnectMode
		tls     bool
	}{
		{"after-auth", ConnectAfterAuth, false},
		{"on-accept", ConnectOnAccept, false},
		{"after-auth-tls", ConnectAfterAuth, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// Each session holds a client, a proxy and, on-accept, a backend
			// connection, each with a descriptor at both ends.
			var rl syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || uint64(b.N)*4+100 > rl.Cur {
				b.Skipf("%d sessions need %d open files; the limit is %d", b.N, b.N*4+100, rl.Cur)
			}
			var conf *tls.Config
			if tc.tls {
				conf = testTLSConfig(b)
			}
			addr := benchProxy(b, bb.addr(), tc.connect, conf)
			heap0, stack0 := liveBytes()
			conns := make([]net.Conn, 0, 1000)
			for range b.N {
				c := dialIdle(b, addr, tc.tls)
				conns = append(conns, c)
			}
			b.StopTimer()
			heap1, stack1 := liveBytes()
			b.ReportMetric(float64(heap1-heap0)/float64(b.N), "heap-B/session")
			b.ReportMetric(float64(stack1-stack0)/float64(b.N), "stack-B/session")
			if dir := os.Getenv("POPGATE_BENCH_HEAPDIR"); dir != "" && b.N >= 1000 {
				writeHeapProfile(b, filepath.Join(dir, "idle-"+tc.name+".heap"))
			}
			for _, c := range conns {
				c.Close()
			}
		})
	}
}

// writeHeapProfile writes the live heap (as of the last GC) to file, to
// see which allocations idle sessions hold:
//
//	POPGATE_BENCH_HEAPDIR=/tmp go test ./proxy -run '^$' -bench IdleSessions -benchtime 4000x -memprofilerate 1
//	go tool pprof -sample_index=inuse_space -top /tmp/idle-after-auth.heap
func writeHeapProfile(b *testing.B, file string) {
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// dialIdle connects and reads the greeting (after a TLS handshake).
func dialIdle(b *testing.B, addr string, useTLS bool) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	if useTLS {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		c = tc
	}
	line, err := bufio.NewReaderSize(c, 64).ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(line, []byte("+OK")) {
		b.Fatalf("greeting %q: %v", line, err)
	}
	return c
}

// liveBytes returns the live heap and the goroutine stacks, after a GC.
func liveBytes() (heap, stack int64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), int64(ms.StackInuse)
}

// benchMessage is a message of about size octets: headers, then lines of
// 76 base64-like characters, one starting with a dot now and then.
func benchMessage(size int) []byte {
	var m bytes.Buffer
	m.WriteString("From: a@example.org\r\nTo: b@example.org\r\nSubject: bench\r\n\r\n")
	line := []byte(strings.Repeat("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 2)[:76])
	for i := 0; m.Len() < size; i++ {
		if i%100 == 99 {
			m.WriteString(".dot line\r\n")
		}
		m.Write(line)
		m.WriteString("\r\n")
	}
	return m.Bytes()
}
