package examples

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/config"
)

// requireTool returns the path of a program the test needs. Without it the test is
// skipped, and fails when CI=true.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed; CI=true, so this is a failure", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// TestStepupConfigs loads every example's stepup.yaml as `stepup serve` does, and checks
// that the user header, which both examples use, is believed from loopback only.
func TestStepupConfigs(t *testing.T) {
	files, err := filepath.Glob("*/stepup.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("found %v, want the quickstart's and forward-auth-login's stepup.yaml", files)
	}
	for _, f := range files {
		t.Run(filepath.Dir(f), func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Identity.Header.Name == "" {
				t.Fatal("identity.header.name is not set")
			}
			for _, p := range cfg.HeaderTrustedPeers() {
				if !p.Addr().IsLoopback() || p.Bits() < netip.MustParsePrefix("127.0.0.0/8").Bits() {
					t.Errorf("identity.header.trusted_peers has %s: only the proxy on this machine may name the user", p)
				}
			}
		})
	}
}

// TestCaddyfiles has Caddy adapt and validate every example's Caddyfile, and checks on
// the adapted JSON that the login proxy's user header is copied from its answer.
func TestCaddyfiles(t *testing.T) {
	caddy := requireTool(t, "caddy")
	files, err := filepath.Glob("*/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("found %v, want the quickstart's and forward-auth-login's Caddyfile", files)
	}
	for _, f := range files {
		t.Run(filepath.Dir(f), func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(caddy, "adapt", "--config", f, "--validate")
			cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
			out, err := cmd.Output()
			if err != nil {
				var stderr string
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("caddy adapt --validate %s: %v\n%s", f, err, stderr)
			}
			var js map[string]any
			if err := json.Unmarshal(out, &js); err != nil {
				t.Fatalf("adapted JSON: %v", err)
			}
			text := string(out)
			if filepath.Dir(f) == "forward-auth-login" {
				if !strings.Contains(text, `"X-Auth-Request-User":["{http.reverse_proxy.header.X-Auth-Request-User}"]`) {
					t.Errorf("the adapted configuration does not copy X-Auth-Request-User from oauth2-proxy's answer:\n%s", text)
				}
				// The sign-in check comes before stepup's: oauth2-proxy's /oauth2/auth
				// appears before stepup's /forward-auth in the route that guards the site.
				if a, b := strings.Index(text, `/oauth2/auth`), strings.Index(text, `/forward-auth`); a < 0 || b < 0 || a > b {
					t.Errorf("oauth2-proxy's check (at %d) does not come before stepup's (at %d)", a, b)
				}
			}
		})
	}
}
