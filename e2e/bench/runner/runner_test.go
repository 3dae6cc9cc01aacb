package runner

import (
	"context"
	"encoding/xml"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/redisstore"
)

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	// 1..10000 µs, uniformly.
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.9, 9000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {1, 10000 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.016 {
			t.Errorf("q%.2f = %v, want %v within 1.6%%", tc.q, got, tc.want)
		}
	}
	var empty histogram
	if got := empty.quantile(0.5); got != 0 {
		t.Errorf("empty histogram q50 = %v, want 0", got)
	}
	// Merging two halves gives the same answers.
	var a, b histogram
	for i := 1; i <= 10000; i++ {
		if i%2 == 0 {
			a.record(time.Duration(i) * time.Microsecond)
		} else {
			b.record(time.Duration(i) * time.Microsecond)
		}
	}
	a.merge(&b)
	if a.n != h.n || a.quantile(0.99) != h.quantile(0.99) || a.max != h.max {
		t.Errorf("merged: n=%d q99=%v max=%v, want n=%d q99=%v max=%v", a.n, a.quantile(0.99), a.max, h.n, h.quantile(0.99), h.max)
	}
}

func TestBucketsRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 1000, 123456, 1 << 40, math.MaxInt64} {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		mid := bucketValue(i)
		if v >= linearLimit {
			if rel := math.Abs(float64(mid-v)) / float64(v); rel > 1.0/subCount {
				t.Errorf("value %d: bucket middle %d is %.3f%% off", v, mid, rel*100)
			}
		} else if mid != v {
			t.Errorf("value %d: bucket value %d, want exact", v, mid)
		}
		if i > 0 && bucketOf(v) < bucketOf(v-1) {
			t.Errorf("buckets not monotonic at %d", v)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses, utime 250, stime 50.
	line := "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 100 123456 789 18446744073709551615\n"
	got, err := parseStatCPU([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := 300 / clockTicks; got != want {
		t.Errorf("cpu = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1234 (x", "1234 (x) S 1 2", "1234 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 50 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) succeeded", bad)
		}
	}
	if self, err := cpuSeconds(os.Getpid()); err != nil && !errors.Is(err, ErrNoProc) {
		t.Errorf("own CPU time: %v", err)
	} else if err == nil && self < 0 {
		t.Errorf("own CPU time %v", self)
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 1 0 2 3 4"))
	f.Add([]byte("1 ()) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := parseStatCPU(b); err == nil && v < 0 {
			t.Fatalf("negative CPU time %v", v)
		}
	})
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tstepup\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30000 kB\n"
	got, err := parseVmHWM(strings.NewReader(status))
	if err != nil || got != 40960<<10 {
		t.Errorf("VmHWM = %d, %v; want %d", got, err, 40960<<10)
	}
	for _, bad := range []string{"Name:\tx\n", "VmHWM:\t12 MB\n", "VmHWM:\tabc kB\n"} {
		if _, err := parseVmHWM(strings.NewReader(bad)); err == nil {
			t.Errorf("parseVmHWM(%q) succeeded", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestExpectationCheck(t *testing.T) {
	meta := func(reason string) *structpb.Struct {
		return &structpb.Struct{Fields: map[string]*structpb.Value{"reason": structpb.NewStringValue(reason)}}
	}
	allow := func(reason string) *authv3.CheckResponse {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}, DynamicMetadata: meta(reason)}
	}
	denied := func(status int, reason, location string) *authv3.CheckResponse {
		dr := &authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)}}
		if location != "" {
			dr.Headers = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "location", Value: location}}}
		}
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.Unauthenticated)}, HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: dr}, DynamicMetadata: meta(reason)}
	}
	stepUp := Expectation{Status: 302, Reason: "mfa_required", LocationPrefix: "https://app/.stepup/mfa?state="}
	for _, tc := range []struct {
		name string
		e    Expectation
		resp *authv3.CheckResponse
		ok   bool
	}{
		{"allow as expected", Expectation{Allowed: true, Reason: "network"}, allow("network"), true},
		{"allow, other reason", Expectation{Allowed: true, Reason: "network"}, allow("mfa_session"), false},
		{"denied instead of allow", Expectation{Allowed: true, Reason: "network"}, denied(302, "mfa_required", ""), false},
		{"step-up as expected", stepUp, denied(302, "mfa_required", "https://app/.stepup/mfa?state=v1.x"), true},
		{"step-up without state", stepUp, denied(302, "mfa_required", "https://app/.stepup/mfa?state="), false},
		{"step-up elsewhere", stepUp, denied(302, "mfa_required", "https://evil/"), false},
		{"401 instead of 302", stepUp, denied(401, "mfa_required", "https://app/.stepup/mfa?state=v1.x"), false},
		{"allowed instead of step-up", stepUp, allow("network"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.check(tc.resp)
			if (err == nil) != tc.ok {
				t.Fatalf("check = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrWrongDecision) {
				t.Errorf("error %v is not ErrWrongDecision", err)
			}
		})
	}
	if err := allowsAll(allow("")); err != nil {
		t.Errorf("allowsAll(OK) = %v", err)
	}
	if err := allowsAll(denied(403, "", "")); !errors.Is(err, ErrWrongDecision) {
		t.Errorf("allowsAll(denied) = %v", err)
	}
}

