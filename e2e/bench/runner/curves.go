package runner

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/cidr"
	"github.com/stepup-dev/stepup/cidr/cidrtest"
	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/redisstore"
)

// Cost curves (issue 18): how the cost of a Check grows with the work
// behind it. Each point of the rules, prefixes and users curves is a
// small scenario measured side by side with the baseline like the main
// ones (fewer, shorter rounds: see [CurveDefaults]); the prefixes curve
// adds the build, heap and lookup of the set in this process, and the
// states curve is measured in this process against a real store.
//
//   - rules: 1, 5, 20 copies of the seed's 003_extranet.js, corporate IP.
//   - prefixes: 1k, 100k, 1M random prefixes (scenario 6's generator).
//   - users: 10k and 1M users with a remembered browser each, bolt and
//     Redis, seeded in batches (seed.go); the workers rotate through the
//     cookies of 1,000 of them, spread over the key space.
//   - states: step-up states are self-contained tokens, so outstanding
//     ones cost the store nothing; completing one writes a used-marker
//     that lives as long as the state could. The curve seeds 10k, 100k
//     and 1M markers and times completing further states
//     (Manager.ConsumeState) on top of them, with the store's size.

// CurveFile names the files of a curves run in Options.OutDir.
const (
	CurvesJSONFile     = "curves.json"
	CurvesMarkdownFile = "curves.md"
	CurvesSVGFile      = "curves.svg"
)

// CurveDefaults are the curves' defaults for the zero values of
// Options.Duration, Warmup, Rounds and Startups: 2 rounds × 3 s after a
// 1 s warm-up per side and point, one start-up per point. The whole run
// then takes about 6-8 minutes on 2 cores.
var CurveDefaults = struct {
	Duration, Warmup time.Duration
	Rounds, Startups int
}{3 * time.Second, time.Second, 2, 1}

// curve sizes.
var (
	curveRules    = []int{1, 5, 20}
	curvePrefixes = []int{1_000, 100_000, 1_000_000}
	curveUsers    = []int{10_000, 1_000_000}
	curveMarkers  = []int{10_000, 100_000, 1_000_000}
	// curveUserPool is how many seeded users the Checks rotate through.
	curveUserPool = 1_000
	// consumes timed per states point (bolt writes one fdatasync each).
	curveConsumesBolt, curveConsumesRedis = 300, 2_000
)

// CurvesReport is the outcome of a curves run.
type CurvesReport struct {
	Started       time.Time    `json:"started"`
	GoVersion     string       `json:"go_version"`
	NumCPU        int          `json:"num_cpu"`
	Smoke         bool         `json:"smoke"`
	Duration      string       `json:"duration"`
	Warmup        string       `json:"warmup"`
	Rounds        int          `json:"rounds"`
	Concurrency   int          `json:"concurrency"`
	LoadAvgBefore string       `json:"loadavg_before"`
	LoadAvgAfter  string       `json:"loadavg_after"`
	Elapsed       string       `json:"elapsed"`
	Points        []CurvePoint `json:"points"`
}

// CurvePoint is one point of a curve.
type CurvePoint struct {
	// Curve is "rules", "prefixes", "users" or "states"; N the count;
	// Store "bolt" or "redis" where it matters.
	Curve string `json:"curve"`
	N     int    `json:"n"`
	Store string `json:"store,omitempty"`
	// Pool is how many seeded users' cookies the Checks rotate through.
	Pool    int    `json:"pool,omitempty"`
	Label   string `json:"label"`
	LoadAvg string `json:"loadavg"`
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
	// Server is the side-by-side measurement (rules, prefixes, users).
	Server *ScenarioResult `json:"server,omitempty"`
	// Prefixes, in this process: the set's build time, the heap it holds,
	// and a lookup of random addresses.
	BuildSeconds float64 `json:"build_seconds,omitempty"`
	HeapMB       float64 `json:"heap_mb,omitempty"`
	LookupNs     float64 `json:"lookup_ns,omitempty"`
	// Stores: seeding time, the bolt file's size or Redis's used_memory
	// after seeding, and per record.
	SeedSeconds    float64 `json:"seed_seconds,omitempty"`
	StoreMB        float64 `json:"store_mb,omitempty"`
	BytesPerRecord float64 `json:"bytes_per_record,omitempty"`
	// States: ConsumeState on top of N markers, µs (median and p90 of
	// Consumes calls).
	Consumes    int     `json:"consumes,omitempty"`
	ConsumeP50u float64 `json:"consume_p50_us,omitempty"`
	ConsumeP90u float64 `json:"consume_p90_us,omitempty"`
}

