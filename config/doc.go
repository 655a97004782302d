// Package config reads popgate's HCL configuration file (docs/CONFIG.md):
// it owns the schema, decodes a file, fills in the defaults, validates
// every value, and prints diagnostics as file:line:column with the source
// snippet (WriteDiagnostics).
//
// A file decodes straight into the option types of the packages that run
// it: proxy.Limits, proxy.Listener and proxy.Backend with their enums
// (whose text forms, "starttls", "after-auth", ..., proxy defines),
// tlsconf.Options, and the Config of each filter package (audit, apop,
// rewrite, clamav, policy). No option is declared twice: a default is
// defined once, next to the option it sets (proxy.DefaultLimits,
// clamav.DefaultMaxSize, spool.DefaultMemory, ...), and this package uses
// it; only the settings of the file itself (state_dir, shutdown_timeout,
// log) have their defaults here. Neither proxy nor the filters import HCL.
//
// Decoding runs in two passes (decode.go): gohcl checks the structure
// against the raw* schema (schema.go, and one schema per filter type in
// filters.go); then every value is converted and checked at once, so a
// file with several mistakes reports all of them, each at the range of the
// value at fault. A Config is returned only when there is no error;
// warnings come with it. Of the files the configuration names, only the
// route map is read at load time (its entries become Routes.Users, and its
// mistakes are reported at their lines); the others (certificates, CA
// files, secrets, maps) must exist when the configuration is checked and
// are read by their owners when popgate starts.
//
// The schema and docs/CONFIG.md document the same attributes; a test keeps
// them in step.
package config
