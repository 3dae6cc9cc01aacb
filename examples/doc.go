// Package examples holds ready-to-run example setups of stepup and the tests that check
// them:
//
//   - quickstart/: stepup, Caddy and a demo application on localhost
//     (docs/quickstart.md; e2e/quickstart_test.go runs it in a browser);
//   - forward-auth-login/: a login proxy (oauth2-proxy) and stepup behind Caddy.
//
// The package has no non-test code.
package examples
