package main

import (
	"io"

	"github.com/hashicorp/go-hclog"
)

// logTimeFormat is RFC 3339 with milliseconds.
const logTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// newLogger returns the root logger, named "popgate", writing to w at the
// configured level in text or JSON format, without caller locations or
// colour.
func newLogger(c LogConfig, w io.Writer) hclog.Logger {
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
