package e2e

// Helpers of mfa_browser_test.go: stepup with a rule file and a test
// clock, behind real Caddy or behind the Envoy-faithful proxy, with an
// application that shows what it received.

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
	"github.com/stepup-dev/stepup/e2e/internal/envoyproxy"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/e2e/internal/idp"
)

// Proxies the MFA scenario runs through.
const (
	viaCaddy = "caddy"
	viaEnvoy = "envoy"
)

// Client addresses: networks.corporate is 10.0.0.0/8 in these tests.
const (
	mfaExtranetIP = "198.51.100.7"
	mfaOtherIP    = "203.0.113.9"
)

// Cookie names of stepup in development mode (no __Host- prefix over
// plain HTTP).
const (
	mfaCookie      = "stepup_mfa"
	rememberCookie = "stepup_remember"
)

// mfaExtranetRule is the seed's "Access from an extranet" rule against
// stepup's named networks, with allowRememberBrowser set by the test.
const mfaExtranetRule = `function (user, context, callback) {
  if (context.request.networks.indexOf('corporate') === -1) {
    context.multifactor = {provider: 'google-authenticator', allowRememberBrowser: %t};
  }
  callback(null, user, context);
}
`

// mfaClock moves stepup's clock through serve's --test-clock-file hook:
// the file holds an offset from the real time, which stepup re-reads on
// every use. Now is the same clock for the test's own tokens and codes.
type mfaClock struct {
	path   string
	mu     sync.Mutex
	offset time.Duration
}

func newMFAClock(t *testing.T, dir string) *mfaClock {
	t.Helper()
	c := &mfaClock{path: filepath.Join(dir, "clock-offset")}
	c.write(t)
	return c
}

