package config

import (
	"io"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
)

// WriteDiagnostics prints diags to w the way HCL tools do: severity,
// summary, file:line:column, the source lines with the offending range
// marked, and the detail. files supplies the sources for the snippets.
// Colour and wrapping are used only when w is a terminal and $NO_COLOR is
// unset.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	if len(diags) == 0 {
		return nil
	}
	var width uint
	color := false
	if isTerminal(w) {
		width = 100
		color = os.Getenv("NO_COLOR") == ""
	}
	return hcl.NewDiagnosticTextWriter(w, files, width, color).WriteDiagnostics(diags)
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// logTimeFormat is RFC 3339 with milliseconds.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// NewLogger returns the root logger the log block describes, named
// "popgate", writing to w at the configured level in text or JSON format,
// without caller locations or colour.
func NewLogger(c Log, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            "popgate",
		Level:           c.Level,
		Output:          w,
		JSONFormat:      c.JSON,
		IncludeLocation: false,
		TimeFormat:      logTimeFormat,
		Color:           hclog.ColorOff,
	})
}
