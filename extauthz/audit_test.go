package extauthz

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingAuditor keeps every record.
type recordingAuditor struct {
	mu   sync.Mutex
	recs []DecisionRecord
}

func (a *recordingAuditor) AuditDecision(r DecisionRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, r)
}

// TestAuditDecisions: the auditor receives every check, allows included,
// whatever log.decisions says, with the decision log's fields and the
// CheckResponse's decision_id; no cookie and no query reach it.
func TestAuditDecisions(t *testing.T) {
	f := newSessionFixture(t, nil)
	aud := &recordingAuditor{}
	s := newTestServer(t, func(o *Options) {
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any"}}}
		o.LogDecisions = "none"
		o.Audit = aud
	})
	cookie := f.proofCookie(t, testRealm, 0, "otp")
	var ids []string
	for _, opts := range [][]reqOpt{{withHeader("cookie", cookie)}, nil} {
		_, resp := run(t, s, checkReq("203.0.113.7", opts...))
		ids = append(ids, resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue())
	}
	if len(aud.recs) != 2 {
		t.Fatalf("%d records, want 2", len(aud.recs))
	}
	got := aud.recs[0]
	got.Latency = 0
	want := DecisionRecord{
		DecisionID: ids[0], RequestID: "5f8a3a2e-1c1b-4d57-9f1e-0d6a9c1c3b11", Mode: ModeGRPC, Host: "app.corp.example",
		Method: "GET", Path: "/payroll/report", User: "auth0|alice", ClientIP: "203.0.113.7", ClientID: "payroll",
		Decision: "allow", Reason: "mfa_session", Factor: "otp",
	}
	if got != want {
		t.Errorf("record\n got %+v\nwant %+v", got, want)
	}
	if r := aud.recs[1]; r.Decision != "mfa_required" || r.DecisionID != ids[1] || r.Status != 302 {
		t.Errorf("second record %+v", r)
	}
	all := fmt.Sprintf("%+v", aud.recs)
	value := cookie[strings.Index(cookie, "=")+1:]
	if strings.Contains(all, value) || strings.Contains(all, "month=11") {
		t.Errorf("a cookie or the query reached the audit record: %s", all)
	}
}

// TestAuditDryRun: a dry-run record says what enforcing would have done.
func TestAuditDryRun(t *testing.T) {
	aud := &recordingAuditor{}
	s := newTestServer(t, func(o *Options) {
		o.DryRun = true
		o.Audit = aud
	})
	run(t, s, checkReq("203.0.113.7"))
	if len(aud.recs) != 1 {
		t.Fatalf("%d records", len(aud.recs))
	}
	if r := aud.recs[0]; r.Decision != "allow" || !r.DryRun || r.Would != "mfa_required" {
		t.Errorf("dry-run record %+v", r)
	}
}
