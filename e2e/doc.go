// Package e2e holds stepup's black-box end-to-end tests. They build the
// stepup binary once, run it as a separate process on free loopback ports,
// and talk to it only through its public interfaces: Envoy-shaped gRPC
// Checks, gRPC health, the HTTP endpoints (health, metrics, Envoy's HTTP
// mode, forward-auth behind a real Caddy) and the `stepup check` command.
//
// The tests assert behaviour (status codes, headers, redirects, exit codes),
// never internals, so that they keep holding as the policy, the rules engine
// and the session layer evolve behind the same contract.
//
// Run them with `go test ./e2e/`. They need the Go toolchain (to build the
// binary) and, for the Caddy test, /usr/bin/caddy (Debian package caddy);
// with CI=true a missing external program fails instead of skipping.
// STEPUP_BIN=/path/to/stepup tests a prebuilt binary instead of building
// one.
package e2e
