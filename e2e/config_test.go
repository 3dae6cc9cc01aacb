package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// TestConfigCommands follows the README's way to a production
// configuration: print the embedded default, edit it, validate it; and
// checks that bad configurations stop stepup before it serves anything.
func TestConfigCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	res := runStepup(t, dir, "", "config", "default")
	if res.code != 0 || !strings.Contains(res.stdout, "networks:") {
		t.Fatalf("config default: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	def := writeFile(t, dir, "default.yaml", []byte(res.stdout))
	if res := runStepup(t, dir, "", "config", "validate", "--config", def); res.code != 0 {
		t.Errorf("the embedded default does not validate: exit %d\n%s", res.code, res.stderr)
	}

	// Every problem is reported at once, each with its path in the file.
	bad := writeFile(t, dir, "bad.yaml", []byte(strings.Join([]string{
		"server:",
		"  grpc:",
		"    listen: nonsense",
		"networks:",
		"  corporate: [10.0.0.0/8, 300.1.1.1/8]",
		"identity:",
		"  login_url: not-a-url",
		"",
	}, "\n")))
	res = runStepup(t, dir, "", "config", "validate", "--config", bad)
	if res.code == 0 {
		t.Fatalf("an invalid configuration validated:\n%s", res.stdout)
	}
	for _, p := range []string{"server.grpc.listen", "networks.corporate[1]", "identity.login_url"} {
		if !strings.Contains(res.stderr, p) {
			t.Errorf("config validate does not report %s:\n%s", p, res.stderr)
		}
	}

	unknown := writeFile(t, dir, "unknown.yaml", []byte("networks:\n  corporate: [10.0.0.0/8]\nserver:\n  grpc:\n    listne: 127.0.0.1:0\n"))
	res = runStepup(t, dir, "", "config", "validate", "--config", unknown)
	if want := `line 5: server.grpc: unknown key "listne" (did you mean "listen"?)`; res.code == 0 || !strings.Contains(res.stderr, want) {
		t.Errorf("a misspelt key: exit %d, stderr %q; want %q", res.code, res.stderr, want)
	}

	// A file that writes a few keys takes the default's for the rest.
	partial := writeFile(t, dir, "partial.yaml", []byte("data_dir: "+dir+"/partial-data\nsessions:\n  mfa_session_ttl: 8h\n"))
	if res := runStepup(t, dir, "", "config", "validate", "--config", partial); res.code != 0 || !strings.Contains(res.stdout, partial+": ok") {
		t.Errorf("a partial configuration: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	// What serve would refuse when it loads the rules, validate refuses
	// with the same message.
	writeFile(t, dir, "broken.js", []byte("function (user, context, callback) {\n  callback(null, user, context;\n}\n"))
	brokenRule := writeFile(t, dir, "broken-rule.yaml", []byte(serverConfig{Extra: "rules:\n  list:\n    - file: broken.js\n"}.yaml(dir)))
	res = runStepup(t, dir, "", "config", "validate", "--config", brokenRule)
	if res.code == 0 || !strings.Contains(res.stderr, `rule "broken": syntax error`) {
		t.Errorf("a rule with a syntax error: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}

	// serve refuses to start on a bad configuration, with a message, and
	// does not serve in the meantime.
	for _, cfg := range []string{bad, unknown, brokenRule, writeFile(t, dir, "missing-jwks.yaml", []byte(serverConfig{JWKSFile: dir + "/nope.json", Issuer: testIssuer, Audience: testAudience}.yaml(dir)))} {
		_, err := harness.TryStartStepup(t, stepupBin, harness.StepupOptions{Args: []string{"--config", cfg}, Dir: dir, StopTimeout: 10 * time.Second})
		if err == nil {
			t.Errorf("serve started on %s", cfg)
			continue
		}
		if !strings.Contains(err.Error(), "exited during start-up") {
			t.Errorf("serve on %s: %v; want it to exit with an error", cfg, err)
		}
	}
}