func TestSummarizeAndReports(t *testing.T) {
	sc := Scenarios()[5] // 6: three kinds of targets
	res := ScenarioResult{Scenario: sc, StartupSeconds: []float64{1.5, 0.9, 1.1}}
	res.Baseline.PeakRSSMB, res.Stepup.PeakRSSMB = 20, 120
	for _, r := range []struct{ b, s float64 }{{10000, 8000}, {12000, 6000}, {9000, 8100}} {
		res.Rounds = append(res.Rounds, Round{
			Baseline: Measurement{RPS: r.b, CPUPerCheckUs: 50, Requests: 100},
			Stepup:   Measurement{RPS: r.s, CPUPerCheckUs: 60, Requests: 100, Errors: 1},
		})
	}
	summarize(&res, false)
	if diff := cmp.Diff(Ratios{Throughput: 0.8, CPUPerCheck: 1.2, PeakRSS: 6}, res.Ratio); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
	if res.Stepup.StartupSeconds != 1.1 || res.Baseline.RPS != 10000 || res.Stepup.ErrorRate != 1.0/101 {
		t.Errorf("summary: %+v / %+v", res.Baseline, res.Stepup)
	}
	var verdicts []bool
	for _, r := range res.Results {
		if r.Met == nil {
			t.Fatalf("target %s not judged", r.Target)
		}
		verdicts = append(verdicts, *r.Met)
	}
	// req/s ≥ 0.70× (0.8), startup < 2 s (1.1), RSS < 150 MB (120).
	if diff := cmp.Diff([]bool{true, true, true}, verdicts); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	summarize(&res, true)
	for _, r := range res.Results {
		if r.Met != nil {
			t.Errorf("smoke mode judged %s", r.Target)
		}
	}
	summarize(&res, false)

	rep := &Report{Rounds: 3, Duration: "5s", Scenarios: []ScenarioResult{res, {Scenario: Scenarios()[6], Skipped: "no redis"}}}
	var svg, md, table strings.Builder
	if err := rep.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(svg.String()))
	for {
		if _, err := dec.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			break
		}
	}
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{md.String(), table.String()} {
		for _, want := range []string{"100k-prefixes", "skipped: no redis", "✓ req/s ≥ 0.70× (0.80)"} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q:\n%s", want, out)
			}
		}
	}
}

// TestSummarizeAllFailedRound: a round in which no call was answered in
// time counts as zero throughput and 100% failed, and is left out of the
// latency and CPU figures (which it has none of).
func TestSummarizeAllFailedRound(t *testing.T) {
	res := ScenarioResult{Scenario: Scenarios()[3]}
	res.Rounds = []Round{
		{Baseline: Measurement{RPS: 1000, Requests: 5000, CPUPerCheckUs: 50}, Stepup: Measurement{RPS: 100, Requests: 500, CPUPerCheckUs: 500}},
		{Baseline: Measurement{RPS: 1000, Requests: 5000, CPUPerCheckUs: 50}, Stepup: Measurement{Errors: 200}},
		{Baseline: Measurement{RPS: 1000, Requests: 5000, CPUPerCheckUs: 50}, Stepup: Measurement{RPS: 200, Requests: 1000, CPUPerCheckUs: 700}},
	}
	summarize(&res, false)
	if res.Ratio.Throughput != 0.1 || res.Ratio.CPUPerCheck != 12 || res.Stepup.CPUPerCheckUs != 600 || res.Stepup.ErrorRate != 1 {
		t.Errorf("ratios %+v, stepup %+v", res.Ratio, res.Stepup)
	}
}

