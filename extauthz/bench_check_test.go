package extauthz

import (
	"context"
	"github.com/stepup-dev/stepup/cidr/cidrtest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/stepup-dev/stepup/cidr"
	"github.com/stepup-dev/stepup/rules"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/memstore"
)

// The benchmarks of this file are the in-process halves of the side-by-side
// harness's scenarios 1–4 (e2e/bench, docs/performance.md): the whole
// Check handler on a CheckRequest shaped like docs/envoy.md#example-checkrequest, with the
// Auth0's "Access from an extranet" rule and an in-memory session store, plus its parts
// (normalization and response building) on their own.

// benchAppCookies are the application's own cookies, as the harness sends.
const benchAppCookies = "_ga=GA1.1.1473981263.1763916704; app_session=Fe26.2**8c0a0e3b1f7d4c2a9e6b5d4c3b2a1908f7e6d5c4; lang=en"

// extranetRemember is the built-in extranet-mfa rule with
// allowRememberBrowser: true (scenario 3).
const extranetRemember = `function (user, context, callback) {
  var networks = context.request.networks || [];
  if (networks.indexOf('corporate') === -1) {
    context.multifactor = { provider: 'any', allowRememberBrowser: true };
  }
  callback(null, user, context);
}`

// benchFixture is a Server as stepup serve builds it (rules, metrics,
// decision log off as in the harness's configuration) with an in-memory
// store and a fixed clock, and the cookies minted for it.
type benchFixture struct {
	srv           *Server
	mfa, remember string
	now           time.Time
	m             *session.Manager
}

func newBenchFixture(b *testing.B, rule rules.Source, nets *cidr.Matcher) *benchFixture {
	b.Helper()
	f := &benchFixture{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	now := func() time.Time { return f.now }
	key, err := session.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	f.m, err = session.NewManager(session.Config{Keys: []session.Key{key}, Store: memstore.New(memstore.Options{Now: now}), Now: now})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	mc, _, err := f.m.IssueMFASession(ctx, session.Grant{User: "auth0|alice", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: "Mozilla/5.0"})
	if err != nil {
		b.Fatal(err)
	}
	rc, _, err := f.m.IssueRemember(ctx, session.Grant{User: "auth0|alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: "Mozilla/5.0"})
	if err != nil {
		b.Fatal(err)
	}
	f.mfa, f.remember = mc.Name+"="+mc.Value, rc.Name+"="+rc.Value
	// Generous budgets: a descheduled run on a busy machine must not turn
	// into a timeout.
	e, err := rules.New(rules.Options{Rules: []rules.Source{rule}, RuleTimeout: 10 * time.Second, PipelineTimeout: 20 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	if err := e.Warm(2); err != nil {
		b.Fatal(err)
	}
	f.srv = newTestServer(b, func(o *Options) {
		o.Policy = NewRulesPolicy(e, map[string]string{"payroll": "Payroll"})
		o.Sessions = NewSessions(f.m)
		o.Now = now
		o.LogDecisions = "none"
		o.Metrics = NewMetrics(prometheus.NewRegistry())
		if nets != nil {
			o.Networks = nets
		}
	})
	return f
}

func benchSeedExtranet(b *testing.B) rules.Source {
	b.Helper()
	src, err := rules.LoadFile("../rules/testdata/auth0-examples/003_extranet.js")
	if err != nil {
		b.Fatal(err)
	}
	return src
}

// benchScenario is one of the harness's scenarios in process.
type benchScenario struct {
	name string
	rule func(*testing.B) rules.Source
	// nets, when set, replaces the corporate network of newTestServer.
	nets   func(*testing.B) *cidr.Matcher
	req    func(f *benchFixture) *authv3.CheckRequest
	reason string
	code   codes.Code
}

func benchScenarios() []benchScenario {
	remember := func(*testing.B) rules.Source { return inline("extranet-remember", extranetRemember) }
	return []benchScenario{
		{"1-corporate", benchSeedExtranet, nil, func(*benchFixture) *authv3.CheckRequest {
			return checkReq("192.168.1.140", withHeader("cookie", benchAppCookies))
		}, "network", codes.OK},
		{"2-mfa-session", benchSeedExtranet, nil, func(f *benchFixture) *authv3.CheckRequest {
			return checkReq("203.0.113.7", withHeader("cookie", benchAppCookies+"; "+f.mfa))
		}, "mfa_session", codes.OK},
		{"3-remembered", remember, nil, func(f *benchFixture) *authv3.CheckRequest {
			return checkReq("203.0.113.7", withHeader("cookie", benchAppCookies+"; "+f.remember))
		}, "remembered", codes.OK},
		{"4-step-up", benchSeedExtranet, nil, func(*benchFixture) *authv3.CheckRequest {
			return checkReq("203.0.113.7", withHeader("cookie", benchAppCookies))
		}, "mfa_required", codes.Unauthenticated},
		{"6-100k-prefixes", benchSeedExtranet, bench100kNetworks, func(*benchFixture) *authv3.CheckRequest {
			return checkReq("192.168.1.140", withHeader("cookie", benchAppCookies))
		}, "network", codes.OK},
	}
}

// BenchmarkCheck runs the whole Check handler in process (no gRPC
// transport, no protobuf encoding) for the harness's scenarios 1–4 and 6.
func BenchmarkCheck(b *testing.B) {
	for _, sc := range benchScenarios() {
		b.Run(sc.name, func(b *testing.B) {
			var nets *cidr.Matcher
			if sc.nets != nil {
				nets = sc.nets(b)
			}
			f := newBenchFixture(b, sc.rule(b), nets)
			req := sc.req(f)
			ctx := context.Background()
			resp, err := f.srv.Check(ctx, req)
			if err != nil || reason(resp) != sc.reason || codes.Code(resp.GetStatus().GetCode()) != sc.code {
				b.Fatalf("decision %v %q (err %v), want %v %q", resp.GetStatus(), reason(resp), err, sc.code, sc.reason)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.srv.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckParallel is scenario 1 from GOMAXPROCS goroutines: the
// shared parts (rule runtime pool, metrics, network snapshot) under
// contention.
func BenchmarkCheckParallel(b *testing.B) {
	sc := benchScenarios()[0]
	f := newBenchFixture(b, sc.rule(b), nil)
	req := sc.req(f)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := f.srv.Check(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFromCheckRequest is request normalization alone: headers,
// target, client IP, identity metadata.
func BenchmarkFromCheckRequest(b *testing.B) {
	s := newTestServer(b, nil)
	req := checkReq("203.0.113.7", withHeader("cookie", benchAppCookies))
	b.ReportAllocs()
	for b.Loop() {
		var r Request
		if err := s.fromCheckRequest(req, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMetricsObserve is the per-Check metrics update.
func BenchmarkMetricsObserve(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	d := &Decision{Kind: Allow, Reason: "network"}
	b.ReportAllocs()
	for b.Loop() {
		m.observe(ModeGRPC, d, 30*time.Microsecond)
	}
}

// bench100kNetworks is the default corporate network plus 100,000 random
// IPv4/IPv6 prefixes (scenario 6), from a fixed seed.
func bench100kNetworks(b *testing.B) *cidr.Matcher {
	b.Helper()
	list := append([]string(nil), corporate...)
	for _, p := range cidrtest.RandomPrefixes(100_000) {
		list = append(list, p.String())
	}
	set, err := cidr.New(map[string][]string{"corporate": list})
	if err != nil {
		b.Fatal(err)
	}
	return cidr.NewMatcher(set)
}
