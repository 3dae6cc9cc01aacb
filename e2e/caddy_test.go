package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// echoApp is the application behind the proxy: it answers every request
// with the headers it received, as JSON, and remembers which test cases
// reached it.
type echoApp struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]http.Header // X-Test-Case -> headers received
	uris map[string]string      // X-Test-Case -> request URI received
}

func newEchoApp(t *testing.T) *echoApp {
	t.Helper()
	a := &echoApp{seen: map[string]http.Header{}, uris: map[string]string{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen[r.Header.Get("X-Test-Case")] = r.Header.Clone()
		a.uris[r.Header.Get("X-Test-Case")] = r.RequestURI
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"uri": r.RequestURI, "headers": r.Header})
	}))
	t.Cleanup(a.Close)
	return a
}

// reached returns the headers and URI a test case arrived with, if it
// reached the application at all.
func (a *echoApp) reached(testCase string) (http.Header, string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.seen[testCase]
	return h, a.uris[testCase], ok
}

// caddyfile puts forward_auth to stepup in front of the app. trustClient
// makes Caddy believe the test client's X-Forwarded-For, as if the client
// were a load balancer in front of Caddy.
func caddyfile(stepupHTTP, app string, trustClient bool) func(port int) string {
	trust := ""
	if trustClient {
		trust = "\n\t\ttrusted_proxies 127.0.0.1/32"
	}
	return func(port int) string {
		return fmt.Sprintf(`{
	admin off
	auto_https off
}
http://:%d {
	bind 127.0.0.1
	forward_auth %s {
		uri /forward-auth
		copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network%s
	}
	reverse_proxy %s
}
`, port, stepupHTTP, trust, app)
	}
}

