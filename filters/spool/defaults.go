package spool

// The bounds of the Budget popgate shares among its filters when the
// configuration's spool block sets none (docs/CONFIG.md).
const (
	// DefaultMemory is the octets all spools together hold in memory.
	DefaultMemory = 256 << 20
	// DefaultDisk is the octets all spools together hold in temporary
	// files.
	DefaultDisk = 4 << 30
)