// Now is the real time plus the offset.
func (c *mfaClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Offset returns the current offset.
func (c *mfaClock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// SetOffset sets the offset from the real time.
func (c *mfaClock) SetOffset(t *testing.T, d time.Duration) {
	t.Helper()
	c.mu.Lock()
	c.offset = d
	c.mu.Unlock()
	c.write(t)
}

// Advance moves the clock forward by d.
func (c *mfaClock) Advance(t *testing.T, d time.Duration) { t.Helper(); c.SetOffset(t, c.Offset()+d) }

// Set makes Now return about at from now on (it keeps running).
func (c *mfaClock) Set(t *testing.T, at time.Time) { t.Helper(); c.SetOffset(t, time.Until(at)) }

// write replaces the file atomically, so stepup never reads half of it.
func (c *mfaClock) write(t *testing.T) {
	t.Helper()
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(c.Offset().String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		t.Fatal(err)
	}
}

// mfaSeenRequest is what the application received, as it shows it.
type mfaSeenRequest struct {
	URI     string      `json:"uri"`
	Headers http.Header `json:"headers"`
}

// newMFAApp is the application behind the proxy: an HTML page whose
// #seen element holds the request URI and headers it received as JSON.
func newMFAApp(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // html.EscapeString below; keeps "&" readable
		enc.SetIndent("", "  ")
		if err := enc.Encode(mfaSeenRequest{URI: r.RequestURI, Headers: r.Header}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "<!doctype html><title>Payroll</title><style>pre{white-space:pre-wrap;word-break:break-all}</style>"+
			"<h1>Payroll application</h1><p>What this application received:</p><pre id=\"seen\">%s</pre>\n", html.EscapeString(b.String()))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// mfaStack is stepup behind a proxy, with the application behind both.
type mfaStack struct {
	via      string
	front    string // the proxy's base URL, as the browser uses it
	stepup   *harness.Stepup
	provider *idp.IdP
	clock    *mfaClock
	// secrets are the TOTP secrets and recovery codes the pages showed,
	// which must never appear in stepup's log.
	secrets []string
	// axe checks each page of the step for accessibility.
	axe *axeChecker
}

// startMFAStack runs stepup (a rule file with Auth0's extranet example logic,
// allowRememberBrowser as given, development mode for plain HTTP, the test
// clock hook) and the proxy via "caddy" or "envoy".
func startMFAStack(t *testing.T, via string, allowRemember bool) *mfaStack {
	t.Helper()
	if via == viaCaddy {
		harness.RequireProgram(t, "caddy", "Debian package caddy: apt-get install -y caddy")
	}
	provider, err := idp.New("https://idp.example.com/", "payroll", "k1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rule := filepath.Join(dir, "extranet.js")
	if err := os.WriteFile(rule, fmt.Appendf(nil, mfaExtranetRule, allowRemember), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := newMFAClock(t, dir)
	cfg := serverConfig{
		Corporate: []string{"10.0.0.0/8"},
		// Rule budgets far above the defaults: on a loaded 2-core machine a
		// rule can take longer than 100 ms, and this test is not about that.
		Extra: fmt.Sprintf("development: true\nrules:\n  rule_timeout: 10s\n  pipeline_timeout: 20s\n  list:\n    - name: extranet\n      file: %q\n", rule) +
			"mfa:\n  totp_issuer: Payroll\n",
	}
	if via == viaCaddy {
		// Caddy's forward_auth: stepup verifies the id_token cookie itself.
		jwks := filepath.Join(dir, "jwks.json")
		if err := provider.WriteJWKS(jwks); err != nil {
			t.Fatal(err)
		}
		cfg.JWKSFile, cfg.Issuer, cfg.Audience = jwks, provider.Issuer, provider.Audience
	}
	s := harness.StartStepup(t, stepupBin, harness.StepupOptions{
		Args: []string{"--config", writeConfig(t, cfg), "--test-clock-file", clock.path},
	})
	app := newMFAApp(t)
	st := &mfaStack{via: via, stepup: s, provider: provider, clock: clock}
	switch via {
	case viaCaddy:
		c := harness.StartCaddy(t, mfaCaddyfile(s.HTTPAddr, strings.TrimPrefix(app.URL, "http://")))
		st.front = "http://" + c.Addr
	case viaEnvoy:
		st.front = startMFAEnvoyProxy(t, s, app.URL, provider, clock)
	default:
		t.Fatalf("unknown proxy %q", via)
	}
	return st
}

// mfaCaddyfile is envoy/Caddyfile's shape on loopback: /.stepup/* goes
// through forward_auth (which copies stepup's identity assertion) to
// stepup, everything else through forward_auth to the application. Both
// forward_auth blocks trust the client's X-Forwarded-For, as if the
// browser were a load balancer in front of Caddy, so that each browser
// context chooses its client address.
func mfaCaddyfile(stepupHTTP, app string) func(port int) string {
	return func(port int) string {
		return fmt.Sprintf(`{
	admin off
	auto_https off
}
http://:%[1]d {
	bind 127.0.0.1
	handle /.stepup/* {
		forward_auth %[2]s {
			uri /forward-auth
			copy_headers X-Stepup-Assertion
			trusted_proxies 127.0.0.1/32
		}
		reverse_proxy %[2]s {
			header_up -X-Stepup-User
			header_up -X-Stepup-Email
			header_up -X-Stepup-Mfa
			header_up -X-Stepup-Network
			header_up -X-Stepup-Client-Id
			header_up -X-Stepup-Claim-*
		}
	}
	handle {
		forward_auth %[2]s {
			uri /forward-auth
			copy_headers X-Stepup-User X-Stepup-Email X-Stepup-Mfa X-Stepup-Network
			trusted_proxies 127.0.0.1/32
		}
		reverse_proxy %[3]s {
			header_up -X-Stepup-Assertion
			header_up -X-Stepup-Claim-*
		}
	}
}
`, port, stepupHTTP, app)
	}
}

// startMFAEnvoyProxy runs the Envoy-faithful proxy in front of stepup:
// jwt_authn reads the id_token cookie (on the test clock) into metadata,
// /.stepup/ goes to stepup's HTTP port with ext_authz on (Check adds the
// assertion), / to the application. It trusts one hop of X-Forwarded-For.
func startMFAEnvoyProxy(t *testing.T, s *harness.Stepup, appURL string, provider *idp.IdP, clock *mfaClock) string {
	t.Helper()
	app, err := url.Parse(appURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stepupEnvoyConfig(t, s, app, provider)
	cfg.VhostContextExtensions = map[string]string{"virtual_host": "payroll"}
	cfg.Now = clock.Now
	p, err := envoyproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front.URL
}

// stepupEnvoyConfig is the Envoy of the e2e stacks in front of stepup:
// ext_authz to its gRPC port (a 10 s deadline, generous for a loaded
// machine and not a statement about speed; 503 on error), the edge's
// use_remote_address with one trusted X-Forwarded-For hop, /.stepup/ to
// stepup's HTTP port and / to app as client "payroll", and jwt_authn
// reading provider's id_token cookie into the metadata.
func stepupEnvoyConfig(t *testing.T, s *harness.Stepup, app *url.URL, provider *idp.IdP) envoyproxy.Config {
	t.Helper()
	jwks, err := provider.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	stepHTTP, err := url.Parse(s.HTTPURL(""))
	if err != nil {
		t.Fatal(err)
	}
	return envoyproxy.Config{
		AuthzTarget:       s.GRPCAddr,
		Timeout:           10 * time.Second,
		StatusOnError:     http.StatusServiceUnavailable,
		UseRemoteAddress:  true,
		XFFNumTrustedHops: 1,
		Routes: []envoyproxy.Route{
			{Prefix: "/.stepup/", Upstream: stepHTTP},
			{Prefix: "/", Upstream: app, ContextExtensions: map[string]string{"client_id": "payroll"}},
		},
		JWTAuthn: &envoyproxy.JWTAuthn{
			Issuer: provider.Issuer, Audiences: []string{provider.Audience}, JWKS: jwks,
			FromCookies: []string{"id_token"}, Forward: true,
		},
	}
}

// url returns the proxy's URL of path (path and query).
func (s *mfaStack) url(path string) string { return s.front + path }

// signIn gives the browser context an id_token for user, valid from the
// test clock's now for an hour, as the login would.
func (s *mfaStack) signIn(ctx context.Context, t *testing.T, user string) {
	t.Helper()
	tok, err := s.provider.Token(user, strings.TrimPrefix(user, "auth0|")+"@corp.example", s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	browser.SetCookie(ctx, t, s.front, &http.Cookie{Name: "id_token", Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// openBrowser opens a fresh browser context for user, coming from ip.
// Every request it makes also carries forged copies of stepup's headers:
// the proxy must replace them (the MFA step would refuse a forged
// assertion, and the application must see stepup's values only).
func (s *mfaStack) openBrowser(t *testing.T, b *browser.Browser, user, ip string) context.Context {
	t.Helper()
	ctx := b.NewContext(t)
	s.signIn(ctx, t, user)
	browser.SetExtraHeaders(ctx, t, map[string]string{
		"X-Forwarded-For":    ip,
		"X-Stepup-Assertion": "forged-by-the-browser",
		"X-Stepup-User":      "mallory",
		"X-Stepup-Mfa":       "webauthn",
	})
	return ctx
}

// deleteCookie removes a cookie of the proxy's site from the context.
func (s *mfaStack) deleteCookie(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	if _, err := chromedp.Call(cctx, network.DeleteCookies, network.DeleteCookiesParams{Name: name, URL: s.front + "/"}); err != nil {
		t.Fatalf("delete cookie %s: %v", name, err)
	}
	if _, ok := browser.Cookie(ctx, t, name); ok {
		t.Fatalf("cookie %s is still there after deleting it", name)
	}
}

// mfaForgeFormField adds a hidden input to the page's form, as a user with
// the browser's developer tools could (CDP evaluation is not subject to
// the page's Content-Security-Policy).
func mfaForgeFormField(ctx context.Context, t *testing.T, name, value string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const i = document.createElement('input'); i.type = 'hidden'; i.name = %q; i.value = %q; document.querySelector('form').appendChild(i); return true; })()`, name, value)
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	if ok, err := chromedp.Run(cctx, chromedp.Evaluate[bool](js)); err != nil || !ok {
		t.Fatalf("forge form field %s: %v", name, err)
	}
}

// mfaAppSaw reads what the application received from its page.
func mfaAppSaw(ctx context.Context, t *testing.T) mfaSeenRequest {
	t.Helper()
	raw := browser.Text(ctx, t, "#seen")
	var seen mfaSeenRequest
	if err := json.Unmarshal([]byte(raw), &seen); err != nil {
		t.Fatalf("the application's page: %v\n%s", err, raw)
	}
	return seen
}

// mfaTOTPCode computes the authenticator code of secret (as shown on the
// enrolment page, in groups) at the given time.
func mfaTOTPCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(strings.ReplaceAll(secret, " ", ""), at)
	if err != nil {
		t.Fatalf("totp code: %v", err)
	}
	return code
}

// mfaTexts returns the text of every element matching sel, in order.
func mfaTexts(ctx context.Context, t *testing.T, sel string) []string {
	t.Helper()
	q, err := json.Marshal(sel)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, browser.StepTimeout)
	defer cancel()
	js := "Array.from(document.querySelectorAll(" + string(q) + ")).map(e => e.textContent.trim())"
	out, err := chromedp.Run(cctx, chromedp.Evaluate[[]string](js))
	if err != nil {
		t.Fatalf("mfaTexts of %s: %v", sel, err)
	}
	return out
}