// RunCurves measures the cost curves. Options are those of [Run];
// Scenarios and Saturation are ignored, zero durations take
// [CurveDefaults], and Smoke shrinks every size (and the windows) so that
// the whole run takes seconds.
func RunCurves(ctx context.Context, o Options) (*CurvesReport, error) {
	if !o.Smoke {
		def(&o.Duration, CurveDefaults.Duration)
		def(&o.Warmup, CurveDefaults.Warmup)
		defInt(&o.Rounds, CurveDefaults.Rounds)
		defInt(&o.Startups, CurveDefaults.Startups)
	}
	o.defaults()
	begin := time.Now()
	rep := &CurvesReport{Started: begin.UTC(), GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), Smoke: o.Smoke,
		Duration: o.Duration.String(), Warmup: o.Warmup.String(), Rounds: o.Rounds, Concurrency: o.Concurrency, LoadAvgBefore: loadAvg()}
	tmp, root, key, err := workspace(ctx, &o, "stepup-curves-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rules, prefixes, users, markers, pool := curveRules, curvePrefixes, curveUsers, curveMarkers, curveUserPool
	consBolt, consRedis := curveConsumesBolt, curveConsumesRedis
	if o.Smoke {
		rules, prefixes, users, markers, pool = []int{1, 3}, []int{1_000, 5_000}, []int{2_000}, []int{2_000}, 50
		consBolt, consRedis = 20, 50
	}
	n := 0
	newEnv := func() (*scenarioEnv, error) {
		n++
		dir := filepath.Join(tmp, fmt.Sprintf("point%d", n))
		return &scenarioEnv{dir: dir, root: root, key: key}, os.MkdirAll(dir, 0o700)
	}
	var errs []error
	add := func(p CurvePoint) {
		switch {
		case p.Error != "":
			fmt.Fprintf(o.Log, "  %s FAILED: %s\n", p.Label, p.Error)
			errs = append(errs, fmt.Errorf("%s: %s", p.Label, p.Error))
		case p.Skipped != "":
			fmt.Fprintf(o.Log, "  %s skipped: %s\n", p.Label, p.Skipped)
		default:
			fmt.Fprintf(o.Log, "  %s: %s\n", p.Label, p.summary())
		}
		rep.Points = append(rep.Points, p)
	}
	type step func() error
	var steps []step
	for _, k := range rules {
		steps = append(steps, func() error {
			env, err := newEnv()
			if err != nil {
				return err
			}
			add(rulesPoint(ctx, &o, env, k))
			return nil
		})
	}
	for _, k := range prefixes {
		steps = append(steps, func() error {
			env, err := newEnv()
			if err != nil {
				return err
			}
			add(prefixesPoint(ctx, &o, env, k))
			return nil
		})
	}
	for _, store := range []string{"bolt", "redis"} {
		for _, k := range users {
			steps = append(steps, func() error {
				env, err := newEnv()
				if err != nil {
					return err
				}
				add(usersPoint(ctx, &o, env, store, k, min(pool, k)))
				return nil
			})
		}
	}
	for _, store := range []string{"bolt", "redis"} {
		steps = append(steps, func() error {
			env, err := newEnv()
			if err != nil {
				return err
			}
			for _, p := range statesPoints(ctx, &o, env, store, markers, map[string]int{"bolt": consBolt, "redis": consRedis}[store]) {
				add(p)
			}
			return nil
		})
	}
	fmt.Fprintf(o.Log, "cost curves: rules %v, prefixes %v, users %v (bolt, redis), used-markers %v\n", rules, prefixes, users, markers)
	for _, s := range steps {
		if ctx.Err() != nil {
			break
		}
		if err := s(); err != nil {
			return nil, err
		}
	}
	rep.LoadAvgAfter, rep.Elapsed = loadAvg(), elapsed(begin)
	return rep, errors.Join(append(errs, writeTo(o.OutDir, func(dir string) error { return writeCurves(dir, rep) }))...)
}

