package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// The past-saturation run (issue 18): scenario 1's Check driven far past
// the concurrency that saturates stepup, to see that the Checks stepup
// admits still get their decision within the deadline, and that the rest
// are turned away at once (503 "overloaded", extauthz/admission.go)
// instead of expiring.
//
// A closed-loop ramp (1, 2, 4, … workers) finds the knee: the fewest
// workers at which a server reaches 90% of the ramp's best throughput.
// Two loads follow, each for both servers side by side over the rounds:
//
//   - 4× the knee. On 2 cores the knee is a handful of workers, so this
//     stays under stepup's admission bound: the excess queues.
//   - 4× server.max_in_flight (64 per CPU, written into the configuration
//     so that the harness knows it). Here three quarters of the calls in
//     flight are over the bound: admission control must turn them away.
//
// The load stays closed-loop: a worker that is turned away sends its next
// Check at once, so the overloaded share is that of a client that retries
// immediately, the harshest case.

// saturationKneeShare is the share of the ramp's best throughput that
// marks the knee.
const saturationKneeShare = 0.9

// saturationSteps are the ramp's worker counts.
var saturationSteps = []int{1, 2, 4, 8, 16, 32, 64}

// SaturationResult is the past-saturation run's outcome.
type SaturationResult struct {
	Description string      `json:"description"`
	Expect      Expectation `json:"expect"`
	// MaxInFlight is stepup's server.max_in_flight in the run.
	MaxInFlight int    `json:"max_in_flight"`
	LoadAvg     string `json:"loadavg"`
	Skipped     string `json:"skipped,omitempty"`
	Error       string `json:"error,omitempty"`
	// Ramp is the closed-loop ramp; StepupKnee and BaselineKnee the
	// fewest workers at which each reached 90% of its best throughput.
	Ramp         []RampStep `json:"ramp"`
	StepupKnee   int        `json:"stepup_knee"`
	BaselineKnee int        `json:"baseline_knee"`
	// Loads are the loads past saturation.
	Loads []SaturationLoad `json:"loads"`
}

// RampStep is one step of the ramp.
type RampStep struct {
	Concurrency    int     `json:"concurrency"`
	BaselineRPS    float64 `json:"baseline_rps"`
	StepupRPS      float64 `json:"stepup_rps"`
	BaselineP99us  float64 `json:"baseline_p99_us"`
	StepupP99us    float64 `json:"stepup_p99_us"`
	BaselineErrors int64   `json:"baseline_errors"`
	StepupErrors   int64   `json:"stepup_errors"`
}

// SaturationLoad is one load past saturation, both sides over the rounds.
type SaturationLoad struct {
	Name        string            `json:"name"`
	Concurrency int               `json:"concurrency"`
	Rounds      []Round           `json:"rounds"`
	Baseline    SaturationSummary `json:"baseline"`
	Stepup      SaturationSummary `json:"stepup"`
}

// SaturationSummary is one side of a load: shares of all calls and
// latencies are medians over the rounds; counts are sums.
type SaturationSummary struct {
	// DecidedRPS is decisions per second.
	DecidedRPS float64 `json:"decided_rps"`
	// DecidedShare is the share of calls answered with the decision within
	// the deadline; OverloadedShare those turned away at once;
	// OtherFaultShare other fail-closed answers.
	DecidedShare    float64 `json:"decided_share"`
	OverloadedShare float64 `json:"overloaded_share"`
	OtherFaultShare float64 `json:"other_fault_share"`
	DecidedP50us    float64 `json:"decided_p50_us"`
	DecidedP99us    float64 `json:"decided_p99_us"`
	// DecidedMaxUs is the slowest decision of all rounds.
	DecidedMaxUs    float64 `json:"decided_max_us"`
	OverloadedP99us float64 `json:"overloaded_p99_us"`
	// CPUPerCallUs is server CPU per answered call (decided or not).
	CPUPerCallUs float64 `json:"cpu_per_call_us"`
	// DeadlineExpiries and OtherErrors are summed over the rounds; the
	// issue's bar for expiries is zero.
	DeadlineExpiries int64 `json:"deadline_expiries"`
	OtherErrors      int64 `json:"other_errors"`
	// DecidedLate are decisions the client took after the deadline
	// (summed).
	DecidedLate int64 `json:"decided_late"`
	Calls       int64 `json:"calls"`
}

