package runner

import (
	"context"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/stepup-dev/stepup/cidr/cidrtest"
	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/redisstore"
)

//go:embed rules/*.js
var harnessRules embed.FS

// Addresses of the scenarios. corporateIP is inside both stepup's default
// corporate network (192.168.0.0/16) and the seed rule's hard-coded
// 192.168.1.134/26; extranetIP is a documentation address outside both.
const (
	corporateIP = "192.168.1.140"
	extranetIP  = "203.0.113.7"
	// appCookies are the application's own cookies a browser sends along
	// (docs/envoy.md#example-checkrequest shows an id_token cookie next to stepup's).
	appCookies = "_ga=GA1.1.1473981263.1763916704; app_session=Fe26.2**8c0a0e3b1f7d4c2a9e6b5d4c3b2a1908f7e6d5c4; lang=en"
	// user is the identity of envoyreq.Alice.
	user      = "auth0|alice"
	userAgent = "Mozilla/5.0"
	// scenario6Prefixes is how many random prefixes scenario 6 adds.
	scenario6Prefixes = 100_000
)

// corporateCIDRs is stepup's embedded default corporate network.
var corporateCIDRs = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128", "fc00::/7"}

// Expectation is the decision a scenario's request must get from stepup.
type Expectation struct {
	// Allowed: an OK CheckResponse; otherwise a denied one with Status.
	Allowed bool `json:"allowed"`
	// Reason is the decision's reason in the dynamic metadata.
	Reason string `json:"reason"`
	// Status is the denied response's HTTP status.
	Status int `json:"status,omitempty"`
	// LocationPrefix starts the denied response's Location header.
	LocationPrefix string `json:"location_prefix,omitempty"`
}

// String is a short human form ("allow (network)", "302 mfa_required").

// benchRealm is the realm of the harness's requests: their host
// (envoyreq's authority).
const benchRealm = "app.corp.example"

func (e Expectation) String() string {
	if e.Allowed {
		return "allow (" + e.Reason + ")"
	}
	return fmt.Sprintf("%d %s", e.Status, e.Reason)
}

// check reports how resp differs from the expectation.
func (e Expectation) check(resp *authv3.CheckResponse) error {
	reason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
	code := codes.Code(resp.GetStatus().GetCode())
	if e.Allowed {
		if code != codes.OK || resp.GetOkResponse() == nil {
			return fmt.Errorf("%w: got status %v (%s, HTTP %d), want allow (%s)", ErrWrongDecision, code, reason, resp.GetDeniedResponse().GetStatus().GetCode(), e.Reason)
		}
		if reason != e.Reason {
			return fmt.Errorf("%w: allowed with reason %q, want %q", ErrWrongDecision, reason, e.Reason)
		}
		return nil
	}
	dr := resp.GetDeniedResponse()
	if code == codes.OK || dr == nil {
		return fmt.Errorf("%w: allowed (%s), want %s", ErrWrongDecision, reason, e)
	}
	if got := int(dr.GetStatus().GetCode()); got != e.Status || reason != e.Reason {
		return fmt.Errorf("%w: got %d %s, want %s", ErrWrongDecision, got, reason, e)
	}
	if e.LocationPrefix != "" {
		loc := ""
		for _, h := range dr.GetHeaders() {
			if strings.EqualFold(h.GetHeader().GetKey(), "location") {
				loc = h.GetHeader().GetValue()
			}
		}
		if !strings.HasPrefix(loc, e.LocationPrefix) || len(loc) == len(e.LocationPrefix) {
			return fmt.Errorf("%w: location %q, want %q followed by a state token", ErrWrongDecision, loc, e.LocationPrefix)
		}
	}
	return nil
}

// allowsAll is what the baseline answers.
func allowsAll(resp *authv3.CheckResponse) error {
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || resp.GetOkResponse() == nil {
		return fmt.Errorf("%w: the baseline did not allow (status %v)", ErrWrongDecision, resp.GetStatus())
	}
	return nil
}

