// Package app holds what main.go wires with: the configuration from flags
// and BUCKETD_* variables (Config, ParseConfig), the store the flags choose
// (OpenStore), reloads of the policies file and the RLS directory on SIGHUP
// (Reloader, RLSReloader), the TLS certificate that SIGHUP reloads (Certs),
// the version line and the logger, and the `bucketd check FILE` command.
// main.go itself only opens, starts, signals and stops.
package app
