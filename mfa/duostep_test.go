package mfa

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/mfa/duo/duotest"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/storetest"
)

// duoEnv is an env whose Duo is a duotest fake on the env's clock.
type duoEnv struct {
	*env
	fake *duotest.Server
}

func newDuoEnv(t *testing.T, mod func(*Options)) *duoEnv {
	t.Helper()
	var clk *storetest.Clock
	fake := duotest.New(t, duotest.Config{Now: func() time.Time { return clk.Now() }})
	e := newEnv(t, func(o *Options) {
		o.Duo.HTTPClient = fake.Client()
		o.Duo.Timeout = 5 * time.Second
		if mod != nil {
			mod(o)
		}
	})
	clk = e.clk
	return &duoEnv{env: e, fake: fake}
}

// duoReq is what the seed's Duo rule asks for, as Check stores it: the
// secret sealed for the user.
func (d *duoEnv) duoReq(user string, remember bool, opts map[string]string) session.Requirement {
	d.t.Helper()
	req := session.Requirement{Provider: "duo", AllowRemember: remember, Options: map[string]string{"ikey": d.fake.ClientID(), "host": d.fake.Host()}}
	for k, v := range opts {
		req.Options[k] = v
	}
	if err := d.sealer.SealOption(&req, user, "skey", d.fake.ClientSecret()); err != nil {
		d.t.Fatal(err)
	}
	return req
}

// toDuo starts a Duo step for w and returns the state and the URL of
// Duo's prompt it redirected to.
func (d *duoEnv) toDuo(w who, req session.Requirement, remember bool) (string, string) {
	d.t.Helper()
	st := d.state(w.user, req, returnURL)
	rec := d.get(mfaURL(st), w)
	if req.AllowRemember {
		if rec.Code != http.StatusOK {
			d.t.Fatalf("continue-to-duo page: %d\n%s", rec.Code, rec.Body)
		}
		body := rec.Body.String()
		form := url.Values{"state": {st}, "csrf": {scrape(d.t, reCSRF, body)}, "method": {"duo"}}
		if remember {
			form.Set("remember", "1")
		}
		rec = d.post("/.stepup/mfa", w, form)
	}
	if rec.Code != http.StatusSeeOther {
		d.t.Fatalf("redirect to duo: %d\n%s", rec.Code, rec.Body)
	}
	return st, rec.Header().Get("Location")
}

// callback plays Duo's prompt and returns the callback's path and query.
func (d *duoEnv) callback(authURL string) string {
	d.t.Helper()
	u, err := d.fake.Visit(context.Background(), authURL)
	if err != nil {
		d.t.Fatal(err)
	}
	if u.Host != host || u.Path != "/.stepup/duo/callback" {
		d.t.Fatalf("duo sends the browser to %s", u)
	}
	return u.RequestURI()
}

func TestDuoRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		allow, tick             bool
		opts                    map[string]string
		claims                  []string
		wantUsername            string
		wantMFA, wantRememberCk bool
	}{
		{name: "straight to duo when remembering is not allowed", wantUsername: "auth0|alice@example.com"},
		{name: "continue page, box ticked", allow: true, tick: true, wantUsername: "auth0|alice@example.com", wantRememberCk: true},
		{name: "continue page, box not ticked", allow: true, wantUsername: "auth0|alice@example.com"},
		{name: "the rule's username", opts: map[string]string{"username": "alice.duo"}, wantUsername: "alice.duo"},
		{name: "configured claim", claims: []string{"nickname", "email"}, wantUsername: "auth0|alice@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuoEnv(t, func(o *Options) { o.Duo.UsernameClaims = tc.claims })
			mfaName, rememberName, _ := d.m.CookieNames()
			req := d.duoReq(alice.user, tc.allow, tc.opts)
			st, authURL := d.toDuo(alice, req, tc.tick)
			if !strings.HasPrefix(authURL, d.fake.URL()+"/oauth/v1/authorize?") {
				t.Fatalf("redirect to %q, want duo's authorize endpoint", authURL)
			}
			if strings.Contains(authURL, url.QueryEscape(st)) || strings.Contains(authURL, st) {
				t.Error("our state token travels to duo")
			}
			cb := d.callback(authURL)
			a := d.fake.Authorizations()
			if len(a) != 1 || a[0].Username != tc.wantUsername || len(a[0].State) < 22 || a[0].Nonce == "" || !a[0].UseDuoCode ||
				a[0].RedirectURI != "https://"+host+"/.stepup/duo/callback" {
				t.Fatalf("authorizations %+v", a)
			}
			rec := d.get(cb, alice)
			if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != returnURL {
				t.Fatalf("callback: %d %q\n%s", rec.Code, rec.Header().Get("Location"), rec.Body)
			}
			mc := cookie(rec, mfaName)
			if mc == nil {
				t.Fatal("no mfa session cookie")
			}
			s, err := d.m.VerifyMFASession(context.Background(), mc.Value, alice.user, alice.sid)
			if err != nil || !slices.Equal(s.Factors(), []string{session.FactorDuo}) {
				t.Fatalf("mfa session %+v, %v; want method duo", s, err)
			}
			if got := cookie(rec, rememberName) != nil; got != tc.wantRememberCk {
				t.Errorf("remember cookie set: %v, want %v", got, tc.wantRememberCk)
			}
			if _, err := d.m.LoadState(context.Background(), st, alice.user); err == nil {
				t.Error("the state survived the step")
			}
			if got := counterValue(d.h.metrics.duoRequests.WithLabelValues(duoOpHealth, duoResultOK)); got != 1 {
				t.Errorf("health checks counted %v", got)
			}
			if got := counterValue(d.h.metrics.duoRequests.WithLabelValues(duoOpToken, duoResultOK)); got != 1 {
				t.Errorf("token calls counted %v", got)
			}
			if strings.Contains(d.logs.String(), d.fake.ClientSecret()) {
				t.Error("the duo secret is in the log")
			}
		})
	}
}