// Target is one of a scenario's goals (docs/performance.md#targets).
type Target struct {
	// Metric is throughput_ratio, cpu_ratio, startup_seconds or rss_mb.
	Metric string  `json:"metric"`
	Op     string  `json:"op"` // ">=", "<=" or "<"
	Limit  float64 `json:"limit"`
}

func (t Target) String() string {
	switch t.Metric {
	case "throughput_ratio":
		return fmt.Sprintf("req/s ≥ %.2f×", t.Limit)
	case "cpu_ratio":
		return fmt.Sprintf("CPU/check ≤ %.2f×", t.Limit)
	case "startup_seconds":
		return fmt.Sprintf("startup < %gs", t.Limit)
	case "rss_mb":
		return fmt.Sprintf("RSS < %g MB", t.Limit)
	}
	return t.Metric + " " + t.Op + " " + fmt.Sprint(t.Limit)
}

func (t Target) met(v float64) bool {
	switch t.Op {
	case ">=":
		return v >= t.Limit
	case "<=":
		return v <= t.Limit
	default:
		return v < t.Limit
	}
}

var (
	throughput = func(min float64) Target { return Target{"throughput_ratio", ">=", min} }
	cpuRatio   = Target{"cpu_ratio", "<=", 1.35}
)

// Scenario is one workload of the benchmark (docs/performance.md#scenarios).
type Scenario struct {
	ID          int         `json:"id"`
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Expect      Expectation `json:"expect"`
	Targets     []Target    `json:"targets"`
	// needsRedis: the scenario runs a redis-server.
	needsRedis bool
	// prepare writes the scenario's configuration into env.dir and mints
	// its cookies.
	prepare func(ctx context.Context, env *scenarioEnv) error
}

// scenarioEnv is what a scenario's preparation works with and produces.
type scenarioEnv struct {
	dir       string // the scenario's own temporary directory
	root      string // the module root (for the seed files)
	key       session.Key
	redisAddr string // scenario 7

	// Produced:
	config  string // stepup configuration file
	request *authv3.CheckRequest
	// pool, when set, are further requests the workers rotate through
	// after request (the curves of many users).
	pool []*authv3.CheckRequest
}

