package main

import (
	"net"
	"strings"
)

// stringsBuilder collects diagnostics text for a log field.
type stringsBuilder = strings.Builder

func lower(s string) string { return strings.ToLower(s) }

func dialUnixgram(addr string) (net.Conn, error) {
	return net.Dial("unixgram", addr)
}
