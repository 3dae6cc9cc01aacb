package e2e

// Helpers of the external-MFA tests (duo_test.go, redirect_test.go): the
// real stepup binary behind the Envoy-faithful proxy served over TLS, and
// a browser made of an HTTP client with a cookie jar that reaches the
// proxy, the fake Duo and a custom MFA service by their names.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/e2e/internal/envoyproxy"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/e2e/internal/idp"
)

// extConfig is what a scenario varies in stepup's configuration.
type extConfig struct {
	// Rules are rule files, in order (absolute paths).
	Rules []string
	// Configuration is rules.configuration.
	Configuration map[string]string
	// MFA is YAML under "mfa:", indented by two spaces.
	MFA string
}

// extStack is stepup behind the proxy, with an application behind it.
type extStack struct {
	front    *httptest.Server
	frontURL *url.URL
	provider *idp.IdP
	app      *extApp
	stepup   *harness.Stepup
	dir      string
}

// extApp is the application: it answers "application" and keeps the
// headers of the last request per path.
type extApp struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]http.Header
}

func (a *extApp) last(path string) (http.Header, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.seen[path]
	return h, ok
}

// seedRulePath is the absolute path of a seed file kept verbatim in rules/.
func seedRulePath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "rules", "testdata", "auth0-examples", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// startExtStack runs stepup with c behind the proxy: /.stepup/ routed to
// stepup's HTTP port with ext_authz on (so the step gets its assertion),
// everything else to the application as client "payroll". The proxy
// trusts one x-forwarded-for hop, so browsers choose their address.
func startExtStack(t *testing.T, c extConfig) *extStack {
	t.Helper()
	provider, err := idp.New("https://idp.example.com/", "payroll", "k1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir: %q\n", filepath.Join(dir, "data"))
	b.WriteString("log:\n  level: info\n  decisions: all\n")
	b.WriteString("server:\n  grpc:\n    listen: 127.0.0.1:0\n  http:\n    listen: 127.0.0.1:0\n  shutdown_timeout: 10s\n")
	b.WriteString("networks:\n  corporate:\n    - \"10.0.0.0/8\"\n")
	b.WriteString("identity:\n  jwt_authn:\n    namespace: envoy.filters.http.jwt_authn\n    key: jwt_payload\n")
	b.WriteString("mfa:\n  prefix: /.stepup/\n" + c.MFA)
	b.WriteString("rules:\n  list:\n")
	for i, f := range c.Rules {
		fmt.Fprintf(&b, "    - name: %q\n      file: %q\n", fmt.Sprintf("rule%d-%s", i, strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))), f)
	}
	if len(c.Configuration) > 0 {
		b.WriteString("  configuration:\n")
		keys := make([]string, 0, len(c.Configuration))
		for k := range c.Configuration {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "    %q: %q\n", k, c.Configuration[k])
		}
	}
	b.WriteString("  watch: false\n")
	b.WriteString("sessions:\n  store:\n    type: memory\n")
	cfgPath := writeFile(t, dir, "stepup.yaml", []byte(b.String()))
	s := harness.StartStepup(t, stepupBin, harness.StepupOptions{Args: []string{"--config", cfgPath}})

	app := &extApp{seen: map[string]http.Header{}}
	app.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app.mu.Lock()
		app.seen[r.URL.Path] = r.Header.Clone()
		app.mu.Unlock()
		_, _ = io.WriteString(w, "application")
	}))
	t.Cleanup(app.Close)
	appURL, err := url.Parse(app.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stepupEnvoyConfig(t, s, appURL, provider)
	cfg.JWTAuthn.FromBearer = true
	p, err := envoyproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	front := httptest.NewTLSServer(p)
	t.Cleanup(front.Close)
	fu, _ := url.Parse(front.URL)
	return &extStack{front: front, frontURL: fu, provider: provider, app: app, stepup: s, dir: dir}
}

// appURL is an application URL on the front.
func (s *extStack) appURL(path string) string { return s.front.URL + path }

// webClient is a browser made of an HTTP client with a cookie jar, signed
// in at the IdP as one user, coming from extranetIP (outside the corporate
// network). It does not follow redirects by itself.
type webClient struct {
	t     *testing.T
	c     *http.Client
	front string
}

// extHost sends a browser's connections for a host name to a local
// listener and trusts its certificate.
type extHost struct {
	name string // host:port as in URLs
	addr string // where it really listens
}

// newBrowser returns a webClient for user (sub) with an id_token cookie.
// roots are the certificates to trust besides the front's; hosts maps
// names to local listeners.
func (s *extStack) newBrowser(t *testing.T, sub, email string, roots []*x509.Certificate, hosts ...extHost) *webClient {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(s.front.Certificate())
	for _, c := range roots {
		pool.AddCert(c)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			for _, h := range hosts {
				if addr == h.name {
					addr = h.addr
				}
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	claims := s.provider.Claims(sub, email, time.Now())
	claims["nickname"] = strings.SplitN(email, "@", 2)[0]
	tok, err := s.provider.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	jar.SetCookies(s.frontURL, []*http.Cookie{{Name: "id_token", Value: tok, Path: "/", Secure: true, HttpOnly: true}})
	front := s.frontURL.Host
	return &webClient{t: t, front: front, c: &http.Client{
		Transport: extRoundTripper(func(r *http.Request) (*http.Response, error) {
			r = r.Clone(r.Context())
			r.Header.Set("Accept", "text/html,application/xhtml+xml")
			r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) e2e")
			if r.URL.Host == front {
				r.Header.Set("X-Forwarded-For", extranetIP)
				r.Header.Set("Sec-Fetch-Mode", "navigate")
			}
			return tr.RoundTrip(r)
		}),
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type extRoundTripper func(*http.Request) (*http.Response, error)

func (f extRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// extPage is one response as the browser saw it.
type extPage struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (b *webClient) do(req *http.Request) extPage {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	p := extPage{status: resp.StatusCode, body: string(body), header: resp.Header}
	if loc, err := resp.Location(); err == nil {
		p.location = loc.String()
	}
	return p
}

// get loads a URL.
func (b *webClient) get(rawURL string) extPage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post submits a form.
func (b *webClient) post(rawURL string, form url.Values) extPage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// expectPage fails the test unless p has status (and, for redirects, a
// location starting with want; for pages, a body containing want).
func expectPage(t *testing.T, what string, p extPage, status int, want string) extPage {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status %d, want %d (location %q)\n%s", what, p.status, status, p.location, p.body)
	}
	if status >= 300 && status < 400 {
		if !strings.HasPrefix(p.location, want) {
			t.Fatalf("%s: location %q, want %q…", what, p.location, want)
		}
	} else if !strings.Contains(p.body, want) {
		t.Fatalf("%s: page lacks %q\n%s", what, want, p.body)
	}
	return p
}

// extFormValue reads a hidden input of a page.
func extFormValue(t *testing.T, body, name string) string {
	t.Helper()
	marker := `name="` + name + `" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no %s field in page:\n%s", name, body)
	}
	rest := body[i+len(marker):]
	v := rest[:strings.IndexByte(rest, '"')]
	return strings.NewReplacer("&#43;", "+", "&amp;", "&", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">").Replace(v)
}

// extSelfSignedCert returns a TLS certificate for the DNS name, which is also
// its own root.
func extSelfSignedCert(t *testing.T, name string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}
