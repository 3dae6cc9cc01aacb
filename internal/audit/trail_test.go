package audit

import (
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/mfa"
)

// TestAuditNames: the MFA step's events are exactly the audit trail's
// events other than decisions.
func TestAuditNames(t *testing.T) {
	var got []Name
	for _, n := range mfa.AuditNames() {
		got = append(got, Name(n))
	}
	want := slices.DeleteFunc(Names(), func(n Name) bool { return n == Decision })
	if !slices.Equal(got, want) {
		t.Errorf("MFA events %v, audit events %v", got, want)
	}
}

// TestAuditDecisionFilter: log.audit.decisions non_allow leaves out
// allows, but not a dry run's allow of what would have been refused.
func TestAuditDecisionFilter(t *testing.T) {
	path := t.TempDir() + "/audit.log"
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tr := &Trail{w: w, decisions: "non_allow"}
	for _, r := range []extauthz.DecisionRecord{
		{DecisionID: "1", Decision: "allow"},
		{DecisionID: "2", Decision: "deny", Status: 403},
		{DecisionID: "3", Decision: "allow", DryRun: true, Would: "mfa_required"},
		{DecisionID: "4", Decision: "allow", DryRun: true, Would: "allow"},
	} {
		r.Latency = 1500 * time.Microsecond
		tr.AuditDecision(r)
	}
	var ids []string
	for _, l := range readLines(t, path) {
		ids = append(ids, l["decision_id"].(string))
		if l["latency_ms"] != 1.5 {
			t.Errorf("latency_ms %v, want 1.5", l["latency_ms"])
		}
	}
	if !slices.Equal(ids, []string{"2", "3"}) {
		t.Errorf("decisions written %v, want 2 and 3", ids)
	}
	if (&Trail{w: w, decisions: "none"}).DecisionHook() != nil {
		t.Error("decisions none still audits decisions")
	}
	if (*Trail)(nil).MFAHook() != nil || (&Trail{}).DecisionHook() != nil {
		t.Error("no trail, but a hook")
	}
}

// TestAuditTrailValidate: `config validate` refuses an audit file serve
// could not open, and creates nothing.
func TestAuditTrailValidate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		file string
		ok   bool
	}{{dir + "/audit.log", true}, {dir + "/missing/audit.log", false}} {
		cfg, err := config.Parse([]byte("log:\n  audit: {file: " + tc.file + "}\n"))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := OpenTrail(cfg, slog.New(slog.DiscardHandler), true)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.file, err, tc.ok)
		}
		if tr.On() {
			t.Errorf("%s: validate opened the file", tc.file)
		}
	}
	if _, err := os.Stat(dir + "/audit.log"); !os.IsNotExist(err) {
		t.Errorf("validate created the audit file: %v", err)
	}
}