// serverPoint runs one side-by-side scenario for a curve point.
func serverPoint(ctx context.Context, o *Options, env *scenarioEnv, p *CurvePoint, sc Scenario) {
	sc.Name = p.Label
	res := runScenario(ctx, o, sc, env)
	p.Server = &res
	if res.Error != "" {
		p.Error = res.Error
	}
	if res.Skipped != "" {
		p.Skipped = res.Skipped
	}
}

func rulesPoint(ctx context.Context, o *Options, env *scenarioEnv, k int) CurvePoint {
	p := CurvePoint{Curve: "rules", N: k, Label: fmt.Sprintf("%d rules", k), LoadAvg: loadAvg()}
	sc := Scenario{
		Description: fmt.Sprintf("corporate IP, %d copies of the seed's 003_extranet.js", k),
		Expect:      Expectation{Allowed: true, Reason: "network"},
		prepare: func(ctx context.Context, env *scenarioEnv) error {
			var rs []ruleRef
			for i := range k {
				r := env.seed("003_extranet.js")
				r.name = fmt.Sprintf("extranet-%02d", i+1)
				rs = append(rs, r)
			}
			return env.write(benchConfig{rules: rs}, browser(corporateIP, ""))
		},
	}
	serverPoint(ctx, o, env, &p, sc)
	return p
}

