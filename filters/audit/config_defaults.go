package audit

// Stdout is the Config.Path that appends records to standard output.
const Stdout = "-"

// DefaultPath is the Config.Path of an audit filter block that names no
// path (docs/CONFIG.md): standard output.
const DefaultPath = Stdout
