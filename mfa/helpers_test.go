package mfa

import (
	"bytes"
	"context"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/memstore"
	"github.com/stepup-dev/stepup/session/storetest"
)

// epoch is a step boundary, so that tests know which code is current.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	host      = "app.example"
	returnURL = "https://app.example/reports/q3?year=2026&x=a%2Fb"
	chromeUA  = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a handler on a real session manager and memstore with a fake
// clock.
type env struct {
	t      testing.TB
	clk    *storetest.Clock
	store  *memstore.Store
	m      *session.Manager
	sealer *session.Sealer
	keys   []session.Key
	h      *Handler
	reg    *prometheus.Registry
	logs   *syncBuffer
	opts   Options
}

func testKey(t testing.TB, id string) session.Key {
	t.Helper()
	return session.Key{ID: id, Secret: bytes.Repeat([]byte(id[:1]), 32)}
}

// newEnv builds an env; mod edits the handler options first.
func newEnv(t testing.TB, mod func(*Options)) *env {
	t.Helper()
	e := &env{t: t, clk: storetest.NewClock(epoch), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	e.store = memstore.New(memstore.Options{Now: e.clk.Now})
	t.Cleanup(func() { e.store.Close() })
	e.keys = []session.Key{testKey(t, "k1")}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	e.m, err = session.NewManager(session.Config{Keys: e.keys, Store: e.store, Now: e.clk.Now, StateTTL: 10 * time.Minute, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.sealer, err = session.NewSealer(e.keys)
	if err != nil {
		t.Fatal(err)
	}
	e.opts = Options{
		Sessions: e.m,
		Store:    e.store,
		Sealer:   e.sealer,
		Now:      e.clk.Now,
		Logger:   log,
		Metrics:  e.reg,
	}
	if mod != nil {
		mod(&e.opts)
	}
	e.h, err = New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// state makes a transaction state as Check does.
func (e *env) state(user string, req session.Requirement, ret string) string {
	e.t.Helper()
	tok, err := e.m.NewState(context.Background(), session.State{User: user, ClientID: "app", Host: host, ReturnURL: ret, Requirement: req})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

var anyRemember = session.Requirement{Provider: "any", AllowRemember: true}

// who describes the caller's identity for one request.
type who struct {
	user     string
	networks []string
	ip       string
	sid      string
}

func (e *env) assertion(w who) string {
	e.t.Helper()
	if w.user == "" {
		return ""
	}
	ip := w.ip
	if ip == "" {
		ip = "203.0.113.7"
	}
	nets := make([]any, len(w.networks))
	for i, n := range w.networks {
		nets[i] = n
	}
	a, err := e.m.IssueAssertion(w.user, map[string]any{"email": w.user + "@example.com", "client_ip": ip, "networks": nets}, w.sid)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// do serves one request as it arrives from the proxy.
func (e *env) do(method, target string, w who, form url.Values, cookies []*http.Cookie, hdr map[string]string) *httptest.ResponseRecorder {
	e.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequest(method, "https://"+host+target, body)
	r.RemoteAddr = "127.0.0.1:40000"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set("User-Agent", chromeUA)
	if a := e.assertion(w); a != "" {
		r.Header.Set(AssertionHeader, a)
	}
	for _, c := range cookies {
		r.AddCookie(c)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	checkSecurityHeaders(e.t, rec)
	return rec
}

func (e *env) get(target string, w who, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	return e.do(http.MethodGet, target, w, nil, cookies, nil)
}

func (e *env) post(target string, w who, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	return e.do(http.MethodPost, target, w, form, cookies, map[string]string{"Origin": "https://" + host, "Sec-Fetch-Site": "same-origin"})
}

func mfaURL(state string) string { return "/.stepup/mfa?state=" + url.QueryEscape(state) }

// checkSecurityHeaders is applied to every response the tests see.
func checkSecurityHeaders(t testing.TB, rec *httptest.ResponseRecorder) {
	t.Helper()
	h := rec.Header()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "img-src data:", "style-src 'sha256-", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%d response: CSP %q lacks %q", rec.Code, csp, want)
		}
	}
	// The step's own script, by 'self', on the pages that need it; never
	// an inline, eval'd or third-party script.
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") && !strings.HasSuffix(csp, "; script-src 'self'") {
		t.Errorf("CSP %q allows unsafe sources or other scripts", csp)
	}
	if body := rec.Body.String(); strings.Contains(body, "<script") {
		if !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("a page with a script, but CSP %q allows none", csp)
		}
		if strings.Count(body, "<script") != 1 || !strings.Contains(body, `<script src="/.stepup/stepup.js" integrity="sha384-`) {
			t.Errorf("a page with another script than the step's own")
		}
	}
	for k, want := range map[string]string{
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%d response: %s = %q, want %q", rec.Code, k, got, want)
		}
	}
}

var (
	reCSRF   = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	reSecret = regexp.MustCompile(`id="totp-secret">([^<]*)<`)
	reCodes  = regexp.MustCompile(`<li><code>([^<]*)</code></li>`)
	reError  = regexp.MustCompile(`(?s)<p class="error" role="alert" id="form-error">(.*?)</p>`)
	reLink   = regexp.MustCompile(`<a class="button" href="([^"]*)" id="(?:next|continue)">`)
)

func scrape(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("%v not found in page:\n%s", re, body)
	}
	return html.UnescapeString(m[1])
}

func pageError(body string) string {
	m := reError.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// code computes the authenticator code of secret at the clock's time plus
// offset.
func (e *env) code(secret string, offset time.Duration) string {
	e.t.Helper()
	c, err := totp.GenerateCodeCustom(strings.ReplaceAll(secret, " ", ""), e.clk.Now().Add(offset), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// cookie returns the named cookie set by rec, or nil.
func cookie(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// enrol runs a first enrolment for w and returns the secret, the recovery
// codes and the response of the confirmation.
func (e *env) enrol(w who, req session.Requirement, remember bool) (secret string, codes []string, rec *httptest.ResponseRecorder) {
	e.t.Helper()
	st := e.state(w.user, req, returnURL)
	page := e.get(mfaURL(st), w)
	if page.Code != http.StatusOK {
		e.t.Fatalf("enrol page: %d\n%s", page.Code, page.Body)
	}
	body := page.Body.String()
	secret = strings.ReplaceAll(scrape(e.t, reSecret, body), " ", "")
	form := url.Values{"state": {st}, "csrf": {scrape(e.t, reCSRF, body)}, "method": {"enrol"}, "code": {e.code(secret, 0)}}
	if remember {
		form.Set("remember", "1")
	}
	rec = e.post("/.stepup/mfa", w, form)
	if rec.Code != http.StatusOK {
		e.t.Fatalf("enrol confirmation: %d\n%s", rec.Code, rec.Body)
	}
	for _, m := range reCodes.FindAllStringSubmatch(rec.Body.String(), -1) {
		codes = append(codes, m[1])
	}
	return secret, codes, rec
}

// verifyForm opens the verification page of a new state and returns the
// state and the form to post, with code set.
func (e *env) verifyForm(w who, req session.Requirement, ret, method, code string) (string, url.Values) {
	e.t.Helper()
	st := e.state(w.user, req, ret)
	target := mfaURL(st)
	if method == "recovery" {
		target += "&method=recovery"
	}
	page := e.get(target, w)
	if page.Code != http.StatusOK {
		e.t.Fatalf("verify page: %d\n%s", page.Code, page.Body)
	}
	return st, url.Values{"state": {st}, "csrf": {scrape(e.t, reCSRF, page.Body.String())}, "method": {method}, "code": {code}}
}

// counterValue reads one counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
