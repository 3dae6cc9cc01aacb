package e2e

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/e2e/internal/idp"
)

// The HTTP modes carry no jwt_authn metadata: stepup verifies the id_token
// cookie or the bearer token itself against the IdP's JWKS.
const (
	testIssuer   = "https://idp.example.test/"
	testAudience = "payroll"
)

// httpCorporate is the corporate network of the HTTP-mode tests. It leaves
// out 127.0.0.0/8: the proxies run on loopback, and a request must never
// count as corporate just because it came through a local proxy.
var httpCorporate = []string{"10.0.0.0/8", "192.168.0.0/16"}

// tokens are id_tokens for the HTTP-mode tests.
type tokens struct {
	alice   string // sub auth0|alice, email alice@corp.example
	bob     string // sub auth0|bob, no email claim
	forged  string // alice, signed by another key under the same kid
	expired string // alice, expired an hour ago
}

// jwtServer starts stepup with identity.jwt on a freshly generated JWKS.
func jwtServer(t *testing.T, loginURL string) (*harness.Stepup, tokens) {
	t.Helper()
	provider, err := idp.New(testIssuer, testAudience, "e2e-key-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := idp.New(testIssuer, testAudience, "e2e-key-1")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := provider.WriteJWKS(jwks); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var tk tokens
	for _, x := range []struct {
		dst *string
		p   *idp.IdP
		sub string
		em  string
		at  time.Time
	}{
		{&tk.alice, provider, "auth0|alice", "alice@corp.example", now},
		{&tk.bob, provider, "auth0|bob", "", now},
		{&tk.forged, other, "auth0|alice", "alice@corp.example", now},
		{&tk.expired, provider, "auth0|alice", "alice@corp.example", now.Add(-2 * time.Hour)},
	} {
		if *x.dst, err = x.p.Token(x.sub, x.em, x.at); err != nil {
			t.Fatal(err)
		}
	}
	srv := startStepup(t, serverConfig{
		Corporate: httpCorporate,
		LoginURL:  loginURL,
		JWKSFile:  jwks,
		Issuer:    testIssuer,
		Audience:  testAudience,
		Extra:     "clients:\n  hosts:\n    app.corp.example: payroll\n",
	})
	return srv, tk
}

// noRedirects is an HTTP client that shows redirects instead of following
// them.
func noRedirects() *http.Client {
	return &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// httpResult is an HTTP response read in full.
type httpResult struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, c *http.Client, req *http.Request) httpResult {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// TestHTTPHealthAndMetrics checks /healthz, /readyz and /metrics.
func TestHTTPHealthAndMetrics(t *testing.T) {
	t.Parallel()
	srv, tk := jwtServer(t, "")
	c := noRedirects()
	for _, path := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL(path), nil)
		if res := do(t, c, req); res.status != http.StatusOK {
			t.Errorf("GET %s: %d %q, want 200", path, res.status, res.body)
		}
	}

	// Decisions of every mode, with users and IPs that must not become
	// metric labels.
	client := authv3.NewAuthorizationClient(srv.Dial(t))
	mustCheck(t, client, envoyreq.Browser(extranetIP).MustProto())
	req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL("/forward-auth"), nil)
	req.Header.Set("X-Forwarded-For", corpIP)
	req.Header.Set("X-Forwarded-Uri", "/payroll/report?month=11")
	req.Header.Set("X-Forwarded-Host", "app.corp.example")
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("Authorization", "Bearer "+tk.alice)
	if res := do(t, c, req); res.status != http.StatusOK {
		t.Fatalf("forward-auth for a corporate user: %d %q", res.status, res.body)
	}

	req, _ = http.NewRequest(http.MethodGet, srv.HTTPURL("/metrics"), nil)
	res := do(t, c, req)
	if res.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", res.status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(res.body))
	if err != nil {
		t.Fatalf("/metrics is not in the Prometheus text format: %v", err)
	}
	for _, name := range []string{"stepup_check_requests_total", "stepup_check_duration_seconds"} {
		if families[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	var total float64
	if f := families["stepup_check_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	if total < 2 {
		t.Errorf("stepup_check_requests_total sums to %v after two checks", total)
	}
	// Prometheus naming: no high-cardinality labels (user, IP, path).
	banned := map[string]bool{"user": true, "sub": true, "email": true, "ip": true, "client_ip": true, "peer": true, "path": true, "host": true, "url": true}
	secrets := []string{"alice", corpIP, extranetIP, "/payroll", "app.corp.example", tk.alice}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if banned[l.GetName()] {
					t.Errorf("metric %s has a %q label", name, l.GetName())
				}
				for _, s := range secrets {
					if strings.Contains(l.GetValue(), s) {
						t.Errorf("metric %s label %s=%q carries request data", name, l.GetName(), l.GetValue())
					}
				}
			}
		}
	}
}

