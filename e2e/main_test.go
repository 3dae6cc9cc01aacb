package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// stepupBin is the binary under test, built once by TestMain.
var stepupBin string

func TestMain(m *testing.M) {
	code := runMain(m)
	// The headless Chromium of the browser tests, if one started.
	if err := browser.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: closing the shared browser:", err)
	}
	os.Exit(code)
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("STEPUP_BIN"); bin != "" {
		stepupBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "stepup-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	bin, err := harness.Build(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building stepup:", err)
		return 1
	}
	stepupBin = bin
	// Fuzz workers are re-executions of this test binary: let them use the
	// binary built here instead of building their own.
	os.Setenv("STEPUP_BIN", bin)
	return m.Run()
}

// serverConfig is the part of stepup's YAML configuration the tests vary.
// Keys that are not set are left to stepup's defaults, so that the tests
// keep up with the product's evolving defaults (the policy, rules and
// sessions sections in particular).
type serverConfig struct {
	// Corporate lists the CIDRs of the network named "corporate".
	Corporate []string
	// DrainDelay is server.drain_delay ("" = default).
	DrainDelay string
	// LoginURL is identity.login_url.
	LoginURL string
	// JWKSFile, when set, enables identity.jwt (issuer, audience, cookie
	// id_token) and turns jwt_authn off: the HTTP modes' identity source.
	JWKSFile, Issuer, Audience string
	// Extra is appended verbatim (top-level YAML).
	Extra string
	// Audit is log.audit.file ("" = no audit trail).
	Audit string
}

// defaultCorporate is the embedded default's corporate network.
var defaultCorporate = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128", "fc00::/7"}

// yaml renders the configuration with data_dir under dir and both
// listeners on free loopback ports (port 0; stepup reports what it got).
func (c serverConfig) yaml(dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(dir, "data"))
	b.WriteString("log:\n  level: info\n  decisions: all\n")
	if c.Audit != "" {
		fmt.Fprintf(&b, "  audit: {file: %q}\n", c.Audit)
	}
	b.WriteString("server:\n  grpc:\n    listen: 127.0.0.1:0\n  http:\n    listen: 127.0.0.1:0\n")
	if c.DrainDelay != "" {
		fmt.Fprintf(&b, "  drain_delay: %s\n", c.DrainDelay)
	}
	b.WriteString("  shutdown_timeout: 10s\n")
	corp := c.Corporate
	if corp == nil {
		corp = defaultCorporate
	}
	b.WriteString("networks:\n  corporate:\n")
	for _, p := range corp {
		fmt.Fprintf(&b, "    - %q\n", p)
	}
	b.WriteString("identity:\n")
	if c.LoginURL != "" {
		fmt.Fprintf(&b, "  login_url: %q\n", c.LoginURL)
	}
	if c.JWKSFile != "" {
		b.WriteString("  jwt_authn:\n    enabled: false\n")
		fmt.Fprintf(&b, "  jwt:\n    jwks_file: %q\n    issuer: %q\n    audiences: [%q]\n    cookie: id_token\n", c.JWKSFile, c.Issuer, c.Audience)
	} else {
		b.WriteString("  jwt_authn:\n    namespace: envoy.filters.http.jwt_authn\n    key: jwt_payload\n")
	}
	if !regexp.MustCompile(`(?m)^rules:`).MatchString(c.Extra) {
		// The built-in policy (MFA outside corporate, remembered browsers
		// allowed) unless the test lists rules: a file that does not set
		// rules.list would take the default's extranet-mfa rule.
		b.WriteString("rules:\n  list: []\n")
	}
	b.WriteString(c.Extra)
	return b.String()
}

// writeConfig writes the configuration into a fresh temporary directory
// and returns the file's path.
func writeConfig(t testing.TB, c serverConfig) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "stepup.yaml")
	if err := os.WriteFile(path, []byte(c.yaml(dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startStepup runs `stepup serve --config` on c and returns it SERVING.
func startStepup(t testing.TB, c serverConfig) *harness.Stepup {
	t.Helper()
	stop := 10 * time.Second
	if c.DrainDelay != "" {
		d, err := time.ParseDuration(c.DrainDelay)
		if err != nil {
			t.Fatal(err)
		}
		stop += d
	}
	return harness.StartStepup(t, stepupBin, harness.StepupOptions{
		Args:        []string{"--config", writeConfig(t, c)},
		StopTimeout: stop,
	})
}