// Scenarios returns the benchmark's scenarios, in order.
func Scenarios() []Scenario {
	stepUp := Expectation{Status: 302, Reason: "mfa_required", LocationPrefix: "https://app.corp.example/.stepup/mfa?state="}
	return []Scenario{
		{
			ID: 1, Name: "corporate",
			Description: "corporate IP, identity present, the seed's extranet rule (003_extranet.js, verbatim) loaded",
			Expect:      Expectation{Allowed: true, Reason: "network"},
			Targets:     []Target{throughput(0.75), cpuRatio},
			prepare: func(ctx context.Context, env *scenarioEnv) error {
				return env.write(benchConfig{rules: []ruleRef{env.seed("003_extranet.js")}}, browser(corporateIP, ""))
			},
		},
		{
			ID: 2, Name: "mfa-session",
			Description: "extranet IP with a valid MFA session cookie (extranet rule, bolt store)",
			Expect:      Expectation{Allowed: true, Reason: "mfa_session"},
			Targets:     []Target{throughput(0.75), cpuRatio},
			prepare:     prepareMFASession,
		},
		{
			ID: 3, Name: "remembered",
			Description: "extranet IP with a valid remember-browser cookie, remember allowed (extranet rule with allowRememberBrowser: true, bolt store)",
			Expect:      Expectation{Allowed: true, Reason: "remembered"},
			Targets:     []Target{throughput(0.75), cpuRatio},
			prepare: func(ctx context.Context, env *scenarioEnv) error {
				rule, err := env.harnessRule("extranet-remember.js")
				if err != nil {
					return err
				}
				c := benchConfig{rules: []ruleRef{rule}}
				cookie, err := env.mintBolt(ctx, c, rememberCookie(ctx))
				if err != nil {
					return err
				}
				return env.write(c, browser(extranetIP, cookie))
			},
		},
		{
			ID: 4, Name: "step-up",
			Description: "extranet IP, unverified: 302 to the MFA step with a new state (extranet rule, bolt store)",
			Expect:      stepUp,
			Targets:     []Target{throughput(0.75), cpuRatio},
			prepare: func(ctx context.Context, env *scenarioEnv) error {
				return env.write(benchConfig{rules: []ruleRef{env.seed("003_extranet.js")}}, browser(extranetIP, ""))
			},
		},
		{
			ID: 5, Name: "all-seeds",
			Description: "all five code snippets of both seed documents in one pipeline (after a harness rule defining conditionIsMet/condition), corporate IP: Duo for the payroll client",
			Expect:      stepUp,
			Targets:     []Target{throughput(0.70)},
			prepare:     prepareAllSeeds,
		},
		{
			ID: 6, Name: "100k-prefixes",
			Description: "scenario 1 with 100,000 random IPv4/IPv6 prefixes added to the corporate network (networks.corporate.files)",
			Expect:      Expectation{Allowed: true, Reason: "network"},
			Targets:     []Target{throughput(0.70), {"startup_seconds", "<", 2}, {"rss_mb", "<", 150}},
			prepare: func(ctx context.Context, env *scenarioEnv) error {
				file := filepath.Join(env.dir, "prefixes.txt")
				if err := writePrefixes(file, scenario6Prefixes); err != nil {
					return err
				}
				return env.write(benchConfig{rules: []ruleRef{env.seed("003_extranet.js")}, corporateFiles: []string{file}}, browser(corporateIP, ""))
			},
		},
		{
			ID: 7, Name: "redis",
			Description: "scenario 3 with the Redis session store (a real redis-server on loopback)",
			Expect:      Expectation{Allowed: true, Reason: "remembered"},
			Targets:     []Target{throughput(0.60)},
			needsRedis:  true,
			prepare:     prepareRedis,
		},
		{
			ID: 8, Name: "seeds-action",
			Description: "scenario 5 as one post-login Action: the five seed snippets rewritten (rules/testdata/actions/seeds.js), corporate IP: Duo for the payroll client",
			Expect:      stepUp,
			Targets:     []Target{throughput(0.70)},
			prepare: func(ctx context.Context, env *scenarioEnv) error {
				c := benchConfig{
					rules: []ruleRef{{name: "seeds-action", file: filepath.Join(env.root, "rules", "testdata", "actions", "seeds.js")}},
					ruleConfig: map[string]string{
						"DUO_MFA:CLIENT_ID":    "payroll",
						"DUO_MFA:IKEY":         "DIXXXXXXXXXXXXXXXXXX",
						"DUO_MFA:SKEY":         "skey-read-by-code",
						"DUO_MFA:API_HOSTNAME": "api-1234.duosecurity.com",
					},
				}
				return env.write(c, browser(corporateIP, ""))
			},
		},
	}
}

// prepareMFASession sets up scenario 2: a valid MFA session cookie minted in the bolt store.
func prepareMFASession(ctx context.Context, env *scenarioEnv) error {
	c := benchConfig{rules: []ruleRef{env.seed("003_extranet.js")}}
	cookie, err := env.mintBolt(ctx, c, func(m *session.Manager) (string, error) {
		ck, _, err := m.IssueMFASession(ctx, session.Grant{User: user, SID: "", Realm: benchRealm, Factors: []string{"otp"}, UserAgent: userAgent})
		if err != nil {
			return "", err
		}
		return ck.Name + "=" + ck.Value, nil
	})
	if err != nil {
		return err
	}
	return env.write(c, browser(extranetIP, cookie))
}

