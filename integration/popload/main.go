package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

// scenario is one subcommand.
type scenario struct {
	name    string
	summary string
	run     func(args []string) error
}

func scenarios() []scenario {
	return []scenario{
		{"retr", "RETR a large message, direct vs proxy: MB/s, CPU s/GB", func(a []string) error { return runRetr(a, false) }},
		{"tls-retr", "RETR over implicit TLS through popgate, HAProxy, stunnel: MB/s, CPU s/GB", func(a []string) error { return runRetr(a, true) }},
		{"noop-rtt", "sequential NOOPs: per-command round trip and proxy overhead in µs", runNoopRTT},
		{"noop-pipelined", "batches of pipelined NOOPs: NOOPs/s", runNoopPipelined},
		{"logins", "concurrent connect/USER/PASS/QUIT loops: logins/s", runLogins},
		{"retr-pipelined", "RETR 1..N pipelined in one write: messages/s", runRetrPipelined},
		{"idle", "N idle sessions before login: KiB of popgate RSS per session", func(a []string) error { return runIdle(a, false) }},
		{"tls-idle", "N idle TLS sessions (handshake done): KiB of popgate RSS per session", func(a []string) error { return runIdle(a, true) }},
		{"concurrent", "C logged-in sessions RETRing for D seconds: bytes/s, errors", runConcurrent},
		{"scan-retr", "RETR with the clamav filter vs without vs clamd alone", runScanRetr},
		{"floor-server", "serve a minimal Go POP3 greeter (TLS with -cert): the memory floor for idle sessions", runFloorServer},
		{"report", "turn JSON result lines (files) into Markdown tables", runReport},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: popload SCENARIO [flags]   (popload SCENARIO -h for its flags)\n\nScenarios:\n")
	for _, s := range scenarios() {
		fmt.Fprintf(os.Stderr, "  %-15s %s\n", s.name, s.summary)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "help" || name == "-h" || name == "--help" {
		usage()
		return
	}
	// Idle scenarios hold thousands of sockets; popgate's hard limit in the
	// benchmark environment is 20000.
	if _, err := raiseNoFile(20000); err != nil {
		fmt.Fprintf(os.Stderr, "popload: %v\n", err)
	}
	for _, s := range scenarios() {
		if s.name != name {
			continue
		}
		err := s.run(os.Args[2:])
		switch {
		case err == nil:
			return
		case errors.Is(err, flag.ErrHelp):
			os.Exit(0)
		default:
			fmt.Fprintf(os.Stderr, "popload %s: %v\n", name, err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "popload: unknown scenario %q\n", name)
	usage()
	os.Exit(2)
}
