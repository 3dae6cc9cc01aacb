// Package runner is stepup's side-by-side benchmark harness (docs/performance.md). It
// builds stepup and an allow-all ext_authz baseline (e2e/bench/baseline),
// and for each scenario starts both as separate processes on loopback,
// checks that stepup answers the scenario's expected decision, and then
// drives each in turn with the same closed-loop gRPC load generator,
// alternating baseline and stepup over several rounds so that the drift of
// a shared machine cancels out. It reports requests/s, latency
// percentiles, server CPU time per Check and peak RSS of both, and their
// ratios stepup/baseline as medians over the rounds, and writes them as
// JSON, Markdown and an SVG chart.
//
// The command is e2e/bench (see docs/performance.md):
//
//	go run ./e2e/bench -duration 10s -rounds 5 -out bench-results
//
// Smoke mode ([Options.Smoke]) runs every scenario for a fraction of a
// second to check decisions; it reports figures but judges no target.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/session"
)

// Options configure [Run]. Zero values take the defaults documented on
// each field.
type Options struct {
	// Duration is the measured time per side per round (default 10s;
	// smoke 400ms).
	Duration time.Duration
	// Warmup precedes each measured window (default 2s; smoke 200ms).
	Warmup time.Duration
	// Rounds is how many times each side is measured (default 5; smoke 1).
	Rounds int
	// Concurrency is the number of closed-loop workers (default 16): on
	// 2 cores that saturates both servers without the queueing of a
	// larger number dominating the latencies.
	Concurrency int
	// Conns is the number of HTTP/2 connections the workers share
	// (default 2: an Envoy with 2 worker threads opens one each).
	Conns int
	// Timeout is each Check's deadline, sent as grpc-timeout like Envoy's
	// ext_authz timeout (default 200ms, Envoy's default; smoke 5s).
	Timeout time.Duration
	// Startups is how many times stepup's start-up is timed per scenario
	// (default 3; smoke 1). The first start is the one that is measured.
	Startups int
	// Scenarios selects scenarios by id (nil: all; empty: none).
	Scenarios []int
	// Smoke: a short run that verifies decisions and judges no target.
	Smoke bool
	// Saturation adds the past-saturation run (saturation.go) after the
	// scenarios.
	Saturation bool
	// RequireRedis makes a missing redis-server an error (default: when
	// CI=true); otherwise scenario 7 is skipped with a note.
	RequireRedis bool
	// StepupBin and BaselineBin are prebuilt binaries; empty ones are
	// built from the module with go build.
	StepupBin, BaselineBin string
	// StepupEnv is added to stepup's environment (KEY=VALUE), e.g.
	// GOGC=400 to measure a runtime setting. The baseline does not get it.
	StepupEnv []string
	// CPUProfileDir, when set, receives a CPU profile of stepup per
	// scenario (scenarioN-name.pprof), taken during its first measured
	// window from the pprof endpoint stepup serves when the environment
	// variable [ProfileEnv] names a loopback address. A stepup without
	// that endpoint is measured as usual and the profile is reported
	// missing.
	CPUProfileDir string
	// OutDir receives results.json, results.md and results.svg ("" =
	// nothing written).
	OutDir string
	// Log receives progress lines (nil = discarded).
	Log io.Writer
}

