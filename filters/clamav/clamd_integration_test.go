//go:build integration

package clamav

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/popgate/popgate/parser"
)

// Tests against the real clamd that integration/start.sh runs, with a
// signature for the EICAR test string. They read CLAMD_TCP and CLAMD_UNIX
// from $POPGATE_IT_DIR/env (default /tmp/popgate-it/env).

// eicar returns the 68-octet EICAR anti-virus test string. It is built
// from two halves so that no file of the repository holds it, and no
// scanner flags the source.
func eicar() []byte {
	const first = `X5O!P%@AP[4\PZX54(P^)7CC)7}$`
	const second = `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`
	return []byte(first + second)
}

// itEnv returns the integration environment's variables. Without it, the
// test fails under CI and is skipped elsewhere.
func itEnv(t testing.TB) map[string]string {
	t.Helper()
	dir := os.Getenv("POPGATE_IT_DIR")
	if dir == "" {
		dir = "/tmp/popgate-it"
	}
	data, err := os.ReadFile(filepath.Join(dir, "env"))
	env := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		env[k] = strings.Trim(v, `"'`)
	}
	if err == nil && (env["CLAMD_TCP"] == "" || env["CLAMD_UNIX"] == "") {
		err = errors.New("CLAMD_TCP or CLAMD_UNIX missing")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("integration environment: %v (run integration/start.sh)", err)
		}
		t.Skipf("integration environment: %v (run integration/start.sh)", err)
	}
	return env
}

// clamdAddrs returns the real clamd's addresses in this package's form.
func clamdAddrs(t testing.TB) map[string]string {
	env := itEnv(t)
	tcp, unix := env["CLAMD_TCP"], env["CLAMD_UNIX"]
	if !strings.Contains(tcp, "://") {
		tcp = "tcp://" + tcp
	}
	if !strings.Contains(unix, "://") {
		unix = "unix://" + unix
	}
	return map[string]string{"tcp": tcp, "unix": unix}
}

func TestIntegrationClamdScan(t *testing.T) {
	ctx := context.Background()
	clean10 := bytes.Repeat([]byte("An ordinary line of a large, clean message body.\r\n"), 10<<20/50)
	for network, addr := range clamdAddrs(t) {
		t.Run(network, func(t *testing.T) {
			c := newTestClient(t, addr, time.Minute)
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			v, err := c.Scan(ctx, strings.NewReader("Subject: hello\r\n\r\nnothing to see\r\n"))
			if err != nil || !v.Clean || v.Virus != "" {
				t.Fatalf("clean message: %+v, %v", v, err)
			}
			// A FOUND reply, whatever the signature is called (clamd
			// appends .UNOFFICIAL to local names).
			infected := append([]byte("Subject: test\r\n\r\n"), eicar()...)
			v, err = c.Scan(ctx, bytes.NewReader(infected))
			if err != nil || v.Clean || v.Virus == "" {
				t.Fatalf("EICAR: %+v, %v", v, err)
			}
			t.Logf("EICAR found as %q", v.Virus)
			v, err = c.Scan(ctx, bytes.NewReader(clean10))
			if err != nil || !v.Clean || v.Bytes != int64(len(clean10)) {
				t.Fatalf("10 MiB clean: %+v, %v", v, err)
			}
			t.Logf("10 MiB clean: %v in all, %v after the last octet", v.Duration, v.Wait)
		})
	}
}

func TestIntegrationFilter(t *testing.T) {
	addrs := clamdAddrs(t)
	t.Run("infected-replaced", func(t *testing.T) {
		h := newHarness(t, Config{Address: addrs["unix"]})
		msg := testHeader + "\r\nsee attachment\r\n" + string(eicar()) + "\r\n"
		r := h.run(t, retr, parser.OK(""), newBackend(strings.NewReader(wire(msg))))
		if r.err != nil || r.bodyErr != nil {
			t.Fatalf("Serve = %v, body error %v", r.err, r.bodyErr)
		}
		ev := verdictOf(t, r.ex)
		if ev.Action != ActionReplace || ev.Virus == "" {
			t.Fatalf("verdict = %+v", ev)
		}
		checkNotice(t, r.body, ev.Virus)
	})
	t.Run("clean-10MiB", func(t *testing.T) {
		const lines = 10 << 20 / 76
		h := newHarness(t, Config{Address: addrs["tcp"]})
		ex, err := h.serve(retr, parser.OK(""), newBackend(newLineWire(lines)))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, ex.Body); err != nil {
			t.Fatal(err)
		}
		ex.Body.(io.Closer).Close()
		if [32]byte(sum.Sum(nil)) != hashOf(lines) {
			t.Fatal("delivered body differs")
		}
		ev := verdictOf(t, ex)
		if ev.Action != ActionDeliver || !ev.Clean {
			t.Fatalf("verdict = %+v", ev)
		}
		t.Logf("10 MiB clean through the filter: wait after last octet %v", ev.Wait)
	})
	t.Run("clamd-size-limit", func(t *testing.T) {
		limit := streamMaxLength(t, itEnv(t)["CLAMD_CONF"])
		h := newHarness(t, Config{Address: addrs["tcp"], MaxSize: limit + 1<<20})
		r := h.run(t, retr, parser.OK(""), newBackend(newLineWire((limit+512<<10)/76)))
		if r.err != nil || r.ex.Response.String() != unavailable {
			t.Fatalf("Serve = %v, response %q", r.err, r.ex.Response)
		}
		ev := verdictOf(t, r.ex)
		if !errors.Is(ev.Err, ErrSizeLimit) {
			t.Fatalf("verdict error = %v, want ErrSizeLimit (clamd's reply, not the reset)", ev.Err)
		}
		t.Logf("past StreamMaxLength %d: %v", limit, ev.Err)
	})
}

// streamMaxLength reads StreamMaxLength from a clamd.conf, skipping the
// test when it cannot.
func streamMaxLength(t *testing.T, conf string) int64 {
	t.Helper()
	f, err := os.Open(conf)
	if err != nil {
		t.Skipf("clamd.conf: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 || fields[0] != "StreamMaxLength" {
			continue
		}
		v, mult := fields[1], int64(1)
		switch strings.ToUpper(v[len(v)-1:]) {
		case "K":
			mult, v = 1<<10, v[:len(v)-1]
		case "M":
			mult, v = 1<<20, v[:len(v)-1]
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			return n * mult
		}
	}
	t.Skip("no StreamMaxLength in clamd.conf")
	return 0
}
