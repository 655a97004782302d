//go:build integration

package integration

// keep_replaced end to end: with the real clamd and Dovecot A, a client
// that reads the notice of an infected message and sends DELE for it, the
// two pipelined in one write, deletes the original only when
// keep_replaced is off.

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestFilterClamAVKeepReplaced pipelines "RETR n", "DELE n", "DELE 1" and
// QUIT for a mailbox whose message n carries the EICAR string. With
// keep_replaced = true the DELE of the infected message is refused with
// -ERR (the pipelined DELE waits for the RETR's verdict) and the original
// is still on the server after QUIT; DELE 1 of a clean message still
// works. With false the original is deleted, as the README says.
func TestFilterClamAVKeepReplaced(t *testing.T) {
	t.Cleanup(func() { seedUser(t, "dele") })
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep_replaced=%v", keep), func(t *testing.T) {
			seedUser(t, "dele")
			n := fltStat(t, "dele") + 1
			fltAddEICARMessage(t, "dele", n)
			p, addr := fltStart(t, fltClamAV(fltClamdAddr(t, "tcp"), "replace", "reject",
				fmt.Sprintf("keep_replaced = %v", keep)))
			c := fltLogin(t, addr, "dele")
			if err := c.Write([]byte(fmt.Sprintf("RETR %d\r\nDELE %d\r\nDELE 1\r\nQUIT\r\n", n, n))); err != nil {
				t.Fatal(err)
			}
			status, err := c.ReadLine()
			if err != nil || !strings.HasPrefix(status, "+OK") {
				t.Fatalf("RETR %d = %q, %v", n, status, err)
			}
			notice, err := c.ReadBody()
			if err != nil || bytes.Contains(notice, []byte(eicar())) || !fltEICARName.Match(notice) {
				t.Fatalf("RETR %d did not deliver the notice: %v\n%s", n, err, notice)
			}
			var answers []string
			for range 3 {
				line, err := c.ReadLine()
				if err != nil {
					t.Fatalf("answers %q, then %v", answers, err)
				}
				answers = append(answers, line)
			}
			deleN, dele1, quit := answers[0], answers[1], answers[2]
			if !strings.HasPrefix(dele1, "+OK") || !strings.HasPrefix(quit, "+OK") {
				t.Fatalf("DELE 1 = %q, QUIT = %q; want +OK", dele1, quit)
			}
			want := n - 2 // message 1 and the infected one deleted
			if keep {
				want = n - 1
				if !strings.HasPrefix(deleN, "-ERR") {
					t.Errorf("DELE %d of the replaced message = %q, want -ERR", n, deleN)
				}
				p.WaitLog(t, "DELE refused", 5*time.Second)
			} else if !strings.HasPrefix(deleN, "+OK") {
				t.Errorf("DELE %d = %q, want +OK without keep_replaced", n, deleN)
			}
			// QUIT was answered: Dovecot has committed the deletions.
			if got := fltStat(t, "dele"); got != want {
				t.Errorf("dele holds %d messages after QUIT, want %d", got, want)
			}
			if keep {
				// The original is intact, now message n-1.
				direct, _ := fltDirect(t, "dele", n-1)
				if !bytes.Contains(direct[n-1], []byte(eicar())) {
					t.Errorf("message %d after the session is not the infected original", n-1)
				}
			}
		})
	}
}