func (o *Options) defaults() {
	if o.Smoke {
		def(&o.Duration, 400*time.Millisecond)
		def(&o.Warmup, 200*time.Millisecond)
		defInt(&o.Rounds, 1)
		defInt(&o.Startups, 1)
		// Speed is not judged: a generous deadline keeps a stalled,
		// shared machine from failing the decision checks.
		def(&o.Timeout, 5*time.Second)
	}
	def(&o.Duration, 10*time.Second)
	def(&o.Warmup, 2*time.Second)
	def(&o.Timeout, 200*time.Millisecond)
	defInt(&o.Rounds, 5)
	defInt(&o.Concurrency, 16)
	defInt(&o.Conns, 2)
	defInt(&o.Startups, 3)
	if o.Conns > o.Concurrency {
		o.Conns = o.Concurrency
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

func def(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

func defInt(n *int, v int) {
	if *n <= 0 {
		*n = v
	}
}

// Report is the outcome of a run.
type Report struct {
	Started     time.Time `json:"started"`
	GoVersion   string    `json:"go_version"`
	GOOS        string    `json:"goos"`
	GOARCH      string    `json:"goarch"`
	NumCPU      int       `json:"num_cpu"`
	Smoke       bool      `json:"smoke"`
	Duration    string    `json:"duration"`
	Warmup      string    `json:"warmup"`
	Rounds      int       `json:"rounds"`
	Concurrency int       `json:"concurrency"`
	Conns       int       `json:"conns"`
	// Timeout is the per-call deadline.
	Timeout string `json:"timeout"`
	// StepupEnv is what was added to stepup's environment.
	StepupEnv []string `json:"stepup_env,omitempty"`
	// LoadAvgBefore and LoadAvgAfter are /proc/loadavg's 1, 5 and 15
	// minute figures around the run.
	LoadAvgBefore string           `json:"loadavg_before"`
	LoadAvgAfter  string           `json:"loadavg_after"`
	Elapsed       string           `json:"elapsed"`
	Scenarios     []ScenarioResult `json:"scenarios"`
	// Saturation is the past-saturation run, when it ran.
	Saturation *SaturationResult `json:"saturation,omitempty"`
}

// ScenarioResult is one scenario's figures.
type ScenarioResult struct {
	Scenario
	// Skipped explains why the scenario did not run.
	Skipped string `json:"skipped,omitempty"`
	// Error is why the scenario failed.
	Error string `json:"error,omitempty"`
	// LoadAvg is /proc/loadavg when the scenario started.
	LoadAvg string `json:"loadavg"`
	// StartupSeconds are stepup's start-up times (exec to gRPC SERVING);
	// BaselineStartupSeconds the baseline's.
	StartupSeconds         []float64 `json:"startup_seconds"`
	BaselineStartupSeconds float64   `json:"baseline_startup_seconds"`
	Rounds                 []Round   `json:"rounds"`
	// Baseline and Stepup are the medians over the rounds; Ratio the
	// medians of the rounds' ratios stepup/baseline.
	Baseline Summary `json:"baseline"`
	Stepup   Summary `json:"stepup"`
	Ratio    Ratios  `json:"ratio"`
	// Results holds each target's value and verdict (not judged in smoke
	// mode).
	Results []TargetResult `json:"results"`
}

// Round is one round: both sides measured back to back.
type Round struct {
	// StepupFirst: stepup ran before the baseline in this round.
	StepupFirst bool        `json:"stepup_first"`
	Baseline    Measurement `json:"baseline"`
	Stepup      Measurement `json:"stepup"`
}

// Summary is one side's medians.
type Summary struct {
	RPS           float64 `json:"rps"`
	P50us         float64 `json:"p50_us"`
	P90us         float64 `json:"p90_us"`
	P99us         float64 `json:"p99_us"`
	CPUPerCheckUs float64 `json:"cpu_per_check_us"`
	// PeakRSSMB is VmHWM at the end of the scenario, in MiB.
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// StartupSeconds is the median start-up time.
	StartupSeconds float64 `json:"startup_seconds"`
	// ErrorRate is the largest share of failed calls in a round.
	ErrorRate float64 `json:"error_rate"`
}

// Ratios are stepup/baseline.
type Ratios struct {
	Throughput  float64 `json:"throughput"`
	P50         float64 `json:"p50"`
	P90         float64 `json:"p90"`
	P99         float64 `json:"p99"`
	CPUPerCheck float64 `json:"cpu_per_check"`
	PeakRSS     float64 `json:"peak_rss"`
}

// TargetResult is a target's value and, outside smoke mode, verdict.
type TargetResult struct {
	Target
	Value float64 `json:"value"`
	// Met is nil when the target was not judged (smoke mode).
	Met *bool `json:"met,omitempty"`
}

// Run runs the benchmark. It returns the report along with an error when
// a scenario failed (a wrong decision, a server that would not start);
// targets that are missed are reported, not errors.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	begin := time.Now()
	rep := &Report{
		Started: begin.UTC(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH,
		NumCPU: runtime.NumCPU(), Smoke: o.Smoke, Duration: o.Duration.String(), Warmup: o.Warmup.String(),
		Rounds: o.Rounds, Concurrency: o.Concurrency, Conns: o.Conns, Timeout: o.Timeout.String(), StepupEnv: o.StepupEnv, LoadAvgBefore: loadAvg(),
	}
	tmp, root, key, err := workspace(ctx, &o, "stepup-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var errs []error
	for _, sc := range Scenarios() {
		if o.Scenarios != nil && !slices.Contains(o.Scenarios, sc.ID) {
			continue
		}
		dir := filepath.Join(tmp, fmt.Sprintf("scenario%d", sc.ID))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "scenario %d (%s): %s\n", sc.ID, sc.Name, sc.Description)
		res := runScenario(ctx, &o, sc, &scenarioEnv{dir: dir, root: root, key: key})
		switch {
		case res.Error != "":
			fmt.Fprintf(o.Log, "scenario %d FAILED: %s\n", sc.ID, res.Error)
			errs = append(errs, fmt.Errorf("scenario %d (%s): %s", sc.ID, sc.Name, res.Error))
		case res.Skipped != "":
			fmt.Fprintf(o.Log, "scenario %d skipped: %s\n", sc.ID, res.Skipped)
		}
		rep.Scenarios = append(rep.Scenarios, res)
		if ctx.Err() != nil {
			break
		}
	}
	if o.Saturation && ctx.Err() == nil {
		dir, err := saturationDir(tmp)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "past saturation: scenario 1's Check, ramp then 4× the knee and 4× max_in_flight\n")
		rep.Saturation = runSaturation(ctx, &o, &scenarioEnv{dir: dir, root: root, key: key})
		if rep.Saturation.Error != "" {
			fmt.Fprintf(o.Log, "past saturation FAILED: %s\n", rep.Saturation.Error)
			errs = append(errs, fmt.Errorf("past saturation: %s", rep.Saturation.Error))
		}
	}
	rep.LoadAvgAfter, rep.Elapsed = loadAvg(), elapsed(begin)
	return rep, errors.Join(append(errs, writeTo(o.OutDir, func(dir string) error { return writeResults(dir, rep) }))...)
}

// elapsed is the time since begin, to the second.
func elapsed(begin time.Time) string { return time.Since(begin).Round(time.Second).String() }

// writeTo writes a run's files into dir by write; with no dir, nothing.
func writeTo(dir string, write func(dir string) error) error {
	if dir == "" {
		return nil
	}
	return write(dir)
}

// workspace makes a run's temporary directory (the caller removes it),
// builds the binaries into it, and finds the module root and a session key
// for the run.
func workspace(ctx context.Context, o *Options, prefix string) (tmp, root string, key session.Key, err error) {
	if tmp, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", key, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err = buildBinaries(ctx, o, tmp); err != nil {
		return tmp, "", key, err
	}
	if root, err = harness.ModuleRoot(ctx); err != nil {
		return tmp, "", key, err
	}
	key, err = session.GenerateKey()
	return tmp, root, key, err
}

func buildBinaries(ctx context.Context, o *Options, dir string) error {
	// The servers run in scenario directories: relative paths would break.
	for _, p := range []*string{&o.StepupBin, &o.BaselineBin} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
	var err error
	switch {
	case o.StepupBin == "" && o.BaselineBin == "":
		o.StepupBin, o.BaselineBin, err = build(ctx, dir)
	case o.BaselineBin == "":
		o.BaselineBin, err = buildOne(ctx, dir, "./e2e/bench/baseline", "baseline")
	case o.StepupBin == "":
		o.StepupBin, err = buildOne(ctx, dir, "./cmd/stepup", "stepup")
	}
	return err
}

// runScenario runs one scenario; failures are recorded in the result.
func runScenario(ctx context.Context, o *Options, sc Scenario, env *scenarioEnv) ScenarioResult {
	res := ScenarioResult{Scenario: sc, LoadAvg: loadAvg()}
	if sc.needsRedis {
		rs, err := startRedis(ctx, env.dir)
		if errors.Is(err, ErrNoRedis) && !o.RequireRedis {
			res.Skipped = err.Error()
			return res
		}
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer rs.stop()
		env.redisAddr = rs.addr
	}
	if err := sc.prepare(ctx, env); err != nil {
		res.Error = "prepare: " + err.Error()
		return res
	}
	if err := measureScenario(ctx, o, env, &res); err != nil {
		res.Error = err.Error()
	}
	return res
}

// startBaseline starts the baseline ext_authz server (it allows
// everything) in dir.
func startBaseline(ctx context.Context, o *Options, dir string) (*server, error) {
	return startServer(ctx, "baseline", o.BaselineBin, []string{"-listen", "127.0.0.1:0"}, nil, dir, baselineAddrRE)
}

func measureScenario(ctx context.Context, o *Options, env *scenarioEnv, res *ScenarioResult) error {
	reqs, err := marshalAll(append([]*authv3.CheckRequest{env.request}, env.pool...))
	if err != nil {
		return err
	}
	base, err := startBaseline(ctx, o, env.dir)
	if err != nil {
		return err
	}
	defer base.stop()
	res.BaselineStartupSeconds = base.startup.Seconds()
	stepupArgs := []string{"serve", "--config", env.config}
	stepupEnv := append([]string(nil), o.StepupEnv...)
	pprofAddr := ""
	if o.CPUProfileDir != "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		pprofAddr = fmt.Sprintf("127.0.0.1:%d", port)
		stepupEnv = append(stepupEnv, ProfileEnv+"="+pprofAddr)
	}
	st, err := startServer(ctx, "stepup", o.StepupBin, stepupArgs, stepupEnv, env.dir, stepupAddrRE)
	if err != nil {
		return err
	}
	defer st.stop()
	res.StartupSeconds = append(res.StartupSeconds, st.startup.Seconds())
	fmt.Fprintf(o.Log, "  started: stepup %v, baseline %v\n", st.startup.Round(time.Millisecond), base.startup.Round(time.Millisecond))

	// Decisions first: nothing is timed until both answer as expected.
	if err := verify(ctx, base.addr, env.request, allowsAll); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := verify(ctx, st.addr, env.request, res.Expect.check); err != nil {
		return fmt.Errorf("stepup: %w", err)
	}
	for _, r := range env.pool[:min(len(env.pool), 3)] {
		if err := verify(ctx, st.addr, r, res.Expect.check); err != nil {
			return fmt.Errorf("stepup, pooled request: %w", err)
		}
	}
	fmt.Fprintf(o.Log, "  decision verified: %s\n", res.Expect)

	lo := loadOptions{
		concurrency: o.Concurrency, conns: o.Conns, warmup: o.Warmup, duration: o.Duration,
		timeout: o.Timeout, sampleEvery: 64,
	}
	for r := 0; r < o.Rounds; r++ {
		round := Round{StepupFirst: r%2 == 1}
		sides := []struct {
			s      *server
			m      *Measurement
			verify func(*authv3.CheckResponse) error
		}{{base, &round.Baseline, allowsAll}, {st, &round.Stepup, res.Expect.check}}
		if round.StepupFirst {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			var prof <-chan error
			if pprofAddr != "" && r == 0 && side.s == st {
				prof = profile(ctx, pprofAddr, o.Warmup, o.Duration, filepath.Join(o.CPUProfileDir, fmt.Sprintf("scenario%d-%s.pprof", res.ID, res.Name)))
			}
			m, err := drive(ctx, side.s.addr, reqs, side.s.pid(), lo, side.verify)
			if prof != nil {
				if perr := <-prof; perr != nil {
					fmt.Fprintf(o.Log, "  cpu profile: %v\n", perr)
				}
			}
			*side.m = m
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, side.s.name, err)
			}
			if !side.s.alive() {
				return fmt.Errorf("round %d: %s exited:\n%s", r+1, side.s.name, side.s.output())
			}
		}
		res.Rounds = append(res.Rounds, round)
		fmt.Fprintf(o.Log, "  round %d: baseline %.0f req/s %.1f µs CPU/check, stepup %.0f req/s %.1f µs CPU/check\n",
			r+1, round.Baseline.RPS, round.Baseline.CPUPerCheckUs, round.Stepup.RPS, round.Stepup.CPUPerCheckUs)
	}
	if rss, err := peakRSS(st.pid()); err == nil {
		res.Stepup.PeakRSSMB = float64(rss) / (1 << 20)
	}
	if rss, err := peakRSS(base.pid()); err == nil {
		res.Baseline.PeakRSSMB = float64(rss) / (1 << 20)
	}
	if err := st.stop(); err != nil {
		return err
	}
	// Further start-ups, for a median (the session store is on disk or in
	// Redis, so the same configuration starts again).
	for i := 1; i < o.Startups; i++ {
		s, err := startServer(ctx, "stepup", o.StepupBin, stepupArgs, o.StepupEnv, env.dir, stepupAddrRE)
		if err != nil {
			return err
		}
		res.StartupSeconds = append(res.StartupSeconds, s.startup.Seconds())
		if err := s.stop(); err != nil {
			return err
		}
	}
	summarize(res, o.Smoke)
	return nil
}

