package rulesload

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRuleMetricsCached: the cached children count exactly what the label
// lookups counted, per rule and outcome, under concurrent use.
func TestRuleMetricsCached(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	obs := []struct{ rule, outcome string }{
		{"extranet", "ok"}, {"extranet", "ok"}, {"extranet", "error"},
		{"duo", "ok"}, {"duo", "timeout"}, {"frequency", "exception"},
	}
	const workers, rounds = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range rounds {
				for _, o := range obs {
					m.ObserveRule(o.rule, o.outcome, time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	for _, tc := range []struct {
		rule, outcome string
		want          float64
	}{
		{"extranet", "ok", 2 * workers * rounds},
		{"extranet", "error", workers * rounds},
		{"duo", "ok", workers * rounds},
		{"duo", "timeout", workers * rounds},
		{"frequency", "exception", workers * rounds},
		{"frequency", "ok", 0},
	} {
		if got := testutil.ToFloat64(m.runs.WithLabelValues(tc.rule, tc.outcome)); got != tc.want {
			t.Errorf("runs{%s,%s} = %v, want %v", tc.rule, tc.outcome, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 3 {
		t.Errorf("%d duration series, want 3 (one per rule)", n)
	}
	want := map[string]uint64{"extranet": 3 * workers * rounds, "duo": 2 * workers * rounds, "frequency": workers * rounds}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "stepup_rule_eval_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			rule := mt.GetLabel()[0].GetValue()
			if got := mt.GetHistogram().GetSampleCount(); got != want[rule] {
				t.Errorf("duration{%s} count = %d, want %d", rule, got, want[rule])
			}
		}
	}
}
