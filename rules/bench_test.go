package rules

import (
	"context"
	"testing"
	"time"
)

// duoConfig configures the Duo seed with both the keys its front matter
// declares and the keys its code reads.
var duoConfig = map[string]string{
	"DUO_MFA:CLIENT_ID":        "duo-client-id",
	"DUO_MFA:DUO_IKEY":         "DIXXXXXXXXXXXXXXXXXX",
	"DUO_MFA:DUO_SKEY":         "declared-skey",
	"DUO_MFA:DUO_API_HOSTNAME": "api-declared.duosecurity.com",
	"DUO_MFA:IKEY":             "DIREADBYCODE",
	"DUO_MFA:SKEY":             "skey-read-by-code",
	"DUO_MFA:API_HOSTNAME":     "api-1234.duosecurity.com",
}

// allSeedRules is every seed snippet in one pipeline, preceded by a
// harness rule defining the functions the 003 snippets leave undefined.
func allSeedRules(t testing.TB) []Source {
	return []Source{
		jsSource("harness", `function (user, context, callback) {
  if (!global.conditionIsMet) {
    global.conditionIsMet = function () { return false; };
    global.condition = function () { return false; };
  }
  callback(null, user, context);
}`),
		seedSource(t, "003_select_users.js"),
		seedSource(t, "003_frequency.js"),
		seedSource(t, "003_extranet.js"),
		seedSource(t, "003_redirect.js"),
		seedSource(t, "000_duo.md"),
	}
}

func seedInput(ip string) Input {
	return Input{
		User: map[string]any{
			"user_id":        "auth0|5f7c8ec7c33c6c004bbafe82",
			"email":          "jo@example.com",
			"email_verified": true,
			"name":           "Jo Example",
			"nickname":       "jo",
		},
		Context: Context{
			ClientID:              "app-client-id",
			Request:               Request{IP: ip, Hostname: "app.example.com", UserAgent: "Mozilla/5.0", Networks: []string{"corporate"}},
			AuthenticationMethods: []Method{{Name: "pwd", Timestamp: 1700000000000}},
		},
	}
}

// benchSlice replaces the 100 ms bound on one stretch of synchronous
// JavaScript in the benchmarks: on a busy machine a descheduled run must
// not fail the benchmark.
const benchSlice = 10 * time.Second

func benchPipeline(b *testing.B, rules []Source) {
	// Generous budgets: the benchmark measures throughput; a busy machine
	// must not turn a descheduled run into a timeout.
	e, err := New(Options{Rules: rules, Configuration: duoConfig, RuleTimeout: 10 * time.Second, PipelineTimeout: 20 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	e.maxSlice = benchSlice
	if err := e.Warm(1); err != nil {
		b.Fatal(err)
	}
	inputs := []Input{seedInput("203.0.113.7"), seedInput("192.168.1.140")}
	ctx := context.Background()
	before := e.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := e.Run(ctx, inputs[i&1]); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	b.StopTimer()
	after := e.Stats()
	if after.Compiles != before.Compiles || after.RuntimesCreated != before.RuntimesCreated {
		b.Fatalf("compiled or built runtimes in the loop: before %+v after %+v", before, after)
	}
}

// BenchmarkPipelineSeeds runs the seed's "Access from an extranet" rule
// (the default configuration's rule), alternating an outside and an inside
// address.
func BenchmarkPipelineSeeds(b *testing.B) {
	b.Run("extranet", func(b *testing.B) {
		benchPipeline(b, []Source{seedSource(b, "003_extranet.js")})
	})
	b.Run("all-seeds", func(b *testing.B) {
		benchPipeline(b, allSeedRules(b))
	})
	// The same five snippets as one post-login Action
	// (testdata/actions/seeds.js).
	b.Run("seeds-action", func(b *testing.B) {
		src, err := LoadFile("testdata/actions/seeds.js")
		if err != nil {
			b.Fatal(err)
		}
		benchPipeline(b, []Source{src})
	})
}

func BenchmarkParallelExtranet(b *testing.B) {
	e, err := New(Options{Rules: []Source{seedSource(b, "003_extranet.js")}, RuleTimeout: 10 * time.Second, PipelineTimeout: 20 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	e.maxSlice = benchSlice
	in := seedInput("203.0.113.7")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := e.Run(context.Background(), in); res.Err != nil {
				b.Error(res.Err)
				return
			}
		}
	})
}

// BenchmarkRuntimeCreation builds a runtime with every seed rule: the
// cost of a cold start, of replacing a discarded runtime, and of a reload.
func BenchmarkRuntimeCreation(b *testing.B) {
	e, err := New(Options{Rules: allSeedRules(b), Configuration: duoConfig})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.ReportAllocs()
	for b.Loop() {
		rt, err := e.newRuntime()
		if err != nil {
			b.Fatal(err)
		}
		rt.close()
	}
}