func marshalAll(rs []*authv3.CheckRequest) ([][]byte, error) {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		b, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// verify sends the request a few times with the ordinary protobuf codec
// and checks every answer.
func verify(ctx context.Context, addr string, req *authv3.CheckRequest, check func(*authv3.CheckResponse) error) error {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	for i := 0; i < 3; i++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := client.Check(cctx, req)
		cancel()
		if err != nil {
			return fmt.Errorf("check: %w", err)
		}
		if err := check(resp); err != nil {
			return err
		}
	}
	return nil
}

// summarize fills the medians, ratios and target results.
func summarize(res *ScenarioResult, smoke bool) {
	side := func(get func(Round) Measurement) Summary {
		// answered: latencies and CPU per Check exist only for rounds in
		// which some call was answered.
		pick := func(answered bool, f func(Measurement) float64) float64 {
			v := make([]float64, 0, len(res.Rounds))
			for _, r := range res.Rounds {
				if m := get(r); !answered || m.Requests > 0 {
					v = append(v, f(m))
				}
			}
			return median(v)
		}
		return Summary{
			RPS:           pick(false, func(m Measurement) float64 { return m.RPS }),
			P50us:         pick(true, func(m Measurement) float64 { return m.P50us }),
			P90us:         pick(true, func(m Measurement) float64 { return m.P90us }),
			P99us:         pick(true, func(m Measurement) float64 { return m.P99us }),
			CPUPerCheckUs: pick(true, func(m Measurement) float64 { return m.CPUPerCheckUs }),
		}
	}
	b := side(func(r Round) Measurement { return r.Baseline })
	s := side(func(r Round) Measurement { return r.Stepup })
	for _, r := range res.Rounds {
		b.ErrorRate = max(b.ErrorRate, r.Baseline.errorRate())
		s.ErrorRate = max(s.ErrorRate, r.Stepup.errorRate())
	}
	b.PeakRSSMB, s.PeakRSSMB = res.Baseline.PeakRSSMB, res.Stepup.PeakRSSMB
	b.StartupSeconds = res.BaselineStartupSeconds
	s.StartupSeconds = median(res.StartupSeconds)
	res.Baseline, res.Stepup = b, s
	ratio := func(answered bool, f func(Measurement) float64) float64 {
		v := make([]float64, 0, len(res.Rounds))
		for _, r := range res.Rounds {
			if answered && r.Stepup.Requests == 0 {
				continue
			}
			if d := f(r.Baseline); d > 0 {
				v = append(v, f(r.Stepup)/d)
			}
		}
		return median(v)
	}
	res.Ratio = Ratios{
		Throughput:  ratio(false, func(m Measurement) float64 { return m.RPS }),
		P50:         ratio(true, func(m Measurement) float64 { return m.P50us }),
		P90:         ratio(true, func(m Measurement) float64 { return m.P90us }),
		P99:         ratio(true, func(m Measurement) float64 { return m.P99us }),
		CPUPerCheck: ratio(true, func(m Measurement) float64 { return m.CPUPerCheckUs }),
	}
	if b.PeakRSSMB > 0 {
		res.Ratio.PeakRSS = s.PeakRSSMB / b.PeakRSSMB
	}
	res.Results = nil
	for _, t := range res.Targets {
		tr := TargetResult{Target: t}
		switch t.Metric {
		case "throughput_ratio":
			tr.Value = res.Ratio.Throughput
		case "cpu_ratio":
			tr.Value = res.Ratio.CPUPerCheck
		case "startup_seconds":
			tr.Value = s.StartupSeconds
		case "rss_mb":
			tr.Value = s.PeakRSSMB
		}
		if !smoke {
			met := t.met(tr.Value)
			tr.Met = &met
		}
		res.Results = append(res.Results, tr)
	}
}

// errorRate is the share of calls that failed: those that got no answer
// (Errors) and, estimated from the sample, those answered with a
// fail-closed fault.
func (m Measurement) errorRate() float64 {
	var r float64
	if n := m.Requests + m.Errors; n > 0 {
		r = float64(m.Errors) / float64(n)
	}
	if m.Checked > 0 {
		r += float64(m.Faults) / float64(m.Checked)
	}
	return r
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