// envoyHTTPCheck builds the request Envoy's http_service sends
// (docs/envoy.md#http-mode, envoy/envoy-http.yaml): the original method, path_prefix + the
// original path and query, Host = the original authority, only the allowed
// headers, and the client-address headers the connection manager wrote at
// the edge.
func envoyHTTPCheck(t *testing.T, srv *harness.Stepup, method, path, client string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, srv.HTTPURL("/authz"+path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app.corp.example"
	req.Header.Set("X-Envoy-External-Address", client)
	req.Header.Set("X-Forwarded-For", client)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Request-Id", "e2e-http-1")
	req.Header.Set("Content-Length", "0")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// TestEnvoyHTTPMode drives /authz/<path>, the endpoint for Envoy's
// http_service, where only a 200 allows and a 5xx would be an Error that
// failure_mode_allow can turn into an allow (docs/envoy.md#http-mode).
func TestEnvoyHTTPMode(t *testing.T) {
	t.Parallel()
	srv, tk := jwtServer(t, "")
	c := noRedirects()
	browser := func(tok string) map[string]string {
		h := map[string]string{"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate", "User-Agent": "Mozilla/5.0"}
		if tok != "" {
			h["Cookie"] = "theme=dark; id_token=" + tok
		}
		return h
	}
	api := func(tok string) map[string]string {
		h := map[string]string{"Accept": "application/json"}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		return h
	}

	tests := []struct {
		name    string
		req     *http.Request
		status  int
		headers map[string]string // x-stepup-* of a 200
		mfaStep bool
		wwwAuth string
	}{
		{"corporate browser with the id_token cookie", envoyHTTPCheck(t, srv, "GET", "/payroll/report?month=11", corpIP, browser(tk.alice)), 200, aliceHeaders, false, ""},
		{"corporate API POST with a bearer token keeps its method", envoyHTTPCheck(t, srv, "POST", "/payroll/api/report", corpIP, api(tk.alice)), 200, aliceHeaders, false, ""},
		{"extranet browser: 302 to the MFA step", envoyHTTPCheck(t, srv, "GET", "/payroll/report?month=11", extranetIP, browser(tk.alice)), 302, nil, true, ""},
		{"extranet API client: 401", envoyHTTPCheck(t, srv, "POST", "/payroll/api/report", extranetIP, api(tk.alice)), 401, nil, false, `error="insufficient_user_authentication"`},
		{"no token: 401", envoyHTTPCheck(t, srv, "GET", "/payroll/report", corpIP, browser("")), 401, nil, false, "Bearer"},
		{"token signed by another key: 401", envoyHTTPCheck(t, srv, "GET", "/payroll/report", corpIP, api(tk.forged)), 401, nil, false, "Bearer"},
		{"expired token: 401", envoyHTTPCheck(t, srv, "GET", "/payroll/report", corpIP, browser(tk.expired)), 401, nil, false, "Bearer"},
		{"client-spoofed x-forwarded-for from the extranet", func() *http.Request {
			r := envoyHTTPCheck(t, srv, "GET", "/payroll/report", extranetIP, browser(tk.alice))
			r.Header.Set("X-Forwarded-For", "10.1.2.3,"+extranetIP)
			return r
		}(), 302, nil, true, ""},
		{"a proxy that names no client is refused", func() *http.Request {
			r := envoyHTTPCheck(t, srv, "GET", "/payroll/report", corpIP, browser(tk.alice))
			r.Header.Del("X-Envoy-External-Address")
			r.Header.Del("X-Forwarded-For")
			return r
		}(), 400, nil, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, c, tc.req)
			if res.status != tc.status {
				t.Fatalf("status %d, want %d\n%v\n%s", res.status, tc.status, res.header, res.body)
			}
			if res.status != 200 && (res.status < 300 || res.status >= 500) {
				t.Errorf("a denial answered %d; it must be 3xx or 4xx: other 2xx look like success to proxies that allow on any 2xx, and a 5xx is an Error that failure_mode_allow turns into an allow", res.status)
			}
			if tc.headers != nil {
				got := map[string]string{}
				for k := range res.header {
					if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-stepup-") {
						got[lk] = res.header.Get(k)
					}
				}
				if diff := cmp.Diff(tc.headers, got); diff != "" {
					t.Errorf("identity headers (-want +got):\n%s", diff)
				}
			}
			if tc.mfaStep {
				u, err := url.Parse(res.header.Get("Location"))
				if err != nil || u.Scheme != "https" || u.Host != "app.corp.example" || u.Path != "/.stepup/mfa" {
					t.Errorf("Location %q, want https://app.corp.example/.stepup/mfa[?...]", res.header.Get("Location"))
				}
			}
			if tc.wwwAuth != "" && !strings.Contains(res.header.Get("WWW-Authenticate"), tc.wwwAuth) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", res.header.Get("WWW-Authenticate"), tc.wwwAuth)
			}
		})
	}
	srv.Stop(t)
	if strings.Contains(srv.Stderr(), tk.alice) || strings.Contains(srv.Stderr(), tk.forged) {
		t.Error("a token appears in the log")
	}
}

// TestNginxForwardAuth checks /forward-auth/nginx directly: nginx's
// auth_request turns every status but 2xx, 401 and 403 into 500, so the
// step-up redirect travels as 401 + X-Stepup-Redirect (docs/envoy.md#nginx).
func TestNginxForwardAuth(t *testing.T) {
	t.Parallel()
	srv, tk := jwtServer(t, "")
	c := noRedirects()
	mk := func(client string) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, srv.HTTPURL("/forward-auth/nginx"), nil)
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-Uri", "/payroll/report?month=11")
		req.Header.Set("X-Forwarded-Host", "app.corp.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", client)
		req.Header.Set("Accept", "text/html")
		req.Header.Set("Cookie", "id_token="+tk.alice)
		return req
	}
	if res := do(t, c, mk(corpIP)); res.status != 200 || res.header.Get("X-Stepup-User") != "auth0|alice" {
		t.Errorf("corporate: %d, X-Stepup-User %q; want 200 auth0|alice", res.status, res.header.Get("X-Stepup-User"))
	}
	res := do(t, c, mk(extranetIP))
	if res.status != http.StatusUnauthorized {
		t.Fatalf("extranet browser: %d, want 401 (nginx makes a 302 a 500)", res.status)
	}
	if u, err := url.Parse(res.header.Get("X-Stepup-Redirect")); err != nil || u.Host != "app.corp.example" || u.Path != "/.stepup/mfa" {
		t.Errorf("X-Stepup-Redirect %q, want https://app.corp.example/.stepup/mfa[?...]", res.header.Get("X-Stepup-Redirect"))
	}
}
