package envoyproxy_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
	"github.com/stepup-dev/stepup/e2e/internal/envoyproxy"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/e2e/internal/idp"
)

// recorder is an HTTP hop that remembers the headers of every request
// (by X-Test-Case) and either answers itself or passes the request on.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]http.Header
}

func newRecorder(t *testing.T, next http.Handler) *recorder {
	t.Helper()
	rec := &recorder{seen: map[string]http.Header{}}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen[r.Header.Get("X-Test-Case")] = r.Header.Clone()
		rec.mu.Unlock()
		if next != nil {
			next.ServeHTTP(w, r)
			return
		}
		_, _ = io.WriteString(w, "application")
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) got(name string) (http.Header, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.seen[name]
	return h, ok
}

func (r *recorder) url(t *testing.T) *url.URL {
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// The stepup binary, built once per test binary on first use.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := browser.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing the shared browser:", err)
	}
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// stepupBinary returns $STEPUP_BIN or ./cmd/stepup, built once.
func stepupBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("STEPUP_BIN"); bin != "" {
		return bin
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "envoyproxy-stepup-")
		if build.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		build.bin, build.err = harness.Build(ctx, build.dir)
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// stack is stepup behind the proxy, with an application behind it and a
// tap in front of stepup's HTTP port.
type stack struct {
	front    *httptest.Server
	app, tap *recorder
	provider *idp.IdP
}