func TestDuoContinuePage(t *testing.T) {
	d := newDuoEnv(t, nil)
	st := d.state(alice.user, d.duoReq(alice.user, true, nil), returnURL)
	rec := d.get(mfaURL(st), alice)
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "Continue to Duo") || !strings.Contains(body, `name="remember" value="1"`) {
		t.Fatalf("%d\n%s", rec.Code, body)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://"+d.fake.Host()+";") {
		t.Errorf("CSP %q does not let the form go on to duo", csp)
	}
	if len(d.fake.Authorizations()) != 0 {
		t.Error("went to duo before the user chose")
	}
	// A forged remember field is ignored when the rule forbids remembering.
	_, rememberName, _ := d.m.CookieNames()
	st2 := d.state(alice.user, d.duoReq(alice.user, false, nil), returnURL)
	csrf, err := d.h.csrfToken(alice.user, bindState(st2), formDuo, returnURL)
	if err != nil {
		t.Fatal(err)
	}
	go1 := d.post("/.stepup/mfa", alice, url.Values{"state": {st2}, "csrf": {csrf}, "method": {"duo"}, "remember": {"1"}})
	if go1.Code != http.StatusSeeOther {
		t.Fatalf("post: %d", go1.Code)
	}
	if rec := d.get(d.callback(go1.Header().Get("Location")), alice); rec.Code != http.StatusSeeOther || cookie(rec, rememberName) != nil {
		t.Fatalf("callback: %d, remember cookie %v", rec.Code, cookie(rec, rememberName))
	}
	// The TOTP forms are not a way around Duo.
	for _, m := range []string{"totp", "recovery", "enrol"} {
		csrf, _ := d.h.csrfToken(alice.user, bindState(st), m, returnURL)
		if rec := d.post("/.stepup/mfa", alice, url.Values{"state": {st}, "csrf": {csrf}, "method": {m}, "code": {"123456"}}); rec.Code != http.StatusForbidden && rec.Code != http.StatusBadRequest {
			t.Errorf("form %s on a duo state: %d", m, rec.Code)
		}
	}
	if rec := d.get(mfaURL(st)+"&method=totp", alice); rec.Code != http.StatusForbidden {
		t.Errorf("authenticator page for a duo state: %d", rec.Code)
	}
}