// TestCaddyForwardAuth runs the real Caddy (Debian package) with
// forward_auth to stepup in front of a small application (docs/envoy.md#caddy).
func TestCaddyForwardAuth(t *testing.T) {
	t.Parallel()
	harness.RequireProgram(t, "caddy", "Debian package caddy: apt-get install -y caddy")
	srv, tk := jwtServer(t, loginURL)
	app := newEchoApp(t)
	appAddr := strings.TrimPrefix(app.URL, "http://")

	behindLB := harness.StartCaddy(t, caddyfile(srv.HTTPAddr, appAddr, true))
	edge := harness.StartCaddy(t, caddyfile(srv.HTTPAddr, appAddr, false))

	browser := map[string]string{"Accept": "text/html,application/xhtml+xml", "Sec-Fetch-Mode": "navigate", "User-Agent": "Mozilla/5.0"}
	api := map[string]string{"Accept": "application/json"}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	cookie := func(tok string) map[string]string { return map[string]string{"Cookie": "theme=dark; id_token=" + tok} }
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	spoofIdentity := map[string]string{
		"X-Stepup-User":    "mallory",
		"X-Stepup-Email":   "ceo@corp.example",
		"X-Stepup-Mfa":     "webauthn",
		"X-Stepup-Network": "corporate",
	}

	type want struct {
		// status is what the client gets; notAllowedStatus accepts any
		// answer but an allow (a step-up or a denial).
		status int
		// upstream: the X-Stepup-* headers the application receives
		// (status 200 only).
		upstream map[string]string
		// mfaStep: a 302 to http://app.corp.example/.stepup/mfa.
		mfaStep bool
		// login: a 302 to the login URL.
		login   bool
		wwwAuth string
	}
	tests := []struct {
		name    string
		caddy   *harness.Caddy
		path    string
		headers map[string]string
		want    want
	}{
		{"corporate client: the application gets stepup's identity headers, not the client's", behindLB, "/payroll/report?month=11",
			merge(browser, cookie(tk.alice), from(corpIP), spoofIdentity),
			want{status: 200, upstream: map[string]string{
				"X-Stepup-User": "auth0|alice", "X-Stepup-Email": "alice@corp.example", "X-Stepup-Mfa": "none", "X-Stepup-Network": "corporate",
			}}},
		{"corporate API client with a bearer token", behindLB, "/payroll/api/report",
			merge(api, bearer(tk.alice), from(corpIP)),
			want{status: 200, upstream: map[string]string{
				"X-Stepup-User": "auth0|alice", "X-Stepup-Email": "alice@corp.example", "X-Stepup-Mfa": "none", "X-Stepup-Network": "corporate",
			}}},
		{"a user without email: the client's X-Stepup-Email does not survive", behindLB, "/payroll/report",
			merge(browser, cookie(tk.bob), from(corpIP), spoofIdentity),
			want{status: 200, upstream: map[string]string{
				"X-Stepup-User": "auth0|bob", "X-Stepup-Mfa": "none", "X-Stepup-Network": "corporate",
			}}},
		{"extranet browser: 302 to the MFA step reaches the client", behindLB, "/payroll/report?month=11",
			merge(browser, cookie(tk.alice), from(extranetIP)), want{status: 302, mfaStep: true}},
		{"extranet API client: 401", behindLB, "/payroll/api/report",
			merge(api, bearer(tk.alice), from(extranetIP)), want{status: 401, wwwAuth: `error="insufficient_user_authentication"`}},
		{"no token, API client: 401", behindLB, "/payroll/api/report",
			merge(api, from(corpIP)), want{status: 401, wwwAuth: "Bearer"}},
		{"no token, browser: 302 to the login URL", behindLB, "/payroll/report",
			merge(browser, from(corpIP)), want{status: 302, login: true}},
		{"forged token: 401", behindLB, "/payroll/api/report",
			merge(api, bearer(tk.forged), from(corpIP)), want{status: 401, wwwAuth: "Bearer"}},
		{"expired token: 401", behindLB, "/payroll/api/report",
			merge(api, bearer(tk.expired), from(corpIP)), want{status: 401, wwwAuth: "Bearer"}},
		{"dot segments out of the MFA prefix are not exempt", behindLB, "/.stepup/../payroll/report",
			merge(browser, cookie(tk.alice), from(extranetIP)), want{status: notAllowedStatus}},

		// Caddy at the edge believes no X-Forwarded-For from clients.
		{"edge: client-spoofed X-Forwarded-For 10.1.2.3 is not corporate", edge, "/payroll/report",
			merge(browser, cookie(tk.alice), from("10.1.2.3")), want{status: 302, mfaStep: true}},
		{"edge: client-spoofed X-Envoy-External-Address is not believed", edge, "/payroll/report",
			merge(browser, cookie(tk.alice), map[string]string{"X-Envoy-External-Address": "10.1.2.3", "X-Real-Ip": "10.1.2.3"}), want{status: 302, mfaStep: true}},
		{"edge: loopback is not corporate here", edge, "/payroll/api/report",
			merge(api, bearer(tk.alice)), want{status: 401, wwwAuth: `error="insufficient_user_authentication"`}},
	}
	client := noRedirects()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caseID := fmt.Sprintf("case-%d", i)
			// The path goes out exactly as written: Go's client does not
			// remove dot segments.
			req, err := http.NewRequest(http.MethodGet, "http://"+tc.caddy.Addr+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "app.corp.example"
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			req.Header.Set("X-Test-Case", caseID)
			res := do(t, client, req)
			upstream, uri, reached := app.reached(caseID)

			if tc.want.status == notAllowedStatus {
				if res.status == http.StatusOK || reached {
					t.Fatalf("status %d, application reached with %s and X-Stepup-User %q: an extranet request reached the application without MFA because its path starts with the MFA prefix before normalization",
						res.status, uri, upstream.Get("X-Stepup-User"))
				}
				return
			}
			if res.status != tc.want.status {
				t.Fatalf("status %d, want %d (application reached: %v %s)\n%v\n%s", res.status, tc.want.status, reached, uri, res.header, res.body)
			}
			if tc.want.status != 200 {
				if reached {
					t.Errorf("a request answered %d still reached the application", res.status)
				}
			} else {
				if !reached {
					t.Fatal("allowed, but the application was not reached")
				}
				got := map[string]string{}
				for _, k := range []string{"X-Stepup-User", "X-Stepup-Email", "X-Stepup-Mfa", "X-Stepup-Network"} {
					if vs := upstream.Values(k); len(vs) > 0 && (len(vs) > 1 || vs[0] != "") {
						got[k] = strings.Join(vs, " | ")
					}
				}
				if diff := cmp.Diff(tc.want.upstream, got); diff != "" {
					t.Errorf("X-Stepup-* headers at the application (-want +got):\n%s", diff)
				}
				for k, vs := range upstream {
					for _, v := range vs {
						if strings.Contains(v, "{http.") {
							t.Errorf("the application received Caddy's placeholder text in %s: %q", k, v)
						}
					}
				}
			}
			loc := res.header.Get("Location")
			if tc.want.mfaStep {
				u, err := url.Parse(loc)
				if err != nil || u.Host != "app.corp.example" || u.Path != "/.stepup/mfa" {
					t.Errorf("Location %q, want http://app.corp.example/.stepup/mfa[?...] (the MFA step on the same host)", loc)
				}
			}
			if tc.want.login && !strings.HasPrefix(loc, "https://idp.example.com/login?return_to=") {
				t.Errorf("Location %q, want the login URL", loc)
			}
			if tc.want.wwwAuth != "" && !strings.Contains(res.header.Get("WWW-Authenticate"), tc.want.wwwAuth) {
				t.Errorf("WWW-Authenticate %q, want it to contain %q", res.header.Get("WWW-Authenticate"), tc.want.wwwAuth)
			}
		})
	}
	// The application (Auth0's clientID, which rules branch on) comes from
	// the host mapping. Caddy copies every client header into the
	// forward_auth request, so a header the client sends must not choose
	// it: otherwise a client picks the application whose rules ask for no
	// MFA.
	req, err := http.NewRequest(http.MethodGet, "http://"+edge.Addr+"/payroll/report", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app.corp.example"
	for k, v := range merge(browser, cookie(tk.alice)) {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Stepup-Client-Id", "app-without-mfa")
	req.Header.Set("X-Request-Id", "e2e-client-id-1")
	do(t, client, req)

	srv.Stop(t)
	var clientID any = "(no log line)"
	for _, l := range srv.LogLines() {
		if l["request_id"] == "e2e-client-id-1" {
			clientID = l["client_id"]
		}
	}
	if clientID != "payroll" {
		t.Errorf("a forward-auth check whose client sent X-Stepup-Client-Id: app-without-mfa was decided for client %v, want payroll (clients.hosts)", clientID)
	}
	for _, tok := range []string{tk.alice, tk.bob, tk.forged, tk.expired} {
		if strings.Contains(srv.Stderr(), tok) {
			t.Error("a token appears in stepup's log")
		}
	}
}
