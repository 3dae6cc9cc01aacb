package extauthz

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDryRun: in dry-run mode every decision is an allow that records
// what would have happened; a route's stepup_mode overrides the global
// mode either way; identity headers are still overwritten, so a client
// cannot forge them, and a client's own dry-run header never passes.
func TestDryRun(t *testing.T) {
	deny := fixedPolicy{PolicyResult{Err: &PolicyError{Status: 403, Reason: ReasonRuleDenied, Message: "no", Rule: "r1"}}}
	mfa := fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any"}}}
	for _, tc := range []struct {
		name      string
		global    bool
		route     string
		policy    Policy
		opts      []reqOpt
		want      int
		wouldKind string
	}{
		{"enforced step-up", false, "", mfa, nil, http.StatusFound, ""},
		{"global dry-run: step-up allowed", true, "", mfa, nil, 200, "mfa_required"},
		{"global dry-run: rule denial allowed", true, "", deny, nil, 200, "deny"},
		{"global dry-run: no identity allowed", true, "", mfa, []reqOpt{withoutIdentity()}, 200, "login_required"},
		{"route dry-run", false, "dry-run", mfa, nil, 200, "mfa_required"},
		{"route enforces under global dry-run", true, "enforce", mfa, nil, http.StatusFound, ""},
		{"an unknown route mode enforces", true, "maybe", mfa, nil, http.StatusFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, func(o *Options) {
				o.Policy = tc.policy
				o.DryRun = tc.global
			})
			opts := append([]reqOpt{withHeader("x-stepup-user", "forged"), withHeader("x-stepup-dry-run", "forged")}, tc.opts...)
			if tc.route != "" {
				opts = append(opts, withExtension("stepup_mode", tc.route))
			}
			got, resp := run(t, s, checkReq("203.0.113.7", opts...))
			if got.status != tc.want {
				t.Fatalf("got %+v, want %d", got, tc.want)
			}
			md := resp.GetDynamicMetadata().GetFields()
			if tc.wouldKind == "" {
				if md["dry_run"] != nil {
					t.Errorf("an enforced decision carries dry_run")
				}
				return
			}
			hs := resp.GetOkResponse().GetHeaders()
			if v, _ := header(hs, DryRunHeader); v != tc.wouldKind {
				t.Errorf("%s = %q, want %q", DryRunHeader, v, tc.wouldKind)
			}
			v, set := header(hs, "x-stepup-user")
			removed := containsString(resp.GetOkResponse().GetHeadersToRemove(), "x-stepup-user")
			if set && v == "forged" || !set && !removed {
				t.Errorf("x-stepup-user %q (set %v, removed %v): a client's copy passed", v, set, removed)
			}
			if !md["dry_run"].GetBoolValue() || md["would"].GetStringValue() != tc.wouldKind || md["decision"].GetStringValue() != "allow" {
				t.Errorf("metadata %v", md)
			}
		})
	}
	// An enforced allow removes a client's own dry-run header.
	s := newTestServer(t, func(o *Options) { o.Policy = fixedPolicy{} })
	_, resp := run(t, s, checkReq("203.0.113.7", withHeader(DryRunHeader, "forged")))
	if !containsString(resp.GetOkResponse().GetHeadersToRemove(), DryRunHeader) {
		t.Errorf("a client's %s is not removed: %v", DryRunHeader, resp.GetOkResponse().GetHeadersToRemove())
	}
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestDecisionLog: one JSON line per Check with log.decisions all,
// carrying the fields operators join and filter on, the same decision_id
// as the CheckResponse's metadata, and never the query.
func TestDecisionLog(t *testing.T) {
	var buf bytes.Buffer
	f := newSessionFixture(t, nil)
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any"}}}
		o.LogDecisions = "all"
		o.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	})
	cookie := f.proofCookie(t, testRealm, 0, "otp")
	var ids []string
	for _, opts := range [][]reqOpt{{withHeader("cookie", cookie)}, nil} {
		_, resp := run(t, s, checkReq("203.0.113.7", opts...))
		ids = append(ids, resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue())
	}
	if ids[0] == "" || ids[0] == ids[1] {
		t.Fatalf("decision ids %q", ids)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var checks []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		if m["msg"] == "check" {
			checks = append(checks, m)
		}
	}
	if len(checks) != 2 {
		t.Fatalf("%d check lines:\n%s", len(checks), buf.String())
	}
	want := map[string]any{
		"decision_id": ids[0], "request_id": "5f8a3a2e-1c1b-4d57-9f1e-0d6a9c1c3b11", "host": "app.corp.example",
		"method": "GET", "path": "/payroll/report", "user": "auth0|alice", "client_ip": "203.0.113.7",
		"network": "", "client_id": "payroll", "decision": "allow", "reason": "mfa_session", "factor": "otp",
	}
	for k, v := range want {
		if checks[0][k] != v {
			t.Errorf("log %s = %v, want %v", k, checks[0][k], v)
		}
	}
	if _, ok := checks[0]["latency_ms"].(float64); !ok {
		t.Errorf("latency_ms missing: %v", checks[0])
	}
	if checks[1]["decision"] != "mfa_required" || checks[1]["decision_id"] != ids[1] {
		t.Errorf("second line %v", checks[1])
	}
	if strings.Contains(buf.String(), "month=11") {
		t.Error("the query reached the log")
	}
}