// saturationScenario is scenario 1's configuration and request with the
// admission bound written out.
func saturationScenario(maxInFlight int) Scenario {
	sc := Scenarios()[0]
	sc.Description = fmt.Sprintf("scenario 1 (corporate IP, the seed's extranet rule) past saturation; server.max_in_flight %d", maxInFlight)
	sc.prepare = func(ctx context.Context, env *scenarioEnv) error {
		return env.write(benchConfig{rules: []ruleRef{env.seed("003_extranet.js")}, maxInFlight: maxInFlight}, browser(corporateIP, ""))
	}
	return sc
}

// defaultMaxInFlight is stepup's default bound (extauthz.DefaultMaxInFlight)
// for a stepup started with the harness's environment: 64 per CPU that Go
// may use (a GOMAXPROCS in -stepup-env wins).
func defaultMaxInFlight(stepupEnv []string) int {
	procs := runtime.GOMAXPROCS(0)
	for _, kv := range stepupEnv {
		if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
			if n, err := fmt.Sscan(v, &procs); n != 1 || err != nil || procs < 1 {
				procs = runtime.GOMAXPROCS(0)
			}
		}
	}
	return 64 * procs
}

func runSaturation(ctx context.Context, o *Options, env *scenarioEnv) *SaturationResult {
	maxIF := defaultMaxInFlight(o.StepupEnv)
	sc := saturationScenario(maxIF)
	res := &SaturationResult{Description: sc.Description, Expect: sc.Expect, MaxInFlight: maxIF, LoadAvg: loadAvg()}
	if err := sc.prepare(ctx, env); err != nil {
		res.Error = "prepare: " + err.Error()
		return res
	}
	if err := measureSaturation(ctx, o, env, sc, res); err != nil {
		res.Error = err.Error()
	}
	return res
}

func measureSaturation(ctx context.Context, o *Options, env *scenarioEnv, sc Scenario, res *SaturationResult) error {
	reqs, err := marshalAll([]*authv3.CheckRequest{env.request})
	if err != nil {
		return err
	}
	base, err := startBaseline(ctx, o, env.dir)
	if err != nil {
		return err
	}
	defer base.stop()
	st, err := startServer(ctx, "stepup", o.StepupBin, []string{"serve", "--config", env.config}, o.StepupEnv, env.dir, stepupAddrRE)
	if err != nil {
		return err
	}
	defer st.stop()
	if err := verify(ctx, base.addr, env.request, allowsAll); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := verify(ctx, st.addr, env.request, sc.Expect.check); err != nil {
		return fmt.Errorf("stepup: %w", err)
	}
	type side struct {
		s      *server
		verify func(*authv3.CheckResponse) error
	}
	sides := []side{{base, allowsAll}, {st, sc.Expect.check}}

	// The ramp: short windows, one warm-up.
	step := max(o.Duration/5, 250*time.Millisecond)
	if o.Smoke {
		step = 200 * time.Millisecond
	}
	for i, c := range saturationSteps {
		warm := min(o.Warmup, 300*time.Millisecond)
		if i == 0 {
			warm = o.Warmup
		}
		rs := RampStep{Concurrency: c}
		for _, sd := range sides {
			lo := loadOptions{concurrency: c, conns: min(o.Conns, c), warmup: warm, duration: step, timeout: o.Timeout, sampleEvery: 64}
			m, err := drive(ctx, sd.s.addr, reqs, sd.s.pid(), lo, sd.verify)
			// A short window in which a stalled machine completed nothing
			// is a step at 0 req/s; a wrong decision is a failure.
			if err != nil && (m.Mismatches > 0 || ctx.Err() != nil) {
				return fmt.Errorf("ramp, %d workers, %s: %w", c, sd.s.name, err)
			}
			if sd.s == st {
				rs.StepupRPS, rs.StepupP99us, rs.StepupErrors = m.RPS, m.P99us, m.Errors
			} else {
				rs.BaselineRPS, rs.BaselineP99us, rs.BaselineErrors = m.RPS, m.P99us, m.Errors
			}
		}
		res.Ramp = append(res.Ramp, rs)
		fmt.Fprintf(o.Log, "  ramp %d workers: baseline %.0f req/s, stepup %.0f req/s\n", c, rs.BaselineRPS, rs.StepupRPS)
	}
	res.StepupKnee = knee(res.Ramp, func(r RampStep) float64 { return r.StepupRPS })
	res.BaselineKnee = knee(res.Ramp, func(r RampStep) float64 { return r.BaselineRPS })
	fmt.Fprintf(o.Log, "  knee: stepup %d workers, baseline %d\n", res.StepupKnee, res.BaselineKnee)

	loads := []SaturationLoad{
		{Name: fmt.Sprintf("4× the knee (%d workers)", 4*res.StepupKnee), Concurrency: 4 * res.StepupKnee},
		{Name: fmt.Sprintf("4× max_in_flight (%d workers)", 4*res.MaxInFlight), Concurrency: 4 * res.MaxInFlight},
	}
	for li := range loads {
		ld := &loads[li]
		lo := loadOptions{concurrency: ld.Concurrency, conns: o.Conns, warmup: o.Warmup, duration: o.Duration, timeout: o.Timeout, classify: true}
		for r := 0; r < o.Rounds; r++ {
			round := Round{StepupFirst: r%2 == 1}
			order := []struct {
				side
				m *Measurement
			}{{sides[0], &round.Baseline}, {sides[1], &round.Stepup}}
			if round.StepupFirst {
				order[0], order[1] = order[1], order[0]
			}
			for _, sd := range order {
				m, err := drive(ctx, sd.s.addr, reqs, sd.s.pid(), lo, sd.verify)
				*sd.m = m
				if err != nil {
					return fmt.Errorf("%s, round %d, %s: %w", ld.Name, r+1, sd.s.name, err)
				}
				if !sd.s.alive() {
					return fmt.Errorf("%s, round %d: %s exited:\n%s", ld.Name, r+1, sd.s.name, sd.s.output())
				}
			}
			ld.Rounds = append(ld.Rounds, round)
			so, bo := round.Stepup.Outcomes, round.Baseline.Outcomes
			fmt.Fprintf(o.Log, "  %s, round %d: stepup %.1f%% decided (p99 %.1f ms), %.1f%% overloaded, %d deadline expiries; baseline %.1f%% decided (p99 %.1f ms), %d expiries\n",
				ld.Name, r+1, 100*so.share(so.Decided), so.DecidedP99us/1000, 100*so.share(so.Overloaded), so.DeadlineExpiries,
				100*bo.share(bo.Decided), bo.DecidedP99us/1000, bo.DeadlineExpiries)
		}
		ld.Baseline = summarizeSaturation(ld.Rounds, func(r Round) Measurement { return r.Baseline })
		ld.Stepup = summarizeSaturation(ld.Rounds, func(r Round) Measurement { return r.Stepup })
	}
	res.Loads = loads
	return nil
}