func TestKneeAndSaturationSummary(t *testing.T) {
	ramp := []RampStep{{Concurrency: 1, StepupRPS: 5000}, {Concurrency: 2, StepupRPS: 9000}, {Concurrency: 4, StepupRPS: 18500}, {Concurrency: 8, StepupRPS: 20000}, {Concurrency: 16, StepupRPS: 19000}}
	if got := knee(ramp, func(r RampStep) float64 { return r.StepupRPS }); got != 4 {
		t.Errorf("knee = %d, want 4 (first step at 90%% of 20000)", got)
	}
	if got := knee(nil, func(r RampStep) float64 { return r.StepupRPS }); got != 0 {
		t.Errorf("knee of an empty ramp = %d", got)
	}
	oc := func(decided, over, expired int64) *Outcomes {
		return &Outcomes{Calls: decided + over + expired, Decided: decided, Overloaded: over, DeadlineExpiries: expired, DecidedP99us: 1000, DecidedMaxUs: float64(decided)}
	}
	rounds := []Round{
		{Stepup: Measurement{Seconds: 1, Outcomes: oc(300, 700, 0)}},
		{Stepup: Measurement{Seconds: 1, Outcomes: oc(500, 500, 2)}},
		{Stepup: Measurement{Seconds: 2, Outcomes: oc(800, 200, 0)}},
	}
	s := summarizeSaturation(rounds, func(r Round) Measurement { return r.Stepup })
	if s.DeadlineExpiries != 2 || s.DecidedMaxUs != 800 || s.DecidedRPS != 400 || s.Calls != 3002 {
		t.Errorf("summary %+v", s)
	}
	if want := 500.0 / 1002; s.DecidedShare != want {
		t.Errorf("decided share %v, want the median %v", s.DecidedShare, want)
	}
	res := &SaturationResult{Loads: []SaturationLoad{{Name: "x", Stepup: s}}, Ramp: ramp, StepupKnee: 4, MaxInFlight: 128}
	var b strings.Builder
	res.writeTable(&b, true)
	for _, want := range []string{"✗ DEADLINE EXPIRIES: stepup 2", "| stepup req/s | 5000 | 9000 |", "n/a (no admission)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestSeedersMatchStores: what the bulk seeders write is what the stores
// read through the Store API, in bbolt and, when redis-server is
// installed, in Redis.
func TestSeedersMatchStores(t *testing.T) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	recs := []seedRecord{
		{user: "auth0|user00000001", kind: session.KindDevice, id: "abc", val: []byte(`{"v":1}`), exp: exp},
		{user: "odd:{user}%", kind: session.KindDevice, id: "def", val: []byte("x"), exp: exp},
		{key: "state-used:0123456789abcdef0123456789abcdef", val: []byte("1"), exp: exp},
	}
	seed := func(i int) seedRecord { return recs[i] }
	check := func(t *testing.T, st session.Store) {
		t.Helper()
		for _, r := range recs {
			var got []byte
			var err error
			if r.user == "" {
				got, err = st.Get(ctx, r.key)
			} else {
				got, err = st.GetUser(ctx, r.user, r.kind, r.id)
				if err == nil {
					if l, lerr := st.ListUser(ctx, r.user, r.kind); lerr != nil || len(l) != 1 || l[0].ID != r.id {
						t.Errorf("ListUser(%q) = %v, %v", r.user, l, lerr)
					}
				}
			}
			if err != nil || string(got) != string(r.val) {
				t.Errorf("read back %q/%q: %q, %v; want %q", r.user, r.key+r.id, got, err, r.val)
			}
		}
	}
	t.Run("bolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "s.db")
		if err := seedBolt(path, len(recs), seed); err != nil {
			t.Fatal(err)
		}
		st, err := boltstore.Open(path, boltstore.Options{SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		check(t, st)
	})
	t.Run("redis", func(t *testing.T) {
		rs, err := startRedis(ctx, t.TempDir())
		if errors.Is(err, ErrNoRedis) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer rs.stop()
		if err := seedRedis(ctx, rs.addr, len(recs), seed); err != nil {
			t.Fatal(err)
		}
		st, err := redisstore.New(redisstore.Options{Addrs: []string{rs.addr}})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		check(t, st)
	})
}
