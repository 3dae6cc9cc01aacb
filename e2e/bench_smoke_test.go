package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/e2e/bench/runner"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// TestBenchSmoke runs the side-by-side benchmark harness (issue 5,
// docs/performance.md) in smoke mode on the binary under test: every
// scenario starts stepup and the allow-all baseline, checks that stepup
// answers the scenario's expected decision, and drives both for a moment
// while sampled responses are checked again; then the past-saturation run
// ramps and overloads scenario 1 for a moment. It asserts decisions and
// the shape of the report only, never a speed.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 16 server processes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := runner.Run(ctx, runner.Options{
		Smoke:        true,
		Saturation:   true,
		StepupBin:    stepupBin,
		RequireRedis: harness.InCI(),
		OutDir:       t.TempDir(),
		Log:          &log,
	})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatalf("benchmark smoke run: %v", err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())

	if got, want := len(rep.Scenarios), len(runner.Scenarios()); got != want {
		t.Fatalf("%d scenarios in the report, want %d", got, want)
	}
	for _, s := range rep.Scenarios {
		if s.Skipped != "" {
			// Only scenario 7 may skip, and only without redis-server
			// outside CI (Run fails under RequireRedis).
			if s.ID != 7 {
				t.Errorf("scenario %d skipped: %s", s.ID, s.Skipped)
			}
			continue
		}
		if len(s.Rounds) != 1 {
			t.Errorf("scenario %d: %d rounds, want 1", s.ID, len(s.Rounds))
			continue
		}
		for side, m := range map[string]runner.Measurement{"baseline": s.Rounds[0].Baseline, "stepup": s.Rounds[0].Stepup} {
			if m.Requests == 0 || m.Mismatches != 0 {
				t.Errorf("scenario %d, %s: %d requests, %d wrong decisions of %d sampled", s.ID, side, m.Requests, m.Mismatches, m.Checked)
			}
		}
		for _, r := range s.Results {
			if r.Met != nil {
				t.Errorf("scenario %d: smoke mode judged target %s", s.ID, r.Target)
			}
		}
		if len(s.StartupSeconds) != 1 {
			t.Errorf("scenario %d: %d start-ups timed, want 1", s.ID, len(s.StartupSeconds))
		}
	}

	// Past saturation: the ramp and both loads ran, every call of the
	// windows was sorted, and stepup answered with its decision. Shares
	// and expiries depend on the machine and are reported, not judged.
	sat := rep.Saturation
	if sat == nil {
		t.Fatal("no past-saturation result")
	}
	if len(sat.Ramp) == 0 || sat.StepupKnee == 0 || len(sat.Loads) != 2 {
		t.Fatalf("past saturation: %d ramp steps, knee %d, %d loads", len(sat.Ramp), sat.StepupKnee, len(sat.Loads))
	}
	for _, l := range sat.Loads {
		for side, s := range map[string]runner.SaturationSummary{"baseline": l.Baseline, "stepup": l.Stepup} {
			if s.Calls == 0 || s.DecidedRPS == 0 {
				t.Errorf("%s, %s: %d calls, %.0f decisions/s", l.Name, side, s.Calls, s.DecidedRPS)
			}
		}
	}
}

// TestBenchCurvesSmoke runs the cost curves (go run ./e2e/bench -curves)
// with every size shrunk: each point starts its servers or seeds its
// store, gets the expected decision and reports its figures. It asserts
// that every point ran and reported, never a speed or a size.
func TestBenchCurvesSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dozen server processes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := runner.RunCurves(ctx, runner.Options{
		Smoke:        true,
		StepupBin:    stepupBin,
		RequireRedis: harness.InCI(),
		OutDir:       t.TempDir(),
		Log:          &log,
	})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatalf("curves smoke run: %v", err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	curves := map[string]int{}
	for _, p := range rep.Points {
		if p.Skipped != "" {
			if p.Store != "redis" {
				t.Errorf("%s skipped: %s", p.Label, p.Skipped)
			}
			continue
		}
		curves[p.Curve]++
		switch p.Curve {
		case "states":
			if p.StoreMB <= 0 || p.ConsumeP50u <= 0 {
				t.Errorf("%s: store %.2f MB, ConsumeState %.0f µs", p.Label, p.StoreMB, p.ConsumeP50u)
			}
		default:
			if p.Server == nil || len(p.Server.Rounds) != 1 || p.Server.Rounds[0].Stepup.Requests == 0 || p.Server.Rounds[0].Stepup.Mismatches != 0 {
				t.Errorf("%s: no clean measurement: %+v", p.Label, p.Server)
			}
		}
		if p.Curve == "users" && p.StoreMB <= 0 {
			t.Errorf("%s: store size %.2f MB", p.Label, p.StoreMB)
		}
		if p.Curve == "prefixes" && (p.BuildSeconds <= 0 || p.LookupNs <= 0) {
			t.Errorf("%s: build %.3fs, lookup %.0f ns", p.Label, p.BuildSeconds, p.LookupNs)
		}
	}
	for _, c := range []string{"rules", "prefixes", "users", "states"} {
		if curves[c] == 0 {
			t.Errorf("no point of the %s curve ran", c)
		}
	}
}
