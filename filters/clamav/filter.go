package clamav

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/spool"
	"github.com/popgate/popgate/parser"
)

// Defaults for the zero values of Config.
const (
	// DefaultMaxSize is clamd's own default StreamMaxLength (25M).
	DefaultMaxSize = 25 << 20
	// DefaultSpoolMemory is how much of one body is held in memory before
	// the spool moves to a temporary file.
	DefaultSpoolMemory = 1 << 20
	// DefaultMaxConcurrentScans is clamd's own default MaxThreads.
	DefaultMaxConcurrentScans = 10
	// DefaultScanWait is how long a scan waits for a free slot.
	DefaultScanWait = 10 * time.Second
)

// The values of Config.OnInfected and Config.OnError.
const (
	OnInfectedReplace = "replace"
	OnInfectedReject  = "reject"
	OnErrorReject     = "reject"
	OnErrorPass       = "pass"
)

// ScannedHeader is the header field prepended to clean messages when
// Config.AddHeader is set.
const ScannedHeader = "X-Virus-Scanned: popgate (clamd)\r\n"

// The responses the filter answers with instead of the message.
var (
	// respInfected answers a message refused because it carries a virus.
	respInfected = parser.Err(parser.CodeSysPerm, "message rejected by virus scanner")
	// respUnavailable answers a message that could not be scanned.
	respUnavailable = parser.Err(parser.CodeSysTemp, "virus scanner unavailable, try again later")
)

// Config configures the clamav filter. The zero value of each field but
// Address is a documented default.
type Config struct {
	// Address is clamd's address: "tcp://host:port" or "unix:///path".
	Address string
	// OnInfected is what happens to an infected message: "replace" (the
	// default) delivers a notice in its place, "reject" answers
	// -ERR [SYS/PERM] so the message stays on the server.
	OnInfected string
	// OnError is what happens when a message cannot be scanned (clamd
	// unreachable, too slow, refusing, or the message larger than MaxSize):
	// "reject" (the default) answers -ERR [SYS/TEMP] for that message, and
	// a message larger than MaxSize is then never deliverable; "pass"
	// delivers it unscanned and logs a warning.
	OnError string
	// MaxSize is the largest body scanned, in octets; 0 means
	// DefaultMaxSize. Keep it at or below clamd's StreamMaxLength. It also
	// bounds the spool of one message.
	MaxSize int64
	// Timeout bounds each exchange with clamd: the dial, each chunk sent,
	// and the wait for the verdict after the last octet; 0 means
	// DefaultScanTimeout. A slow backend does not count against it.
	Timeout time.Duration
	// SpoolDir is where bodies larger than SpoolMemory wait for their
	// verdict; "" means os.TempDir().
	SpoolDir string
	// SpoolMemory is how much of one body is held in memory; 0 means
	// DefaultSpoolMemory, a negative value holds nothing in memory.
	SpoolMemory int64
	// Spool, if set, is the budget every spool of the filter shares with
	// the other filters' (popgate's top-level spool block): a body that
	// finds no memory left in it goes to disk, and one that finds no disk
	// left is not scanned and follows OnError. nil bounds only each
	// message, by SpoolMemory and MaxSize.
	Spool *spool.Budget
	// MaxConcurrentScans bounds the scans this filter runs at once, across
	// all sessions; 0 means DefaultMaxConcurrentScans (clamd's default
	// MaxThreads). A filter instance counts only its own scans.
	MaxConcurrentScans int
	// ScanWait is how long a scan waits for a slot when
	// MaxConcurrentScans are running; after it, or when the session ends
	// first, the message follows OnError. 0 means DefaultScanWait.
	ScanWait time.Duration
	// KeepReplaced refuses, with -ERR, a DELE of a message that this
	// session found infected (replaced by the notice, or refused with
	// on_infected "reject"), so the original stays on the server. Each
	// DELE then runs alone (filters.Exclusive): the session first lets
	// every earlier answer, and so every verdict, go out (keep.go).
	KeepReplaced bool
	// AddHeader prepends ScannedHeader to clean messages. Off by default:
	// the message then has more octets than LIST announced (the size in a
	// "+OK N octets" reply is corrected).
	AddHeader bool
}