func TestDuoFailures(t *testing.T) {
	for _, tc := range []struct {
		name       string
		outcome    duotest.Outcome
		fault      duotest.Fault
		wantStatus int
		wantText   string
		wantResult string
	}{
		{"denied push", duotest.Deny, duotest.NoFault, http.StatusForbidden, "Duo did not approve this sign-in", duoResultDenied},
		{"reported fraud", duotest.Fraud, duotest.NoFault, http.StatusForbidden, "Duo did not approve this sign-in", duoResultDenied},
		{"bad signature", duotest.Allow, duotest.BadSignature, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"wrong algorithm", duotest.Allow, duotest.WrongAlgorithm, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"wrong audience", duotest.Allow, duotest.WrongAudience, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"wrong issuer", duotest.Allow, duotest.WrongIssuer, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"expired token", duotest.Allow, duotest.Expired, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"no expiry", duotest.Allow, duotest.NoExpiry, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"wrong username", duotest.Allow, duotest.WrongUsername, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"wrong nonce", duotest.Allow, duotest.WrongNonce, http.StatusForbidden, "could not be accepted", duoResultInvalidToken},
		{"no id_token", duotest.Allow, duotest.NoIDToken, http.StatusServiceUnavailable, "Duo is not available", duoResultUnavailable},
		{"token endpoint fails", duotest.Allow, duotest.ServerError, http.StatusServiceUnavailable, "Duo is not available", duoResultUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuoEnv(t, nil)
			mfaName, _, _ := d.m.CookieNames()
			d.fake.SetOutcome(tc.outcome)
			_, authURL := d.toDuo(alice, d.duoReq(alice.user, false, nil), false)
			cb := d.callback(authURL)
			d.fake.SetFault(tc.fault)
			rec := d.get(cb, alice)
			if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.wantText) || cookie(rec, mfaName) != nil {
				t.Fatalf("%d, mfa cookie %v\n%s", rec.Code, cookie(rec, mfaName), rec.Body)
			}
			if got := scrape(t, reLink, rec.Body.String()); got != returnURL {
				t.Errorf("start-again link %q", got)
			}
			if got := counterValue(d.h.metrics.duoRequests.WithLabelValues(duoOpToken, tc.wantResult)); got != 1 {
				t.Errorf("token result %s counted %v", tc.wantResult, got)
			}
			// Whatever failed, the transaction is over.
			if again := d.get(cb, alice); again.Code != http.StatusGone {
				t.Errorf("callback again: %d", again.Code)
			}
		})
	}
}

func TestDuoCallbackRefusals(t *testing.T) {
	d := newDuoEnv(t, nil)
	mfaName, _, _ := d.m.CookieNames()
	bob := who{user: "auth0|bob"}

	_, authURL := d.toDuo(alice, d.duoReq(alice.user, false, nil), false)
	cb := d.callback(authURL)
	u, _ := url.Parse(cb)
	q := u.Query()

	wrongState := url.Values{"state": {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, "duo_code": {q.Get("duo_code")}}
	if rec := d.get("/.stepup/duo/callback?"+wrongState.Encode(), alice); rec.Code != http.StatusGone {
		t.Errorf("wrong state: %d", rec.Code)
	}
	for _, bad := range []string{"", "?state=short&duo_code=x", "?duo_code=x", "?state=" + q.Get("state"), "?state=" + q.Get("state") + "&state=" + q.Get("state") + "&duo_code=x"} {
		if rec := d.get("/.stepup/duo/callback"+bad, alice); rec.Code != http.StatusBadRequest {
			t.Errorf("callback %q: %d", bad, rec.Code)
		}
	}
	if rec := d.post("/.stepup/duo/callback", alice, url.Values{}); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST callback: %d", rec.Code)
	}
	// Another user's callback is refused and left for its owner.
	if rec := d.get(cb, bob); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "another account") {
		t.Fatalf("foreign callback: %d\n%s", rec.Code, rec.Body)
	}
	if rec := d.get(cb, who{}); rec.Code != http.StatusUnauthorized {
		t.Errorf("callback without identity: %d", rec.Code)
	}
	first := d.get(cb, alice)
	if first.Code != http.StatusSeeOther || cookie(first, mfaName) == nil {
		t.Fatalf("owner's callback: %d\n%s", first.Code, first.Body)
	}
	// Replayed callback.
	if rec := d.get(cb, alice); rec.Code != http.StatusGone || cookie(rec, mfaName) != nil {
		t.Fatalf("replayed callback: %d", rec.Code)
	}
	// A used code with a fresh transaction: Duo refuses it.
	_, authURL2 := d.toDuo(alice, d.duoReq(alice.user, false, nil), false)
	u2, _ := url.Parse(d.callback(authURL2))
	q2 := u2.Query()
	q2.Set("duo_code", q.Get("duo_code"))
	if rec := d.get("/.stepup/duo/callback?"+q2.Encode(), alice); rec.Code != http.StatusForbidden || cookie(rec, mfaName) != nil {
		t.Fatalf("replayed code: %d\n%s", rec.Code, rec.Body)
	}
	if got := counterValue(d.h.metrics.duoRequests.WithLabelValues(duoOpToken, duoResultRejected)); got != 1 {
		t.Errorf("rejected codes counted %v", got)
	}
	// Duo came back with an error: the transaction ends.
	_, authURL3 := d.toDuo(alice, d.duoReq(alice.user, false, nil), false)
	u3, _ := url.Parse(d.callback(authURL3))
	errQ := url.Values{"state": {u3.Query().Get("state")}, "error": {"access_denied"}, "error_description": {"user cancelled"}}
	if rec := d.get("/.stepup/duo/callback?"+errQ.Encode(), alice); rec.Code != http.StatusForbidden {
		t.Fatalf("duo error: %d\n%s", rec.Code, rec.Body)
	}
	if rec := d.get(u3.RequestURI(), alice); rec.Code != http.StatusGone {
		t.Errorf("code after duo's error: %d", rec.Code)
	}
}

func TestDuoUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback string
		enrolled bool
		down     func(*duotest.Server)
		wantLink string
	}{
		{"health check fails, no fallback", "", true, func(s *duotest.Server) { s.SetHealthy(false) }, returnURL},
		{"unreachable, no fallback", DuoFallbackNone, true, func(s *duotest.Server) { s.Close() }, returnURL},
		{"fallback without an authenticator", DuoFallbackTOTP, false, func(s *duotest.Server) { s.SetHealthy(false) }, returnURL},
		{"fallback to the authenticator", DuoFallbackTOTP, true, func(s *duotest.Server) { s.SetHealthy(false) }, "/.stepup/mfa?state="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDuoEnv(t, func(o *Options) { o.Duo.Fallback = tc.fallback })
			var secret string
			if tc.enrolled {
				secret, _, _ = d.enrol(alice, anyRemember, false)
				d.clk.Advance(30 * time.Second)
			}
			tc.down(d.fake)
			req := d.duoReq(alice.user, false, nil)
			st := d.state(alice.user, req, returnURL)
			rec := d.get(mfaURL(st), alice)
			body := rec.Body.String()
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, "Duo is not available") || rec.Header().Get("Location") != "" {
				t.Fatalf("%d\n%s", rec.Code, body)
			}
			link := scrape(t, reLink, body)
			if !strings.HasPrefix(link, tc.wantLink) {
				t.Fatalf("link %q, want %q…", link, tc.wantLink)
			}
			if got := counterValue(d.h.metrics.duoRequests.WithLabelValues(duoOpHealth, duoResultUnavailable)); got != 1 {
				t.Errorf("unavailable health checks counted %v", got)
			}
			if _, err := d.m.LoadState(context.Background(), st, alice.user); err != nil {
				t.Fatalf("the state was used up: %v", err)
			}
			if tc.wantLink == returnURL {
				if rec := d.get(mfaURL(st)+"&method=totp", alice); rec.Code != http.StatusForbidden {
					t.Errorf("authenticator page without the fallback: %d", rec.Code)
				}
				return
			}
			page := d.get(link, alice)
			if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "Enter your verification code") {
				t.Fatalf("fallback page: %d\n%s", page.Code, page.Body)
			}
			form := url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, page.Body.String())}, "method": {"totp"}, "code": {d.code(secret, 0)}}
			ok := d.post("/.stepup/mfa", alice, form)
			mfaName, _, _ := d.m.CookieNames()
			if ok.Code != http.StatusSeeOther || cookie(ok, mfaName) == nil {
				t.Fatalf("fallback verification: %d\n%s", ok.Code, ok.Body)
			}
			s, err := d.m.VerifyMFASession(context.Background(), cookie(ok, mfaName).Value, alice.user, alice.sid)
			if err != nil || !slices.Equal(s.Factors(), []string{session.FactorOTP, session.FactorDuoFallback}) {
				t.Fatalf("session %+v %v", s, err)
			}
		})
	}
}

// TestDuoRefusalOpensNoFallback: Duo answering the health check with a
// 4xx (a client id it does not know) is a configuration error, not an
// outage: the fallback stays closed although the policy allows it and
// the user has an authenticator.
func TestDuoRefusalOpensNoFallback(t *testing.T) {
	d := newDuoEnv(t, func(o *Options) { o.Duo.Fallback = DuoFallbackTOTP })
	d.enrol(alice, anyRemember, false)
	d.clk.Advance(30 * time.Second)
	req := d.duoReq(alice.user, false, map[string]string{"ikey": "DIUNKNOWNCLIENT00000"})
	st := d.state(alice.user, req, returnURL)
	rec := d.get(mfaURL(st), alice)
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "/.stepup/mfa?state=") {
		t.Fatalf("%d\n%s", rec.Code, rec.Body)
	}
	if rec := d.get(mfaURL(st)+"&method=totp", alice); rec.Code != http.StatusForbidden {
		t.Errorf("the authenticator was offered for Duo refusing the settings: %d", rec.Code)
	}
}

