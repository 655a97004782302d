package tlsconf

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestZapLogsReachHclog(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Name: "tls", Output: &buf, Level: hclog.Debug})
	zl := newZapLogger(log).Named("obtain").With(zap.String("identifier", "pop.test"))

	zl.Info("certificate obtained", zap.Int("attempt", 2), zap.Strings("names", []string{"a", "b"}))
	zl.Warn("renewal window", zap.Error(errors.New("boom")))
	zl.Error("failed")
	zl.Debug("details")
	// certmagic names its ACME client logger Name()+".acme_client" through zapslog.
	if err := newZapLogger(log).Core().Write(zapcore.Entry{Level: zapcore.InfoLevel, LoggerName: ".acme_client", Message: "solving"}, nil); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"[INFO]  tls.obtain: certificate obtained: attempt=2 identifier=pop.test names=\"[a b]\"",
		"[WARN]  tls.obtain: renewal window: error=boom identifier=pop.test",
		"[ERROR] tls.obtain: failed: identifier=pop.test",
		"[DEBUG] tls.obtain: details: identifier=pop.test",
		"[INFO]  tls.acme_client: solving\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q; got:\n%s", want, out)
		}
	}
}

func TestZapLevelsFollowHclogLevel(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Warn})
	zl := newZapLogger(log)
	if ce := zl.Check(zap.InfoLevel, "x"); ce != nil {
		t.Error("zap info enabled under an hclog warn level")
	}
	zl.Info("quiet")
	zl.Warn("loud")
	if strings.Contains(buf.String(), "quiet") || !strings.Contains(buf.String(), "loud") {
		t.Errorf("level filtering wrong; log:\n%s", buf.String())
	}
	if newZapLogger(hclog.NewNullLogger()).Core().Enabled(zap.ErrorLevel) {
		t.Error("a null hclog logger enables zap errors")
	}
}