// The values of filters.Verdict.Action the filter sets: what it did with a
// message.
const (
	ActionDeliver  = "deliver"  // clean, delivered
	ActionReplace  = "replace"  // infected, replaced by a notice
	ActionReject   = "reject"   // infected, answered -ERR [SYS/PERM]
	ActionTempFail = "tempfail" // not scanned, answered -ERR [SYS/TEMP]
	ActionPass     = "pass"     // not scanned, delivered as it was
)

// Filter is the clamav filter: it scans the bodies of RETR and TOP with
// clamd while they arrive from the backend (its Response side) and
// delivers, replaces or refuses each message according to the verdict,
// which it puts on the exchange (filters.Exchange.Verdict). With
// KeepReplaced its Command side refuses a DELE of a message found
// infected. It is safe for concurrent use by many sessions.
type Filter struct {
	cfg    Config
	client *Client
	logger hclog.Logger
	slots  slots
	keptMu sync.Mutex // creating a session's keptSet
}

var (
	_ filters.CommandFilter  = (*Filter)(nil)
	_ filters.ResponseFilter = (*Filter)(nil)
	_ filters.Exclusive      = (*Filter)(nil)
)

// New validates cfg, fills in its defaults and returns the filter. It does
// not connect to clamd: a clamd that is down is an error per message, not
// at startup. A nil logger discards logs.
func New(cfg Config, logger hclog.Logger) (*Filter, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	client, err := NewClient(cfg.Address, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	switch cfg.OnInfected {
	case "":
		cfg.OnInfected = OnInfectedReplace
	case OnInfectedReplace, OnInfectedReject:
	default:
		return nil, fmt.Errorf("clamav: on_infected %q: want %q or %q", cfg.OnInfected, OnInfectedReplace, OnInfectedReject)
	}
	switch cfg.OnError {
	case "":
		cfg.OnError = OnErrorReject
	case OnErrorReject, OnErrorPass:
	default:
		return nil, fmt.Errorf("clamav: on_error %q: want %q or %q", cfg.OnError, OnErrorReject, OnErrorPass)
	}
	switch {
	case cfg.MaxSize < 0:
		return nil, fmt.Errorf("clamav: max_size %d is negative", cfg.MaxSize)
	case cfg.MaxSize == 0:
		cfg.MaxSize = DefaultMaxSize
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("clamav: timeout %v is negative", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultScanTimeout
	}
	switch {
	case cfg.SpoolMemory < 0:
		cfg.SpoolMemory = 0
	case cfg.SpoolMemory == 0:
		cfg.SpoolMemory = DefaultSpoolMemory
	}
	switch {
	case cfg.MaxConcurrentScans < 0:
		return nil, fmt.Errorf("clamav: max_concurrent_scans %d is negative", cfg.MaxConcurrentScans)
	case cfg.MaxConcurrentScans == 0:
		cfg.MaxConcurrentScans = DefaultMaxConcurrentScans
	}
	switch {
	case cfg.ScanWait < 0:
		return nil, fmt.Errorf("clamav: scan_wait %v is negative", cfg.ScanWait)
	case cfg.ScanWait == 0:
		cfg.ScanWait = DefaultScanWait
	}
	return &Filter{cfg: cfg, client: client, logger: logger, slots: newSlots(cfg.MaxConcurrentScans)}, nil
}

// Name returns "clamav".
func (f *Filter) Name() string { return "clamav" }

// Config returns the configuration with its defaults filled in.
func (f *Filter) Config() Config { return f.cfg }

// Command refuses a DELE of a message this session found infected, when
// KeepReplaced is set (keep.go); every other command passes. It
// implements filters.CommandFilter.
func (f *Filter) Command(_ context.Context, ex *filters.Exchange) error {
	if f.cfg.KeepReplaced && ex.Command.Verb == "DELE" && ex.Out.Verb == "DELE" {
		f.dele(ex)
	}
	return nil
}

// Response scans the body of a +OK answer to RETR or TOP, decides what
// the client gets instead (the message, a notice, or -ERR) and sets
// ex.Verdict; every other answer passes unchanged. It implements
// filters.ResponseFilter.
func (f *Filter) Response(ctx context.Context, ex *filters.Exchange) error {
	if !scanned(ex.Command) && !scanned(ex.Out) || !ex.Response.IsOK() || ex.Body == nil {
		return nil
	}
	return f.serve(ctx, ex)
}

// scanned reports whether cmd retrieves a message.
func scanned(cmd parser.Command) bool {
	return cmd.Verb == "RETR" || cmd.Verb == "TOP"
}
