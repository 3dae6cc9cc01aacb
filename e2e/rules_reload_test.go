package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// TestRulesHotReload is issue 3's hot reload, on the running binary: a
// changed rule file takes effect without a restart, through the file
// watch or on SIGHUP; a broken file is refused, the previous rules stay in
// force, and the failure is logged and shown in
// stepup_rules_reloads_total{result="error"} and
// stepup_rules_last_reload_success.
func TestRulesHotReload(t *testing.T) {
	t.Parallel()
	rule := func(version string) string {
		return "function (user, context, callback) {\n  callback(new UnauthorizedError('rules " + version + "'));\n}\n"
	}
	for _, tc := range []struct {
		name   string
		watch  bool
		signal bool // send SIGHUP after each change
	}{
		{"file watch", true, false},
		{"SIGHUP", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, "rule.js")
			if err := os.WriteFile(file, []byte(rule("v1")), 0o600); err != nil {
				t.Fatal(err)
			}
			srv := startStepup(t, serverConfig{Extra: fmt.Sprintf("rules:\n  watch: %t\n  list:\n    - name: versioned\n      file: %q\n", tc.watch, file)})
			client := authv3.NewAuthorizationClient(srv.Dial(t))
			deniedWith := func() string {
				resp := mustCheck(t, client, envoyreq.Browser(corpIP).MustProto())
				if allowed(resp) {
					t.Fatal("the rule's UnauthorizedError did not deny")
				}
				return resp.GetDeniedResponse().GetBody()
			}
			change := func(code string) {
				t.Helper()
				// Write a new file and rename it into place, as editors
				// and configuration management do.
				tmp := file + ".tmp"
				if err := os.WriteFile(tmp, []byte(code), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, file); err != nil {
					t.Fatal(err)
				}
				if tc.signal {
					if err := srv.Signal(syscall.SIGHUP); err != nil {
						t.Fatal(err)
					}
				}
			}
			eventually := func(what string, ok func() bool) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for !ok() {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not within 10s", what)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}

			if body := deniedWith(); !strings.Contains(body, "rules v1") {
				t.Fatalf("first rules: denial %q", body)
			}
			change(rule("v2"))
			eventually("the changed rule takes effect", func() bool { return strings.Contains(deniedWith(), "rules v2") })

			change("function (user, context, callback) {\n  callback(null, user, context;\n}\n")
			eventually("the broken rule is refused and counted", func() bool {
				return rulesMetric(t, srv, `stepup_rules_reloads_total{result="error"}`) >= 1
			})
			if got := rulesMetric(t, srv, "stepup_rules_last_reload_success"); got != 0 {
				t.Errorf("stepup_rules_last_reload_success = %v after a failed reload, want 0", got)
			}
			if body := deniedWith(); !strings.Contains(body, "rules v2") {
				t.Errorf("after a failed reload the denial is %q, want the previous rules (v2) in force", body)
			}
			if !strings.Contains(srv.Stderr(), "rules reload failed: the previous rules stay in force") {
				t.Error("the failed reload was not logged")
			}

			change(rule("v3"))
			eventually("a fixed rule takes effect", func() bool { return strings.Contains(deniedWith(), "rules v3") })
			if got := rulesMetric(t, srv, "stepup_rules_last_reload_success"); got != 1 {
				t.Errorf("stepup_rules_last_reload_success = %v after a good reload, want 1", got)
			}
		})
	}
}

// rulesMetric reads one sample from /metrics (-1 when absent).
func rulesMetric(t *testing.T, srv *harness.Stepup, sample string) float64 {
	t.Helper()
	res, err := http.Get(srv.HTTPURL("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", l, err)
			}
			return f
		}
	}
	return -1
}
