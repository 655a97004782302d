package clamav

import "time"

// Defaults of a filter "clamav" block (docs/CONFIG.md) where the zero
// value of the Config field is not one.
const (
	// DefaultAddress is the Config.Address of a block that names no
	// clamd: clamd's own default TCP port on the loopback address.
	DefaultAddress = "tcp://127.0.0.1:3310"
	// DefaultScanTimeout is the Config.Timeout of a block that sets no
	// timeout. It is longer than DefaultTimeout, a Client's default for
	// one exchange, because a scan streams a whole message.
	DefaultScanTimeout = 60 * time.Second
)