// knee returns the fewest workers at which rps reaches
// saturationKneeShare of the ramp's best (0 for an empty ramp).
func knee(ramp []RampStep, rps func(RampStep) float64) int {
	best := 0.0
	for _, r := range ramp {
		best = max(best, rps(r))
	}
	for _, r := range ramp {
		if best > 0 && rps(r) >= saturationKneeShare*best {
			return r.Concurrency
		}
	}
	return 0
}

func summarizeSaturation(rounds []Round, get func(Round) Measurement) SaturationSummary {
	var s SaturationSummary
	med := func(f func(m Measurement, o *Outcomes) float64) float64 {
		var v []float64
		for _, r := range rounds {
			if m := get(r); m.Outcomes != nil {
				v = append(v, f(m, m.Outcomes))
			}
		}
		return median(v)
	}
	s.DecidedRPS = med(func(m Measurement, o *Outcomes) float64 { return float64(o.Decided) / m.Seconds })
	s.DecidedShare = med(func(_ Measurement, o *Outcomes) float64 { return o.share(o.Decided) })
	s.OverloadedShare = med(func(_ Measurement, o *Outcomes) float64 { return o.share(o.Overloaded) })
	s.OtherFaultShare = med(func(_ Measurement, o *Outcomes) float64 { return o.share(o.OtherFaults) })
	s.DecidedP50us = med(func(_ Measurement, o *Outcomes) float64 { return o.DecidedP50us })
	s.DecidedP99us = med(func(_ Measurement, o *Outcomes) float64 { return o.DecidedP99us })
	s.OverloadedP99us = med(func(_ Measurement, o *Outcomes) float64 { return o.OverloadedP99us })
	s.CPUPerCallUs = med(func(m Measurement, _ *Outcomes) float64 { return m.CPUPerCheckUs })
	for _, r := range rounds {
		m := get(r)
		if m.Outcomes == nil {
			continue
		}
		s.DecidedMaxUs = max(s.DecidedMaxUs, m.Outcomes.DecidedMaxUs)
		s.DeadlineExpiries += m.Outcomes.DeadlineExpiries
		s.OtherErrors += m.Outcomes.OtherErrors
		s.DecidedLate += m.Outcomes.DecidedLate
		s.Calls += m.Outcomes.Calls
	}
	return s
}

// DeadlineExpiries is the sum over every load and side.
func (r *SaturationResult) DeadlineExpiries() (stepup, baseline int64) {
	for _, l := range r.Loads {
		stepup += l.Stepup.DeadlineExpiries
		baseline += l.Baseline.DeadlineExpiries
	}
	return stepup, baseline
}