// prepareAllSeeds sets up scenario 5: every seed snippet in one pipeline, with the Duo seed's keys.
func prepareAllSeeds(ctx context.Context, env *scenarioEnv) error {
	h, err := env.harnessRule("seed-harness.js")
	if err != nil {
		return err
	}
	c := benchConfig{
		rules: []ruleRef{
			h,
			env.seed("003_select_users.js"),
			env.seed("003_frequency.js"),
			env.seed("003_extranet.js"),
			env.seed("003_redirect.js"),
			env.seed("000_duo.md"),
		},
		// The keys the Duo seed's front matter declares and the
		// keys its code reads (they differ in the seed).
		ruleConfig: map[string]string{
			"DUO_MFA:CLIENT_ID":        "payroll",
			"DUO_MFA:DUO_IKEY":         "DIXXXXXXXXXXXXXXXXXX",
			"DUO_MFA:DUO_SKEY":         "declared-skey",
			"DUO_MFA:DUO_API_HOSTNAME": "api-declared.duosecurity.com",
			"DUO_MFA:IKEY":             "DIXXXXXXXXXXXXXXXXXX",
			"DUO_MFA:SKEY":             "skey-read-by-code",
			"DUO_MFA:API_HOSTNAME":     "api-1234.duosecurity.com",
		},
	}
	return env.write(c, browser(corporateIP, ""))
}

// prepareRedis sets up scenario 7: a remember-browser cookie minted in the Redis store.
func prepareRedis(ctx context.Context, env *scenarioEnv) error {
	rule, err := env.harnessRule("extranet-remember.js")
	if err != nil {
		return err
	}
	c := benchConfig{rules: []ruleRef{rule}, redisAddr: env.redisAddr}
	store, err := redisstore.New(redisstore.Options{Addrs: []string{env.redisAddr}})
	if err != nil {
		return fmt.Errorf("redis store: %w", err)
	}
	defer store.Close()
	cookie, err := mint(env.key, store, rememberCookie(ctx))
	if err != nil {
		return err
	}
	return env.write(c, browser(extranetIP, cookie))
}

// browser is the browser GET of e2e/testdata/envoy-example.json from ip, with the application's cookies
// and, when set, one of stepup's.
func browser(ip, stepupCookie string) *authv3.CheckRequest {
	cookie := appCookies
	if stepupCookie != "" {
		cookie += "; " + stepupCookie
	}
	return envoyreq.Browser(ip).With("cookie", cookie).MustProto()
}

func rememberCookie(ctx context.Context) func(*session.Manager) (string, error) {
	return func(m *session.Manager) (string, error) {
		ck, _, err := m.IssueRemember(ctx, session.Grant{User: user, Realm: benchRealm, Factors: []string{"otp"}, UserAgent: userAgent})
		if err != nil {
			return "", err
		}
		return ck.Name + "=" + ck.Value, nil
	}
}

// ruleRef is one entry of rules.list.
type ruleRef struct{ name, file string }

func (env *scenarioEnv) seed(file string) ruleRef {
	return ruleRef{
		name: strings.TrimSuffix(strings.TrimSuffix(file, ".js"), ".md"),
		file: filepath.Join(env.root, "rules", "testdata", "auth0-examples", file),
	}
}

// harnessRule writes one of the harness's own rules into the scenario's
// directory.
func (env *scenarioEnv) harnessRule(file string) (ruleRef, error) {
	b, err := harnessRules.ReadFile("rules/" + file)
	if err != nil {
		return ruleRef{}, err
	}
	path := filepath.Join(env.dir, file)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return ruleRef{}, err
	}
	return ruleRef{name: strings.TrimSuffix(file, ".js"), file: path}, nil
}

// benchConfig is what scenarios vary in stepup's configuration.
type benchConfig struct {
	rules          []ruleRef
	ruleConfig     map[string]string
	corporateFiles []string
	// redisAddr selects the Redis store; otherwise bolt (the default).
	redisAddr string
	// maxInFlight sets server.max_in_flight (0: stepup's default).
	maxInFlight int
}

func (env *scenarioEnv) boltPath() string { return filepath.Join(env.dir, "data", "sessions.db") }

