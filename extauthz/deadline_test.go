package extauthz

import (
	"context"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/rules"
)

// TestCheckHonoursTheDeadline: the incoming gRPC deadline (Envoy's
// ext_authz timeout) bounds the decision. A Check whose deadline has
// already passed is a 504 denial without running anything; a rule that
// would run past the deadline is cut at the deadline, not at its own
// (longer) budget, and the request is denied, never allowed. Either way
// the answer is a decision, not a gRPC error.
func TestCheckHonoursTheDeadline(t *testing.T) {
	loop := rules.Source{Name: "loop", Code: []byte(`function (u, c, cb) { while (true) {} }`), Enabled: true}
	e, err := rules.New(rules.Options{Rules: []rules.Source{loop}, RuleTimeout: 5 * time.Second, PipelineTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s := newTestServer(t, func(o *Options) { o.Policy = NewRulesPolicy(e, nil) })

	tests := []struct {
		name       string
		timeout    time.Duration // from now; <= 0: already expired
		wantStatus int
		wantReason string
		maxTime    time.Duration
	}{
		{"deadline already passed", -time.Second, 504, "deadline", 100 * time.Millisecond},
		{"deadline during a looping rule", 150 * time.Millisecond, 503, "rule_timeout", 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			start := time.Now()
			resp, err := s.Check(ctx, checkReq("192.168.1.140"))
			took := time.Since(start)
			if err != nil {
				t.Fatalf("gRPC error: %v", err)
			}
			if resp.GetOkResponse() != nil {
				t.Fatal("allowed")
			}
			if got := int(resp.GetDeniedResponse().GetStatus().GetCode()); got != tc.wantStatus || reason(resp) != tc.wantReason {
				t.Errorf("denied %d %q, want %d %q", got, reason(resp), tc.wantStatus, tc.wantReason)
			}
			if took > tc.maxTime {
				t.Errorf("took %v: the deadline was not honoured (the rule's own budget is 5s)", took)
			}
		})
	}
	// The runtime the loop ran on is discarded; the server still decides.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := s.Check(ctx, checkReq("192.168.1.140")); err != nil {
		t.Fatalf("after the loops: %v", err)
	}
}
