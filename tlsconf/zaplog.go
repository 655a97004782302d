package tlsconf

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// hclogCore is a zapcore.Core that forwards certmagic's zap entries into an
// hclog.Logger, so the proxy has one log stream. Zap's logger name becomes
// an hclog sub-logger name and zap fields become key/value pairs.
type hclogCore struct {
	log    hclog.Logger
	fields []zapcore.Field
}

var _ zapcore.Core = (*hclogCore)(nil)

// newZapLogger returns a *zap.Logger writing into log.
func newZapLogger(log hclog.Logger) *zap.Logger {
	return zap.New(&hclogCore{log: log})
}

// hclogLevel maps a zap level to the hclog level it is written at.
func hclogLevel(l zapcore.Level) hclog.Level {
	switch {
	case l < zapcore.InfoLevel:
		return hclog.Debug
	case l == zapcore.InfoLevel:
		return hclog.Info
	case l == zapcore.WarnLevel:
		return hclog.Warn
	default:
		return hclog.Error
	}
}

// Enabled reports whether the hclog logger would write entries of level l.
func (c *hclogCore) Enabled(l zapcore.Level) bool {
	switch hclogLevel(l) {
	case hclog.Debug:
		return c.log.IsDebug()
	case hclog.Info:
		return c.log.IsInfo()
	case hclog.Warn:
		return c.log.IsWarn()
	default:
		return c.log.IsError()
	}
}

// With returns a core that adds fields to every entry.
func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	return &hclogCore{log: c.log, fields: append(slices.Clip(c.fields), fields...)}
}

// Check adds c to ce when the entry's level is enabled.
func (c *hclogCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

// Write forwards one entry with its fields, sorted by key for stable output.
func (c *hclogCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, flatten(enc.Fields[k]))
	}
	log := c.log
	if name := loggerName(ent.LoggerName); name != "" {
		log = log.Named(name)
	}
	log.Log(hclogLevel(ent.Level), ent.Message, args...)
	return nil
}

// Sync has nothing to flush: hclog writes synchronously.
func (c *hclogCore) Sync() error { return nil }

// loggerName drops the empty segments zap leaves when an unnamed logger
// gets a child name (".acme_client" becomes "acme_client").
func loggerName(name string) string {
	parts := strings.FieldsFunc(name, func(r rune) bool { return r == '.' })
	return strings.Join(parts, ".")
}

// flatten turns nested zap objects and arrays into one printable value.
func flatten(v any) any {
	switch v.(type) {
	case map[string]any, []any:
		return fmt.Sprint(v)
	default:
		return v
	}
}