func prefixesPoint(ctx context.Context, o *Options, env *scenarioEnv, k int) CurvePoint {
	p := CurvePoint{Curve: "prefixes", N: k, Label: fmt.Sprintf("%s prefixes", count(k)), LoadAvg: loadAvg()}
	prefixes := cidrtest.RandomPrefixes(k)
	// In this process: build, heap, lookup of random addresses (85% IPv4,
	// like the list; a few hit, most miss).
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	set, err := cidr.NewFromPrefixes(map[string][]netip.Prefix{"corporate": prefixes})
	if err != nil {
		p.Error = "build: " + err.Error()
		return p
	}
	p.BuildSeconds = time.Since(t0).Seconds()
	runtime.GC()
	runtime.ReadMemStats(&m1)
	p.HeapMB = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / (1 << 20)
	rng := rand.New(rand.NewPCG(18, 1))
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		if rng.IntN(100) < 85 {
			addrs[i] = netip.AddrFrom4([4]byte{byte(11 + rng.IntN(213)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		} else {
			var a [16]byte
			a[0] = 0x20 | byte(rng.IntN(16))
			for j := 1; j < 16; j++ {
				a[j] = byte(rng.IntN(256))
			}
			addrs[i] = netip.AddrFrom16(a)
		}
	}
	const lookups = 1 << 20
	hits := 0
	t0 = time.Now()
	for i := range lookups {
		hits += len(set.Lookup(addrs[i&(len(addrs)-1)]))
	}
	p.LookupNs = float64(time.Since(t0).Nanoseconds()) / lookups
	runtime.KeepAlive(set)
	set = nil
	_ = hits
	runtime.GC()

	file := filepath.Join(env.dir, "prefixes.txt")
	sc := Scenario{
		Description: fmt.Sprintf("scenario 1 with %d random prefixes in networks.corporate.files", k),
		Expect:      Expectation{Allowed: true, Reason: "network"},
		prepare: func(ctx context.Context, env *scenarioEnv) error {
			var b strings.Builder
			for _, q := range prefixes {
				b.WriteString(q.String())
				b.WriteByte('\n')
			}
			if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
				return err
			}
			return env.write(benchConfig{rules: []ruleRef{env.seed("003_extranet.js")}, corporateFiles: []string{file}}, browser(corporateIP, ""))
		},
	}
	serverPoint(ctx, o, env, &p, sc)
	return p
}

func usersPoint(ctx context.Context, o *Options, env *scenarioEnv, store string, k, pool int) CurvePoint {
	p := CurvePoint{Curve: "users", N: k, Store: store, Pool: pool, Label: fmt.Sprintf("%s users, %s", count(k), store), LoadAvg: loadAvg()}
	sc := Scenario{
		Description: fmt.Sprintf("extranet IP, remember-browser cookies of %d of %d users with a remembered browser each (%s store)", pool, k, store),
		Expect:      Expectation{Allowed: true, Reason: "remembered"},
		needsRedis:  store == "redis",
		prepare: func(ctx context.Context, env *scenarioEnv) error {
			rule, err := env.harnessRule("extranet-remember.js")
			if err != nil {
				return err
			}
			stride := k / pool
			names := make([]string, pool)
			idx := make([]int, pool)
			for j := range pool {
				idx[j] = j * stride
				names[j] = seedUserName(idx[j])
			}
			cookies, recs, err := rememberedPool(ctx, env.key, names)
			if err != nil {
				return err
			}
			byIdx := make(map[int]session.Record, pool)
			for j, i := range idx {
				byIdx[i] = recs[j]
			}
			seed := usersSeed(k, byIdx, recs[0])
			c := benchConfig{rules: []ruleRef{rule}}
			t0 := time.Now()
			if store == "redis" {
				c.redisAddr = env.redisAddr
				m0, err := redisUsedMemory(ctx, env.redisAddr)
				if err != nil {
					return err
				}
				if err := seedRedis(ctx, env.redisAddr, k, seed); err != nil {
					return err
				}
				p.SeedSeconds = time.Since(t0).Seconds()
				m1, err := redisUsedMemory(ctx, env.redisAddr)
				if err != nil {
					return err
				}
				p.StoreMB, p.BytesPerRecord = float64(m1-m0)/(1<<20), float64(m1-m0)/float64(k)
			} else {
				if err := seedBolt(env.boltPath(), k, seed); err != nil {
					return err
				}
				p.SeedSeconds = time.Since(t0).Seconds()
				p.StoreMB = fileMB(env.boltPath())
				p.BytesPerRecord = p.StoreMB * (1 << 20) / float64(k)
			}
			reqs := make([]*authv3.CheckRequest, pool)
			for j := range pool {
				r := envoyreq.Browser(extranetIP).With("cookie", appCookies+"; "+cookies[j])
				r.Claims = maps.Clone(r.Claims)
				r.Claims["sub"] = names[j]
				if reqs[j], err = r.Proto(); err != nil {
					return err
				}
			}
			if err := env.write(c, reqs[0]); err != nil {
				return err
			}
			env.pool = reqs[1:]
			return nil
		},
	}
	serverPoint(ctx, o, env, &p, sc)
	return p
}

// statesPoints measures ConsumeState on top of growing numbers of
// used-markers in one store.
func statesPoints(ctx context.Context, o *Options, env *scenarioEnv, store string, sizes []int, consumes int) []CurvePoint {
	var out []CurvePoint
	var redisAddr string
	if store == "redis" {
		rs, err := startRedis(ctx, env.dir)
		if errors.Is(err, ErrNoRedis) && !o.RequireRedis {
			for _, k := range sizes {
				out = append(out, CurvePoint{Curve: "states", N: k, Store: store, Label: fmt.Sprintf("%s used-markers, %s", count(k), store), Skipped: err.Error()})
			}
			return out
		}
		if err != nil {
			return append(out, CurvePoint{Curve: "states", Store: store, Label: "used-markers, redis", Error: err.Error()})
		}
		defer rs.stop()
		redisAddr = rs.addr
	}
	for i, k := range sizes {
		p := CurvePoint{Curve: "states", N: k, Store: store, Label: fmt.Sprintf("%s used-markers, %s", count(k), store), LoadAvg: loadAvg(), Consumes: consumes}
		if err := statesPoint(ctx, env, store, redisAddr, filepath.Join(env.dir, fmt.Sprintf("states%d.db", i)), &p); err != nil {
			p.Error = err.Error()
		}
		out = append(out, p)
	}
	return out
}

func statesPoint(ctx context.Context, env *scenarioEnv, store, redisAddr, boltPath string, p *CurvePoint) error {
	seed, err := markersSeed(p.N, time.Now().Add(session.DefaultStateTTL))
	if err != nil {
		return err
	}
	var st session.Store
	t0 := time.Now()
	if store == "redis" {
		if err := redisFlush(ctx, redisAddr); err != nil {
			return err
		}
		m0, err := redisUsedMemory(ctx, redisAddr)
		if err != nil {
			return err
		}
		if err := seedRedis(ctx, redisAddr, p.N, seed); err != nil {
			return err
		}
		p.SeedSeconds = time.Since(t0).Seconds()
		m1, err := redisUsedMemory(ctx, redisAddr)
		if err != nil {
			return err
		}
		p.StoreMB, p.BytesPerRecord = float64(m1-m0)/(1<<20), float64(m1-m0)/float64(p.N)
		rs, err := redisstore.New(redisstore.Options{Addrs: []string{redisAddr}})
		if err != nil {
			return err
		}
		st = rs
	} else {
		if err := seedBolt(boltPath, p.N, seed); err != nil {
			return err
		}
		p.SeedSeconds = time.Since(t0).Seconds()
		p.StoreMB = fileMB(boltPath)
		p.BytesPerRecord = p.StoreMB * (1 << 20) / float64(p.N)
		bs, err := boltstore.Open(boltPath, boltstore.Options{})
		if err != nil {
			return err
		}
		st = bs
	}
	defer st.Close()
	m, err := session.NewManager(session.Config{Keys: []session.Key{env.key}, Store: st})
	if err != nil {
		return err
	}
	ds := make([]float64, 0, p.Consumes)
	for range p.Consumes {
		tok, err := m.NewState(ctx, session.State{User: user, Host: benchRealm, ReturnURL: "https://app.corp.example/payroll/report?month=11"})
		if err != nil {
			return err
		}
		t := time.Now()
		if _, err := m.ConsumeState(ctx, tok, user); err != nil {
			return fmt.Errorf("consume state: %w", err)
		}
		ds = append(ds, float64(time.Since(t).Nanoseconds())/1e3)
	}
	sort.Float64s(ds)
	p.ConsumeP50u, p.ConsumeP90u = ds[len(ds)/2], ds[len(ds)*9/10]
	return nil
}

// count renders 1000 as 1k and 1000000 as 1M.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1_000 && n%1_000 == 0:
		return fmt.Sprintf("%dk", n/1_000)
	}
	return fmt.Sprint(n)
}