// startStack runs the real stepup binary behind the proxy, in the
// topology of envoy/envoy.yaml: the MFA prefix is routed to stepup's HTTP
// port with ext_authz still enabled (docs/envoy.md#the-reserved-prefix), so that Check
// hands the step its identity assertion. The proxy trusts one hop of
// x-forwarded-for (as behind a load balancer), so the test chooses each
// request's client address; networks.corporate is 10.0.0.0/8.
func startStack(t *testing.T) *stack {
	t.Helper()
	bin := stepupBinary(t)
	provider, err := idp.New("https://idp.example.com/", "payroll", "k1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jwks, err := provider.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "stepup.yaml")
	yaml := fmt.Sprintf(`data_dir: %q
log:
  level: info
  decisions: all
server:
  grpc:
    listen: 127.0.0.1:0
  http:
    listen: 127.0.0.1:0
  shutdown_timeout: 10s
networks:
  corporate:
    - "10.0.0.0/8"
identity:
  jwt_authn:
    namespace: envoy.filters.http.jwt_authn
    key: jwt_payload
`, filepath.Join(dir, "data"))
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s := harness.StartStepup(t, bin, harness.StepupOptions{Args: []string{"--config", cfgPath}})

	app := newRecorder(t, nil)
	stepHTTP, err := url.Parse(s.HTTPURL(""))
	if err != nil {
		t.Fatal(err)
	}
	// tap sits between the proxy and stepup's HTTP port to see what the
	// MFA step receives.
	tap := newRecorder(t, httputil.NewSingleHostReverseProxy(stepHTTP))

	p, err := envoyproxy.New(envoyproxy.Config{
		AuthzTarget: s.GRPCAddr,
		// Generous: the first check also sets up the gRPC connection, on a
		// possibly loaded machine. Not a statement about speed.
		Timeout:                10 * time.Second,
		StatusOnError:          http.StatusServiceUnavailable,
		UseRemoteAddress:       true,
		XFFNumTrustedHops:      1,
		VhostContextExtensions: map[string]string{"virtual_host": "app"},
		Routes: []envoyproxy.Route{
			{Prefix: "/.stepup/", Upstream: tap.url(t)},
			{Prefix: "/", Upstream: app.url(t), ContextExtensions: map[string]string{"client_id": "payroll"}},
		},
		JWTAuthn: &envoyproxy.JWTAuthn{
			Issuer: provider.Issuer, Audiences: []string{"payroll"}, JWKS: jwks,
			FromCookies: []string{"id_token"}, FromBearer: true, Forward: true,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return &stack{front: front, app: app, tap: tap, provider: provider}
}

// TestThroughStepup: the contract between the proxy and the real stepup
// binary, request by request.
func TestThroughStepup(t *testing.T) {
	t.Parallel()
	st := startStack(t)
	front, app, tap, provider := st.front, st.app, st.tap, st.provider

	tok, err := provider.Token("auth0|alice", "alice@corp.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	send := func(name, path, clientIP, accept, cookie string, extra ...string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest("GET", front.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "app.corp.example"
		req.Header.Set("X-Test-Case", name)
		req.Header.Set("X-Forwarded-For", clientIP)
		req.Header.Set("Accept", accept)
		if accept == "text/html" {
			req.Header.Set("Sec-Fetch-Mode", "navigate")
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			req.Header.Add(extra[i], extra[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	t.Run("corporate browser reaches the app with identity headers and without stepup's cookies", func(t *testing.T) {
		resp, body := send("corp", "/payroll/report?month=11", "10.1.2.3", "text/html",
			"theme=dark; id_token="+tok+"; __Host-stepup_mfa=stale; __Host-stepup_remember=stale",
			"X-Stepup-User", "mallory", "X-Stepup-Assertion", "forged")
		if resp.StatusCode != 200 || body != "application" {
			t.Fatalf("status %d body %q, want the application's 200", resp.StatusCode, body)
		}
		h, _ := app.got("corp")
		if got := h.Values("X-Stepup-User"); len(got) != 1 || got[0] != "auth0|alice" {
			t.Errorf("x-stepup-user %q, want exactly [auth0|alice]", got)
		}
		if got := h.Get("X-Stepup-Network"); !strings.Contains(got, "corporate") {
			t.Errorf("x-stepup-network %q, want corporate", got)
		}
		if got := h.Get("X-Stepup-Email"); got != "alice@corp.example" {
			t.Errorf("x-stepup-email %q", got)
		}
		if got := h.Values("X-Stepup-Assertion"); len(got) != 0 {
			t.Errorf("the application received an assertion: %q", got)
		}
		cookies := strings.Join(h.Values("Cookie"), "; ")
		if strings.Contains(cookies, "stepup_") {
			t.Errorf("stepup's cookies reached the application: %q", cookies)
		}
		if !strings.Contains(cookies, "theme=dark") || !strings.Contains(cookies, "id_token=") {
			t.Errorf("the application's own cookies were lost: %q", cookies)
		}
	})

	t.Run("extranet browser is sent to the MFA step", func(t *testing.T) {
		resp, _ := send("extranet", "/payroll/report?month=11", "198.51.100.7", "text/html", "id_token="+tok)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("status %d, want 302", resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		if loc.Scheme != "http" || loc.Host != "app.corp.example" || loc.Path != "/.stepup/mfa" || loc.Query().Get("state") == "" {
			t.Errorf("location %q, want http://app.corp.example/.stepup/mfa?state=…", loc)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("cache-control %q, want no-store", got)
		}
		if _, reached := app.got("extranet"); reached {
			t.Error("the application was reached")
		}
	})

	t.Run("extranet API call gets 401 with a challenge", func(t *testing.T) {
		resp, body := send("api", "/payroll/api/report", "198.51.100.7", "application/json", "", "Authorization", "Bearer "+tok)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Www-Authenticate"), "insufficient_user_authentication") {
			t.Errorf("status %d www-authenticate %q, want 401 insufficient_user_authentication", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !strings.Contains(body, "/.stepup/mfa") {
			t.Errorf("content-type %q body %q, want JSON naming the MFA step", resp.Header.Get("Content-Type"), body)
		}
	})

	t.Run("a request under /.stepup/ reaches stepup's HTTP port with the assertion", func(t *testing.T) {
		resp, _ := send("step", "/.stepup/mfa?state=abc", "198.51.100.7", "text/html", "id_token="+tok,
			"X-Stepup-Assertion", "forged")
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			t.Fatalf("status %d: the MFA step itself must not be stepped up or denied", resp.StatusCode)
		}
		h, reached := tap.got("step")
		if !reached {
			t.Fatal("the request never reached stepup's HTTP port")
		}
		got := h.Values("X-Stepup-Assertion")
		if len(got) != 1 || got[0] == "" || got[0] == "forged" {
			t.Errorf("x-stepup-assertion %q, want exactly one value set by Check", got)
		}
		if got := h.Get("X-Stepup-User"); got != "auth0|alice" {
			t.Errorf("x-stepup-user %q", got)
		}
	})
}

// TestBrowserThroughStepup: headless Chromium through the proxy to the
// real stepup. The extranet browser follows the step-up redirect to the
// MFA step on stepup's HTTP port, which receives Check's assertion; the
// corporate browser lands on the application.
func TestBrowserThroughStepup(t *testing.T) {
	t.Parallel()
	b := browser.Shared(t)
	st := startStack(t)
	tok, err := st.provider.Token("auth0|alice", "alice@corp.example", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, clientIP, wantPath string
	}{
		{"extranet", "198.51.100.7", "/.stepup/mfa"},
		{"corporate", "10.1.2.3", "/payroll/report"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := b.NewContext(t)
			browser.SetCookie(ctx, t, st.front.URL, &http.Cookie{Name: "id_token", Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
			browser.SetExtraHeaders(ctx, t, map[string]string{"X-Forwarded-For": tc.clientIP, "X-Test-Case": "browser-" + tc.name})
			browser.Navigate(ctx, t, st.front.URL+"/payroll/report?month=11")
			browser.Screenshot(ctx, t, tc.name)
			u, err := url.Parse(browser.URL(ctx, t))
			if err != nil {
				t.Fatal(err)
			}
			if u.Path != tc.wantPath {
				t.Fatalf("the browser ended on %s, want %s", u, tc.wantPath)
			}
			switch tc.name {
			case "extranet":
				if u.Query().Get("state") == "" {
					t.Errorf("no state in %s", u)
				}
				h, ok := st.tap.got("browser-extranet")
				if !ok || h.Get("X-Stepup-Assertion") == "" || h.Get("X-Stepup-User") != "auth0|alice" {
					t.Errorf("the MFA step got no assertion for alice (reached: %v, headers %v)", ok, h)
				}
				if _, reached := st.app.got("browser-extranet"); reached {
					t.Error("the application was reached without MFA")
				}
			case "corporate":
				if got := browser.Text(ctx, t, "body"); got != "application" {
					t.Errorf("page text %q, want the application's", got)
				}
			}
		})
	}
}