var saturationHeaders = []string{"load", "side", "decisions/s", "decided in time", "decided p50 / p99 / max ms", "overloaded (503 at once)", "overloaded p99 ms", "other fail-closed", "DEADLINE EXPIRIES", "decided late", "other errors", "CPU µs/call"}

func (r *SaturationResult) rows() [][]string {
	var out [][]string
	for _, l := range r.Loads {
		for _, sd := range []struct {
			name string
			s    SaturationSummary
		}{{"baseline", l.Baseline}, {"stepup", l.Stepup}} {
			s := sd.s
			over, overP99 := pct(s.OverloadedShare), fmt.Sprintf("%.1f", s.OverloadedP99us/1000)
			if sd.name == "baseline" {
				over, overP99 = "n/a (no admission)", "—"
			}
			out = append(out, []string{
				l.Name, sd.name, fmt.Sprintf("%.0f", s.DecidedRPS), pct(s.DecidedShare),
				fmt.Sprintf("%.2f / %.2f / %.1f", s.DecidedP50us/1000, s.DecidedP99us/1000, s.DecidedMaxUs/1000),
				over, overP99, pct(s.OtherFaultShare), fmt.Sprint(s.DeadlineExpiries), fmt.Sprint(s.DecidedLate), fmt.Sprint(s.OtherErrors),
				fmt.Sprintf("%.1f", s.CPUPerCallUs),
			})
		}
	}
	return out
}

func (r *SaturationResult) headline() string {
	if r.Error != "" {
		return "past saturation: FAILED: " + firstLine(r.Error)
	}
	if r.Skipped != "" {
		return "past saturation: skipped: " + r.Skipped
	}
	s, b := r.DeadlineExpiries()
	mark := "✓"
	if s > 0 {
		mark = "✗"
	}
	return fmt.Sprintf("past saturation (%s): knee stepup %d / baseline %d workers, max_in_flight %d; %s DEADLINE EXPIRIES: stepup %d, baseline %d (target 0)",
		r.Expect, r.StepupKnee, r.BaselineKnee, r.MaxInFlight, mark, s, b)
}

// writeTable writes the past-saturation section.
func (r *SaturationResult) writeTable(w *strings.Builder, markdown bool) {
	w.WriteString("\n")
	if markdown {
		w.WriteString("## Past saturation\n\n")
	}
	w.WriteString(r.headline() + "\n")
	if len(r.Loads) == 0 {
		return
	}
	if markdown {
		w.WriteString("\n| ramp: workers | " + joinRamp(r.Ramp, " | ", func(s RampStep) string { return fmt.Sprint(s.Concurrency) }) + " |\n")
		w.WriteString(strings.Repeat("|---", len(r.Ramp)+1) + "|\n")
		w.WriteString("| baseline req/s | " + joinRamp(r.Ramp, " | ", func(s RampStep) string { return fmt.Sprintf("%.0f", s.BaselineRPS) }) + " |\n")
		w.WriteString("| stepup req/s | " + joinRamp(r.Ramp, " | ", func(s RampStep) string { return fmt.Sprintf("%.0f", s.StepupRPS) }) + " |\n\n")
		w.WriteString("| " + strings.Join(saturationHeaders, " | ") + " |\n" + strings.Repeat("|---", len(saturationHeaders)) + "|\n")
		for _, row := range r.rows() {
			w.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
		return
	}
	w.WriteString("ramp (workers: baseline / stepup req/s): ")
	w.WriteString(joinRamp(r.Ramp, ", ", func(s RampStep) string {
		return fmt.Sprintf("%d: %.0f / %.0f", s.Concurrency, s.BaselineRPS, s.StepupRPS)
	}))
	w.WriteString("\n")
	rows := append([][]string{saturationHeaders}, r.rows()...)
	widths := make([]int, len(saturationHeaders))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, row := range rows {
		for i, c := range row {
			w.WriteString(c + strings.Repeat(" ", widths[i]-len([]rune(c))+2))
		}
		w.WriteString("\n")
	}
}

func joinRamp(ramp []RampStep, sep string, f func(RampStep) string) string {
	parts := make([]string, len(ramp))
	for i, s := range ramp {
		parts[i] = f(s)
	}
	return strings.Join(parts, sep)
}

// saturationDir makes the run's directory.
func saturationDir(tmp string) (string, error) {
	dir := filepath.Join(tmp, "saturation")
	return dir, os.MkdirAll(dir, 0o700)
}
