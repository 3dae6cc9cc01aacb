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
// The MFA step is tested in headless Chromium (mfa_browser_test.go),
// through Caddy and through the Envoy-faithful proxy of
// internal/envoyproxy, with stepup's clock moved by serve's hidden
// --test-clock-file hook; STEPUP_E2E_ARTIFACTS=DIR keeps the screenshots.
//
// Run them with `go test ./e2e/`. They need the Go toolchain (to build the
// binary) and, for the Caddy and browser tests, /usr/bin/caddy and
// /usr/bin/chromium (Debian packages caddy and chromium); with CI=true a
// missing external program fails instead of skipping.
// STEPUP_BIN=/path/to/stepup tests a prebuilt binary instead of building
// one.
package e2e