func TestDuoMisconfigured(t *testing.T) {
	d := newDuoEnv(t, nil)
	good := d.duoReq(alice.user, false, nil)
	for _, tc := range []struct {
		name string
		req  session.Requirement
		w    who
	}{
		{"no secret", session.Requirement{Provider: "duo", Options: map[string]string{"ikey": d.fake.ClientID(), "host": d.fake.Host()}}, alice},
		{"secret sealed for another user", d.duoReq("auth0|bob", false, nil), alice},
		{"short ikey", func() session.Requirement {
			r := d.duoReq(alice.user, false, nil)
			r.Options["ikey"] = "DI123"
			return r
		}(), alice},
		{"host with a CSP break", func() session.Requirement {
			r := d.duoReq(alice.user, true, nil)
			r.Options["host"] = "api.example;script-src"
			return r
		}(), alice},
		{"no username", good, who{user: "auth0|nomail"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if tc.name == "no username" {
				req = d.duoReq(tc.w.user, false, nil)
			}
			st := d.state(tc.w.user, req, returnURL)
			r := httptest.NewRequest(http.MethodGet, "https://"+host+mfaURL(st), nil)
			a, err := d.m.IssueAssertion(tc.w.user, map[string]any{"client_ip": "203.0.113.7"}, "")
			if err != nil {
				t.Fatal(err)
			}
			if tc.name != "no username" {
				a = d.assertion(tc.w)
			}
			r.Header.Set(AssertionHeader, a)
			rec := httptest.NewRecorder()
			d.h.ServeHTTP(rec, r)
			if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "Duo is not set up correctly") {
				t.Fatalf("%d\n%s", rec.Code, rec.Body)
			}
			if len(d.fake.Authorizations()) != 0 {
				t.Error("went to duo")
			}
		})
	}
	if strings.Contains(d.logs.String(), d.fake.ClientSecret()) {
		t.Error("the duo secret is in the log")
	}
}

func TestDuoSetupOptions(t *testing.T) {
	for _, o := range []DuoOptions{
		{Fallback: "sms"},
		{UsernameClaims: []string{""}},
		{Timeout: -time.Second},
		{HTTPClient: http.DefaultClient, RootCAs: duotest.New(t, duotest.Config{}).CertPool()},
	} {
		if _, err := newDuoSetup(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// FuzzDuoCallback throws arbitrary queries at {prefix}duo/callback. The
// handler must not panic, must send its security headers, and may only
// succeed (303 to the return URL) for the one real callback.
func FuzzDuoCallback(f *testing.F) {
	var clk *storetest.Clock
	fake := duotest.New(f, duotest.Config{Now: func() time.Time { return clk.Now() }})
	e := newEnv(f, func(o *Options) { o.Duo.HTTPClient = fake.Client() })
	clk = e.clk
	d := &duoEnv{env: e, fake: fake}
	st := d.state(alice.user, d.duoReq(alice.user, false, nil), returnURL)
	rec := d.get(mfaURL(st), alice)
	u, err := fake.Visit(context.Background(), rec.Header().Get("Location"))
	if err != nil {
		f.Fatal(err)
	}
	good := u.RawQuery
	assertion := d.assertion(alice)
	f.Add(good)
	f.Add("state=" + u.Query().Get("state") + "&error=access_denied")
	f.Add("state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&duo_code=x")
	f.Add("")
	f.Add("state=%zz&duo_code=%00")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := httptest.NewRequest(http.MethodGet, "https://"+host+"/.stepup/duo/callback", nil)
		r.URL.RawQuery = rawQuery
		r.Header.Set(AssertionHeader, assertion)
		rec := httptest.NewRecorder()
		d.h.ServeHTTP(rec, r)
		checkSecurityHeaders(t, rec)
		switch rec.Code {
		case http.StatusSeeOther:
			if rec.Header().Get("Location") != returnURL || rawQuery != good {
				t.Fatalf("303 to %q for %q", rec.Header().Get("Location"), rawQuery)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusGone, http.StatusServiceUnavailable, http.StatusInternalServerError:
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