// yaml renders the benchmark configuration: stepup's defaults except that
// both listeners take a free loopback port, nothing but warnings is
// logged (log.decisions: none), the data directory is the scenario's, the
// session key is fixed (so the harness can mint cookies) and the rules
// and networks are the scenario's.
func (env *scenarioEnv) yaml(c benchConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(env.dir, "data"))
	b.WriteString("log:\n  level: warn\n  decisions: none\n")
	b.WriteString("server:\n  grpc:\n    listen: 127.0.0.1:0\n  http:\n    listen: 127.0.0.1:0\n")
	if c.maxInFlight > 0 {
		fmt.Fprintf(&b, "  max_in_flight: %d\n", c.maxInFlight)
	}
	b.WriteString("networks:\n  corporate:\n    cidrs:\n")
	for _, p := range corporateCIDRs {
		fmt.Fprintf(&b, "      - %q\n", p)
	}
	if len(c.corporateFiles) > 0 {
		b.WriteString("    files:\n")
		for _, f := range c.corporateFiles {
			fmt.Fprintf(&b, "      - %q\n", f)
		}
	}
	b.WriteString("identity:\n  jwt_authn:\n    namespace: envoy.filters.http.jwt_authn\n    key: jwt_payload\n")
	b.WriteString("rules:\n  list:\n")
	for _, r := range c.rules {
		fmt.Fprintf(&b, "    - name: %q\n      file: %q\n", r.name, r.file)
	}
	if len(c.ruleConfig) > 0 {
		b.WriteString("  configuration:\n")
		keys := make([]string, 0, len(c.ruleConfig))
		for k := range c.ruleConfig {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "    %q: %q\n", k, c.ruleConfig[k])
		}
	}
	secret := strings.SplitN(session.FormatKeys([]session.Key{env.key}), ":", 2)[1]
	fmt.Fprintf(&b, "sessions:\n  keys:\n    - id: %q\n      secret: %q\n  store:\n", env.key.ID, strings.TrimSpace(secret))
	if c.redisAddr != "" {
		fmt.Fprintf(&b, "    type: redis\n    redis:\n      addrs: [%q]\n", c.redisAddr)
	} else {
		fmt.Fprintf(&b, "    type: bolt\n    bolt:\n      path: %q\n", env.boltPath())
	}
	return b.String()
}

// write writes the configuration file and sets the request.
func (env *scenarioEnv) write(c benchConfig, req *authv3.CheckRequest) error {
	env.config = filepath.Join(env.dir, "stepup.yaml")
	env.request = req
	return os.WriteFile(env.config, []byte(env.yaml(c)), 0o600)
}

// mintBolt issues a cookie into the bolt file stepup will open, before
// stepup starts (a running stepup holds the file's lock).
func (env *scenarioEnv) mintBolt(ctx context.Context, c benchConfig, issue func(*session.Manager) (string, error)) (string, error) {
	if err := os.MkdirAll(filepath.Dir(env.boltPath()), 0o700); err != nil {
		return "", err
	}
	store, err := boltstore.Open(env.boltPath(), boltstore.Options{})
	if err != nil {
		return "", fmt.Errorf("bolt store: %w", err)
	}
	defer store.Close()
	return mint(env.key, store, issue)
}

// mint issues a cookie with the server's key into store, with the
// server's cookie settings (production names, the default prefix).
func mint(key session.Key, store session.Store, issue func(*session.Manager) (string, error)) (string, error) {
	m, err := session.NewManager(session.Config{Keys: []session.Key{key}, Store: store})
	if err != nil {
		return "", err
	}
	cookie, err := issue(m)
	if err != nil {
		return "", fmt.Errorf("mint cookie: %w", err)
	}
	return cookie, nil
}

// writePrefixes writes n distinct random prefixes, one per line: 85%
// IPv4 (/16 to /28 in 11.0.0.0–223.255.255.255) and 15% IPv6 (/32 to /64
// in 2000::/4), from a fixed seed so every run loads the same file. At
// these lengths few prefixes overlap, as in a real list of sites and
// partners.
func writePrefixes(path string, n int) error {
	var b strings.Builder
	b.Grow(n * 20)
	b.WriteString("# scenario 6: random prefixes generated by the benchmark harness\n")
	for _, p := range cidrtest.RandomPrefixes(n) {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