func (p *CurvePoint) summary() string {
	var parts []string
	if s := p.Server; s != nil && len(s.Rounds) > 0 {
		parts = append(parts, fmt.Sprintf("stepup %.0f req/s (%.2f×), %.1f µs CPU/check (%.2f×), RSS %.0f MB, start-up %.2fs",
			s.Stepup.RPS, s.Ratio.Throughput, s.Stepup.CPUPerCheckUs, s.Ratio.CPUPerCheck, s.Stepup.PeakRSSMB, s.Stepup.StartupSeconds))
	}
	if p.BuildSeconds > 0 {
		parts = append(parts, fmt.Sprintf("in process: build %.2fs, heap %.1f MB, lookup %.0f ns", p.BuildSeconds, p.HeapMB, p.LookupNs))
	}
	if p.SeedSeconds > 0 {
		parts = append(parts, fmt.Sprintf("seeded in %.1fs, store %.1f MB (%.0f B/record)", p.SeedSeconds, p.StoreMB, p.BytesPerRecord))
	}
	if p.Consumes > 0 && p.ConsumeP50u > 0 {
		parts = append(parts, fmt.Sprintf("ConsumeState p50 %.0f µs, p90 %.0f µs (%d)", p.ConsumeP50u, p.ConsumeP90u, p.Consumes))
	}
	return strings.Join(parts, "; ")
}

// WriteTable prints the curves as text, one table per curve.
func (r *CurvesReport) WriteTable(w io.Writer) error {
	_, err := io.WriteString(w, r.render(false))
	return err
}

// WriteMarkdown writes the curves as Markdown.
func (r *CurvesReport) WriteMarkdown(w io.Writer) error {
	_, err := io.WriteString(w, r.render(true))
	return err
}

