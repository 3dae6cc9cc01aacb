package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
)

// TestActionsBesideRules runs an Auth0 rule and two post-login Actions
// side by side through the built binary: `rules try` and `rules lint`
// take both, and `serve` runs them in list order. The Actions' factor
// list steps the user up, and the metadata one of them keeps per user
// survives from one Check to the next (the session store), until it
// denies.
func TestActionsBesideRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, code string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(code), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rule, err := filepath.Abs("../rules/testdata/auth0-examples/003_extranet.js")
	if err != nil {
		t.Fatal(err)
	}
	counter := write("counter.js", `exports.onExecutePostLogin = async (event, api) => {
  const n = (event.user.app_metadata.checks || 0) + 1;
  api.user.setAppMetadata('checks', n);
  if (n > event.secrets.MAX_CHECKS) {
    api.access.deny('too many checks: ' + n);
  }
};
`)
	keys := write("keys.txt", `// Security keys for payroll.
exports.onExecutePostLogin = async (event, api) => {
  if (event.client.client_id === 'payroll') {
    api.authentication.challengeWith({ type: 'webauthn-roaming' });
  }
};
`)
	mgmt := write("mgmt.js", "function (user, context, callback) {\n  auth0.users.getUsersByEmail(user.email, function () { callback(null, user, context); });\n}\n")
	user := write("user.json", `{"user_id": "auth0|alice", "email": "alice@corp.example"}`)
	ctxFile := write("context.json", `{"clientID": "payroll", "request": {"ip": "192.168.1.140"}}`)
	cfg := write("cfg.json", `{"MAX_CHECKS": "3"}`)

	t.Run("try", func(t *testing.T) {
		out, err := exec.Command(stepupBin, "rules", "try", "--rule", rule, "--rule", counter, "--rule", keys,
			"--user", user, "--context", ctxFile, "--configuration", cfg).Output()
		if err != nil {
			t.Fatalf("rules try: %v", err)
		}
		var res struct {
			Outcome     string         `json:"outcome"`
			Multifactor map[string]any `json:"multifactor"`
			User        map[string]any `json:"user"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if res.Outcome != "continue" || fmt.Sprint(res.Multifactor["factors"]) != "[webauthn-roaming]" ||
			res.User["app_metadata"].(map[string]any)["checks"] != float64(1) {
			t.Errorf("rules try: %s", out)
		}
	})
	t.Run("lint", func(t *testing.T) {
		out, err := exec.Command(stepupBin, "rules", "lint", rule, counter, keys).CombinedOutput()
		if err != nil {
			t.Errorf("rules lint of a rule and two Actions: %v\n%s", err, out)
		}
		out, err = exec.Command(stepupBin, "rules", "lint", rule, mgmt).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "auth0.users.getUsersByEmail is not available") {
			t.Errorf("rules lint of the management API: %v\n%s", err, out)
		}
	})

	t.Run("serve", func(t *testing.T) {
		srv := startStepup(t, serverConfig{Extra: fmt.Sprintf(`rules:
  configuration:
    MAX_CHECKS: "3"
  list:
    - file: %q
    - file: %q
    - file: %q
      kind: action
`, rule, counter, keys)})
		client := authv3.NewAuthorizationClient(srv.Dial(t))
		for i := 1; i <= 4; i++ {
			resp := mustCheck(t, client, envoyreq.Browser(corpIP).MustProto())
			reason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
			if i <= 3 {
				if reason != "mfa_required" {
					t.Fatalf("check %d: %s, want mfa_required (the Action's challengeWith)", i, reason)
				}
				continue
			}
			if allowed(resp) || !strings.Contains(resp.GetDeniedResponse().GetBody(), "too many checks: 4") {
				t.Fatalf("check %d: %s %q, want the Action's denial (metadata kept across checks)", i, reason, resp.GetDeniedResponse().GetBody())
			}
		}
	})
}