func (r *CurvesReport) render(md bool) string {
	var b strings.Builder
	smoke := ""
	if r.Smoke {
		smoke = " — SMOKE: sizes shrunk, figures not meaningful"
	}
	if md {
		b.WriteString("# stepup cost curves\n\n")
	}
	fmt.Fprintf(&b, "Cost curves %s (%s), %d CPUs, %s: server points %d round(s) × %s per side (warm-up %s), %d workers; load average %s → %s%s\n",
		r.Started.Format("2006-01-02 15:04 MST"), r.Elapsed, r.NumCPU, r.GoVersion, r.Rounds, r.Duration, r.Warmup, r.Concurrency, r.LoadAvgBefore, r.LoadAvgAfter, smoke)
	tables := []struct {
		curve, title string
		head         []string
		row          func(p CurvePoint) []string
	}{
		{"rules", "Rules (corporate IP; N copies of 003_extranet.js)", []string{"rules", "base req/s", "stepup req/s", "ratio", "CPU µs/check b/s", "ratio", "p99 µs b/s", "RSS MB"}, func(p CurvePoint) []string {
			return append([]string{fmt.Sprint(p.N)}, serverCells(p.Server)...)
		}},
		{"prefixes", "Prefixes (scenario 1 + N random prefixes; build/heap/lookup in process, start-up/RSS/Checks in stepup)", []string{"prefixes", "build s", "heap MB", "lookup ns", "stepup start-up s", "base req/s", "stepup req/s", "ratio", "CPU µs/check b/s", "ratio", "p99 µs b/s", "RSS MB"}, func(p CurvePoint) []string {
			c := []string{count(p.N), fmt.Sprintf("%.2f", p.BuildSeconds), fmt.Sprintf("%.1f", p.HeapMB), fmt.Sprintf("%.0f", p.LookupNs), startup(p.Server)}
			return append(c, serverCells(p.Server)...)
		}},
		{"users", "Users with a remembered browser (extranet IP; the Checks rotate through the cookies of a pool of them, spread over the key space)", []string{"users", "pool", "store", "seed s", "store MB", "B/user", "base req/s", "stepup req/s", "ratio", "CPU µs/check b/s", "ratio", "p99 µs b/s", "RSS MB"}, func(p CurvePoint) []string {
			c := []string{count(p.N), fmt.Sprint(p.Pool), p.Store, fmt.Sprintf("%.1f", p.SeedSeconds), fmt.Sprintf("%.1f", p.StoreMB), fmt.Sprintf("%.0f", p.BytesPerRecord)}
			return append(c, serverCells(p.Server)...)
		}},
		{"states", "Completed step-up states: used-markers in the store (ConsumeState timed on top of them, in process)", []string{"markers", "store", "seed s", "store MB", "B/marker", "ConsumeState p50 µs", "p90 µs", "consumes"}, func(p CurvePoint) []string {
			return []string{count(p.N), p.Store, fmt.Sprintf("%.1f", p.SeedSeconds), fmt.Sprintf("%.1f", p.StoreMB), fmt.Sprintf("%.0f", p.BytesPerRecord), fmt.Sprintf("%.0f", p.ConsumeP50u), fmt.Sprintf("%.0f", p.ConsumeP90u), fmt.Sprint(p.Consumes)}
		}},
	}
	for _, t := range tables {
		var rows [][]string
		for _, p := range r.Points {
			if p.Curve != t.curve {
				continue
			}
			var row []string
			switch {
			case p.Error != "":
				row = []string{p.Label, "FAILED: " + firstLine(p.Error)}
			case p.Skipped != "":
				row = []string{p.Label, "skipped: " + p.Skipped}
			default:
				row = t.row(p)
			}
			for len(row) < len(t.head) {
				row = append(row, "")
			}
			rows = append(rows, row)
		}
		if len(rows) == 0 {
			continue
		}
		b.WriteString("\n")
		if md {
			b.WriteString("## " + t.title + "\n\n| " + strings.Join(t.head, " | ") + " |\n" + strings.Repeat("|---", len(t.head)) + "|\n")
			for _, row := range rows {
				b.WriteString("| " + strings.Join(row, " | ") + " |\n")
			}
			continue
		}
		b.WriteString(t.title + "\n")
		all := append([][]string{t.head}, rows...)
		widths := make([]int, len(t.head))
		for _, row := range all {
			for i, c := range row {
				if i < len(widths) {
					widths[i] = max(widths[i], len([]rune(c)))
				}
			}
		}
		for _, row := range all {
			for i, c := range row {
				pad := 2
				if i < len(widths) {
					pad += widths[i] - len([]rune(c))
				}
				b.WriteString(c + strings.Repeat(" ", max(pad, 1)))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("\nb/s = baseline / stepup; ratios stepup/baseline (medians of the rounds' ratios); RSS is stepup's VmHWM; store MB is the bolt file's size or Redis's used_memory growth after seeding.\n")
	return b.String()
}

func serverCells(s *ScenarioResult) []string {
	if s == nil || len(s.Rounds) == 0 {
		return []string{"—"}
	}
	return []string{
		fmt.Sprintf("%.0f", s.Baseline.RPS), fmt.Sprintf("%.0f", s.Stepup.RPS), fmt.Sprintf("%.2f", s.Ratio.Throughput),
		fmt.Sprintf("%.1f / %.1f", s.Baseline.CPUPerCheckUs, s.Stepup.CPUPerCheckUs), fmt.Sprintf("%.2f", s.Ratio.CPUPerCheck),
		fmt.Sprintf("%.0f / %.0f", s.Baseline.P99us, s.Stepup.P99us), fmt.Sprintf("%.0f", s.Stepup.PeakRSSMB),
	}
}

func startup(s *ScenarioResult) string {
	if s == nil || len(s.StartupSeconds) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", s.Stepup.StartupSeconds)
}

// WriteSVG draws one small panel per curve: stepup's CPU per Check (bars)
// against the baseline's (a tick), with the throughput ratio written
// above; the states panel shows ConsumeState's median instead.
func (r *CurvesReport) WriteSVG(w io.Writer) error {
	type bar struct {
		label     string
		v, base   float64
		annot     string
		hasServer bool
	}
	type panel struct {
		title, unit string
		bars        []bar
	}
	var panels []panel
	for _, c := range []struct{ curve, store, title string }{
		{"rules", "", "rules"}, {"prefixes", "", "prefixes"}, {"users", "bolt", "users, bolt"}, {"users", "redis", "users, Redis"},
		{"states", "bolt", "used-markers, bolt"}, {"states", "redis", "used-markers, Redis"},
	} {
		pn := panel{title: c.title, unit: "CPU µs/check"}
		if c.curve == "states" {
			pn.unit = "ConsumeState µs"
		}
		for _, p := range r.Points {
			if p.Curve != c.curve || p.Store != c.store || p.Error != "" || p.Skipped != "" {
				continue
			}
			br := bar{label: count(p.N)}
			if s := p.Server; s != nil && len(s.Rounds) > 0 {
				br.v, br.base, br.hasServer = s.Stepup.CPUPerCheckUs, s.Baseline.CPUPerCheckUs, true
				br.annot = fmt.Sprintf("%.2f×", s.Ratio.Throughput)
			} else {
				br.v, br.annot = p.ConsumeP50u, fmt.Sprintf("%.0f B", p.BytesPerRecord)
			}
			pn.bars = append(pn.bars, br)
		}
		if len(pn.bars) > 0 {
			panels = append(panels, pn)
		}
	}
	const pw, ph, top, plotH, barW = 180, 230, 60, 130, 34
	width := max(len(panels)*pw+20, 400)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", width, ph+40, width, ph+40)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="10" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString("stepup cost curves ("+r.Started.Format("2006-01-02")+", load average "+r.LoadAvgBefore+")"))
	b.WriteString(`<text x="10" y="34" fill="#555">bars: stepup CPU per Check (µs), black tick: the baseline's; above: throughput ratio. States: ConsumeState median (µs), above: bytes per marker</text>` + "\n")
	for i, pn := range panels {
		x0 := 10 + i*pw
		maxV := 1.0
		for _, br := range pn.bars {
			maxV = max(maxV, br.v, br.base)
		}
		y := func(v float64) float64 { return float64(top+plotH) - v/maxV*plotH }
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, top-8, html.EscapeString(pn.title))
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#999"/>`+"\n", x0, x0+pw-20, top+plotH, top+plotH)
		for j, br := range pn.bars {
			bx := x0 + 8 + j*(barW+10)
			color := "#d9822b"
			if !br.hasServer {
				color = "#3b78c2"
			}
			fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%d" height="%.1f" fill="%s"><title>%s: %.1f</title></rect>`+"\n", bx, y(br.v), barW, y(0)-y(br.v), color, html.EscapeString(br.label), br.v)
			if br.hasServer {
				fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="black" stroke-width="2"/>`+"\n", bx-3, bx+barW+3, y(br.base), y(br.base))
			}
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle" font-size="10">%.0f</text>`+"\n", bx+barW/2, y(br.v)-3, br.v)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", bx+barW/2, top+plotH+14, html.EscapeString(br.label))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#555" font-size="10">%s</text>`+"\n", bx+barW/2, top+plotH+28, html.EscapeString(br.annot))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555" font-size="10">%s</text>`+"\n", x0, top+plotH+44, html.EscapeString(pn.unit))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCurves writes the curves' JSON, Markdown and SVG files into dir.
func writeCurves(dir string, r *CurvesReport) error {
	return writeReport(dir, r, CurvesJSONFile, CurvesMarkdownFile, CurvesSVGFile, r.WriteMarkdown, r.WriteSVG)
}
