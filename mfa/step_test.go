package mfa

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stepup-dev/stepup/session"
)

var alice = who{user: "auth0|alice", sid: "idp-session-1"}

func TestEnrolThenVerify(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	mfaName, rememberName, _ := e.m.CookieNames()

	// First sign-in: enrolment.
	st := e.state(alice.user, anyRemember, returnURL)
	page := e.get(mfaURL(st), alice)
	body := page.Body.String()
	// Provider "any": the choice of an authenticator app or a passkey.
	if page.Code != http.StatusOK || !strings.Contains(body, "Set up a second step") || !strings.Contains(body, `data-webauthn="create"`) {
		t.Fatalf("enrol page: %d\n%s", page.Code, body)
	}
	for _, want := range []string{`src="data:image/png;base64,`, `href="otpauth://totp/stepup:auth0%7Calice@example.com?`, `id="totp-secret"`,
		`name="remember" value="1"`, `<label for="remember">Remember this browser for 30 days</label>`,
		`autocomplete="one-time-code"`, `inputmode="numeric"`, `<label for="code">`, `name="viewport"`} {
		if !strings.Contains(body, want) {
			t.Errorf("enrol page lacks %q", want)
		}
	}
	secret := strings.ReplaceAll(scrape(t, reSecret, body), " ", "")
	if len(secret) != 32 {
		t.Fatalf("secret %q: want 32 base32 characters (160 bits)", secret)
	}
	// Reloading shows the same secret: the user may have scanned it.
	if again := scrape(t, reSecret, e.get(mfaURL(st), alice).Body.String()); strings.ReplaceAll(again, " ", "") != secret {
		t.Fatalf("reload shows another secret")
	}
	csrf := scrape(t, reCSRF, body)

	// A wrong code keeps the same secret and says so.
	wrong := e.post("/.stepup/mfa", alice, url.Values{"state": {st}, "csrf": {csrf}, "method": {"enrol"}, "code": {"000000"}})
	if wrong.Code != http.StatusOK || !strings.Contains(pageError(wrong.Body.String()), "does not match") {
		t.Fatalf("wrong enrolment code: %d %q", wrong.Code, pageError(wrong.Body.String()))
	}
	if _, err := e.h.loadTOTP(ctx, alice.user); !errors.Is(err, errNoFactor) {
		t.Fatalf("factor stored after a wrong code: %v", err)
	}

	rec := e.post("/.stepup/mfa", alice, url.Values{"state": {st}, "csrf": {csrf}, "method": {"enrol"}, "code": {e.code(secret, 0)}, "remember": {"1"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", rec.Code, rec.Body)
	}
	body = rec.Body.String()
	var codes []string
	for _, m := range reCodes.FindAllStringSubmatch(body, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != RecoveryCodeCount {
		t.Fatalf("got %d recovery codes, want %d", len(codes), RecoveryCodeCount)
	}
	if got := scrape(t, reLink, body); got != returnURL {
		t.Errorf("continue link %q, want %q", got, returnURL)
	}
	mc, rc := cookie(rec, mfaName), cookie(rec, rememberName)
	if mc == nil || rc == nil {
		t.Fatalf("cookies: mfa %v, remember %v", mc, rc)
	}
	if !mc.HttpOnly || !mc.Secure || mc.SameSite != http.SameSiteLaxMode {
		t.Errorf("mfa cookie attributes: %+v", mc)
	}
	s, err := e.m.VerifyMFASession(ctx, mc.Value, alice.user, alice.sid)
	if err != nil || !slices.Equal(s.Factors(), []string{session.FactorOTP}) || s.Realm != host {
		t.Fatalf("mfa session: %+v, %v", s, err)
	}
	if _, err := e.m.VerifyRemember(ctx, rc.Value, alice.user); err != nil {
		t.Fatalf("remember cookie: %v", err)
	}
	if _, err := e.m.LoadState(ctx, st, alice.user); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("state after success: %v, want consumed", err)
	}
	if n, _ := e.h.recoveryCodesLeft(ctx, alice.user); n != RecoveryCodeCount {
		t.Errorf("%d recovery codes stored, want %d", n, RecoveryCodeCount)
	}
	// Stored hashed, never in clear.
	recs, _ := e.store.ListUser(ctx, alice.user, "")
	for _, r := range recs {
		for _, c := range codes {
			canon, _ := normalizeRecovery(c)
			if strings.Contains(string(r.Value)+r.ID, canon) || strings.Contains(string(r.Value), c) {
				t.Errorf("record %s/%s holds a recovery code in clear", r.Kind, r.ID)
			}
		}
		if strings.Contains(string(r.Value), secret) {
			t.Errorf("record %s/%s holds the TOTP secret in clear", r.Kind, r.ID)
		}
	}

	// Next sign-in: verification, half a minute later.
	e.clk.Advance(30 * time.Second)
	st2, form := e.verifyForm(alice, session.Requirement{Provider: "google-authenticator"}, returnURL, "totp", e.code(secret, 0))
	rec = e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("verify: %d\n%s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("Location"); got != returnURL {
		t.Errorf("Location %q, want %q", got, returnURL)
	}
	if cookie(rec, rememberName) != nil {
		t.Errorf("remember cookie set though not asked for")
	}
	if _, err := e.m.VerifyMFASession(ctx, cookie(rec, mfaName).Value, alice.user, alice.sid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.LoadState(ctx, st2, alice.user); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("state after success: %v, want consumed", err)
	}
	if got := counterValue(e.h.metrics.verifications.WithLabelValues("totp", "success")); got != 2 {
		t.Errorf("success metric %v, want 2", got)
	}
	if got := counterValue(e.h.metrics.enrolments); got != 1 {
		t.Errorf("enrolments metric %v, want 1", got)
	}
}

func TestSkew(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)
	for _, tc := range []struct {
		name   string
		offset time.Duration
		want   int
	}{
		{"previous step", -30 * time.Second, http.StatusSeeOther},
		{"next step", 30 * time.Second, http.StatusSeeOther},
		{"two steps behind", -60 * time.Second, http.StatusOK},
		{"two steps ahead", 60 * time.Second, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clk.Advance(5 * time.Minute) // a fresh window each time
			_, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, tc.offset))
			if rec := e.post("/.stepup/mfa", alice, form); rec.Code != tc.want {
				t.Fatalf("got %d, want %d: %q", rec.Code, tc.want, pageError(rec.Body.String()))
			}
		})
	}
}

func TestReplayedCodeRefused(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)

	// The enrolment code's step is used: the same code cannot sign in.
	_, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	rec := e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusOK || !strings.Contains(pageError(rec.Body.String()), "already used") {
		t.Fatalf("replay of the enrolment code: %d %q", rec.Code, pageError(rec.Body.String()))
	}

	e.clk.Advance(30 * time.Second)
	code := e.code(secret, 0)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", code)
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("fresh code: %d", rec.Code)
	}
	// Same code, new state, same step: a replay.
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", code)
	rec = e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusOK || !strings.Contains(pageError(rec.Body.String()), "already used") {
		t.Fatalf("replayed code: %d %q", rec.Code, pageError(rec.Body.String()))
	}
	// An older code, still within the skew, after a newer one: refused too.
	e.clk.Advance(10 * time.Second)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, -30*time.Second))
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusOK {
		t.Fatalf("older code after a newer one: %d, want refused", rec.Code)
	}
	if got := counterValue(e.h.metrics.verifications.WithLabelValues("totp", "replay")); got != 3 {
		t.Errorf("replay metric %v, want 3", got)
	}
}

func TestLockout(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)
	e.clk.Advance(time.Minute)

	st, form := e.verifyForm(alice, anyRemember, returnURL, "totp", "000000")
	wantMsgs := []string{
		"That code is not right. Check that the time on your phone is correct. You can try 4 more times before a pause.",
		"That code is not right. Check that the time on your phone is correct. You can try 3 more times before a pause.",
		"That code is not right. Check that the time on your phone is correct. You can try 2 more times before a pause.",
		"That code is not right. Check that the time on your phone is correct. You can try once more before a pause.",
		"Too many wrong codes. Try again in 1 minute.",
	}
	for i, want := range wantMsgs {
		rec := e.post("/.stepup/mfa", alice, form)
		if got := pageError(rec.Body.String()); got != want {
			t.Fatalf("failure %d: %q, want %q", i+1, got, want)
		}
	}
	// Locked: even the right code is not checked.
	form.Set("code", e.code(secret, 0))
	rec := e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(pageError(rec.Body.String()), "Try again in 1 minute") {
		t.Fatalf("right code while locked: %d %q", rec.Code, pageError(rec.Body.String()))
	}
	// The GET page says so too.
	if got := pageError(e.get(mfaURL(st), alice).Body.String()); !strings.Contains(got, "Too many wrong codes") {
		t.Errorf("page while locked: %q", got)
	}
	// After the pause, the next failure pauses twice as long.
	e.clk.Advance(61 * time.Second)
	form.Set("code", "111111")
	if got := pageError(e.post("/.stepup/mfa", alice, form).Body.String()); got != "Too many wrong codes. Try again in 2 minutes." {
		t.Fatalf("sixth failure: %q", got)
	}
	e.clk.Advance(2*time.Minute + time.Second)
	if got := pageError(e.post("/.stepup/mfa", alice, form).Body.String()); got != "Too many wrong codes. Try again in 4 minutes." {
		t.Fatalf("seventh failure: %q", got)
	}
	// It lifts, and the right code works and clears the count.
	e.clk.Advance(4*time.Minute + time.Second)
	form.Set("code", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("right code after the pause: %d %q", rec.Code, pageError(rec.Body.String()))
	}
	e.clk.Advance(time.Minute)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", "000000")
	if got := pageError(e.post("/.stepup/mfa", alice, form).Body.String()); got != wantMsgs[0] {
		t.Fatalf("first failure after a success: %q", got)
	}
	if got := counterValue(e.h.metrics.lockouts.WithLabelValues("user")); got != 3 {
		t.Errorf("lockouts metric %v, want 3", got)
	}
	if got := counterValue(e.h.metrics.verifications.WithLabelValues("totp", "locked")); got != 1 {
		t.Errorf("locked metric %v, want 1", got)
	}
	if !strings.Contains(e.logs.String(), "mfa verification paused after too many wrong codes") {
		t.Errorf("no lockout log line")
	}
}

func TestLockoutPerAddress(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits = RateLimits{UserFailures: 100, IPFailures: 3} })
	const ip = "198.51.100.9"
	for i, user := range []string{"u1", "u2", "u3"} {
		w := who{user: user, ip: ip}
		e.enrol(w, anyRemember, false)
		e.clk.Advance(time.Minute)
		_, form := e.verifyForm(w, anyRemember, returnURL, "totp", "000000")
		rec := e.post("/.stepup/mfa", w, form)
		if want := i == 2; (rec.Code == http.StatusTooManyRequests) != want {
			t.Fatalf("failure %d from %s: %d", i+1, ip, rec.Code)
		}
	}
	// Another user from the same address is paused too; from elsewhere not.
	secret, _, _ := e.enrol(who{user: "u4", ip: "192.0.2.1"}, anyRemember, false)
	e.clk.Advance(30 * time.Second)
	_, form := e.verifyForm(who{user: "u4", ip: ip}, anyRemember, returnURL, "totp", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", who{user: "u4", ip: ip}, form); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("u4 from the paused address: %d", rec.Code)
	}
	if rec := e.post("/.stepup/mfa", who{user: "u4", ip: "192.0.2.1"}, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("u4 from another address: %d %q", rec.Code, pageError(rec.Body.String()))
	}
}

func TestRecoveryCodeWorksOnce(t *testing.T) {
	e := newEnv(t, nil)
	_, codes, _ := e.enrol(alice, anyRemember, false)
	mfaName, _, _ := e.m.CookieNames()

	// Typed in capitals, without dashes: still accepted.
	typed := strings.ToUpper(strings.ReplaceAll(codes[3], "-", " "))
	_, form := e.verifyForm(alice, anyRemember, returnURL, "recovery", typed)
	rec := e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("recovery code: %d %q", rec.Code, pageError(rec.Body.String()))
	}
	s, err := e.m.VerifyMFASession(context.Background(), cookie(rec, mfaName).Value, alice.user, alice.sid)
	if err != nil || !slices.Equal(s.Factors(), []string{session.FactorRecoveryCode}) {
		t.Fatalf("session %+v, %v", s, err)
	}
	// The page now says one fewer is left, and the code is spent.
	st := e.state(alice.user, anyRemember, returnURL)
	page := e.get(mfaURL(st)+"&method=recovery", alice).Body.String()
	if !strings.Contains(page, "You have 9 recovery codes left.") {
		t.Errorf("recovery page does not count 9 codes left")
	}
	form = url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, page)}, "method": {"recovery"}, "code": {codes[3]}}
	rec = e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusOK || !strings.HasPrefix(pageError(rec.Body.String()), "That recovery code is not valid or was already used. You can try") {
		t.Fatalf("reused recovery code: %d %q", rec.Code, pageError(rec.Body.String()))
	}
	// Another user's code does not work for alice.
	bob := who{user: "auth0|bob"}
	_, bobCodes, _ := e.enrol(bob, anyRemember, false)
	form.Set("code", bobCodes[0])
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusOK {
		t.Fatalf("bob's code for alice: %d", rec.Code)
	}
	if got := counterValue(e.h.metrics.verifications.WithLabelValues("recovery_code", "failure")); got != 2 {
		t.Errorf("recovery failures metric %v, want 2", got)
	}
}

func TestStateReplayRefused(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)
	e.clk.Advance(30 * time.Second)
	st, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("first use: %d", rec.Code)
	}
	e.clk.Advance(30 * time.Second)
	form.Set("code", e.code(secret, 0))
	rec := e.post("/.stepup/mfa", alice, form)
	body := rec.Body.String()
	if rec.Code != http.StatusGone || !strings.Contains(body, "This sign-in link has expired or was already used") {
		t.Fatalf("replayed state: %d\n%s", rec.Code, body)
	}
	if got := scrape(t, reLink, body); got != returnURL {
		t.Errorf("start again link %q, want the return URL", got)
	}
	if cookie(rec, "__Host-stepup_mfa") != nil {
		t.Errorf("replayed state set a session cookie")
	}
	// GET of a used state: same page, same link.
	if rec := e.get(mfaURL(st), alice); rec.Code != http.StatusGone {
		t.Errorf("GET of a used state: %d", rec.Code)
	}
	// An expired state behaves the same, and a form posted after the
	// state expired still links back to where the user was going.
	st, form = e.verifyForm(alice, anyRemember, returnURL, "totp", "")
	e.clk.Advance(11 * time.Minute)
	form.Set("code", e.code(secret, 0))
	rec = e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusGone || scrape(t, reLink, rec.Body.String()) != returnURL {
		t.Fatalf("expired state: %d", rec.Code)
	}
	// A state that never existed: "start again" goes to /.
	rec = e.get(mfaURL("v1.state.k1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), alice)
	if rec.Code != http.StatusBadRequest || scrape(t, reLink, rec.Body.String()) != "/" {
		t.Fatalf("forged state: %d", rec.Code)
	}
	if rec := e.get("/.stepup/mfa", alice); rec.Code != http.StatusBadRequest {
		t.Fatalf("no state: %d", rec.Code)
	}
}

func TestStateOfAnotherUser(t *testing.T) {
	e := newEnv(t, nil)
	bob := who{user: "auth0|bob"}
	ctx := context.Background()

	st := e.state(alice.user, anyRemember, returnURL)
	rec := e.get(mfaURL(st), bob)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "This link belongs to another account") {
		t.Fatalf("bob opens alice's link: %d\n%s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "totp-secret") || strings.Contains(rec.Body.String(), "reports/q3") {
		t.Errorf("bob sees alice's enrolment or destination")
	}
	// Bob's own form tokens do not carry over to alice's state.
	bobState := e.state(bob.user, anyRemember, returnURL)
	bobCSRF := scrape(t, reCSRF, e.get(mfaURL(bobState), bob).Body.String())
	for _, csrf := range []string{"", bobCSRF} {
		rec = e.post("/.stepup/mfa", bob, url.Values{"state": {st}, "csrf": {csrf}, "method": {"enrol"}, "code": {"123456"}})
		if rec.Code != http.StatusForbidden {
			t.Fatalf("bob posts to alice's state: %d", rec.Code)
		}
	}
	// Nothing was enrolled or consumed: alice can still use her link.
	if _, err := e.h.loadTOTP(ctx, alice.user); !errors.Is(err, errNoFactor) {
		t.Fatalf("alice has a factor: %v", err)
	}
	if _, err := e.m.LoadState(ctx, st, alice.user); err != nil {
		t.Fatalf("alice's state after bob: %v", err)
	}
	page := e.get(mfaURL(st), alice)
	if page.Code != http.StatusOK {
		t.Fatalf("alice's own link: %d", page.Code)
	}
	// Even with alice's form token, bob's identity is refused.
	aliceForm := url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, page.Body.String())}, "method": {"enrol"}, "code": {"123456"}}
	if rec := e.post("/.stepup/mfa", bob, aliceForm); rec.Code != http.StatusForbidden {
		t.Fatalf("bob with alice's form: %d", rec.Code)
	}
	if _, err := e.m.LoadState(ctx, st, alice.user); err != nil {
		t.Fatalf("alice's state after bob's post: %v", err)
	}
}

func TestIdentityRequired(t *testing.T) {
	e := newEnv(t, nil)
	st := e.state(alice.user, anyRemember, returnURL)
	other, err := session.NewManager(session.Config{Keys: []session.Key{testKey(t, "zz")}, Store: e.store, Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := other.IssueAssertion(alice.user, nil, "")
	expired := e.assertion(alice)
	for _, tc := range []struct {
		name, header string
		advance      time.Duration
	}{
		{"missing", "", 0},
		{"garbage", "not-a-token", 0},
		{"signed by another key", forged, 0},
		{"a state token", st, 0},
		{"expired", expired, 3 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clk.Advance(tc.advance)
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[AssertionHeader] = tc.header
			}
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				rec := e.do(method, mfaURL(st), who{}, url.Values{}, nil, hdr)
				if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "Please sign in again") {
					t.Errorf("%s: %d", method, rec.Code)
				}
			}
		})
	}
}

func TestOpenRedirectRefused(t *testing.T) {
	for _, ret := range []string{
		"https://evil.example/",
		"//evil.example/x",
		"/\\evil.example",
		"https:evil.example",
		"https://app.example@evil.example/",
		"https://evil.example\\@app.example/",
		"javascript:alert(1)",
		"http://app.example/", // not https
		"https://app.example%2f%2fevil.example/",
		"https://app.example//evil.example",
		"https://app.example/%2f%2fevil.example",
		"https://app.example/\t/evil",
		"",
	} {
		t.Run(ret, func(t *testing.T) {
			e := newEnv(t, nil)
			secret, _, _ := e.enrol(alice, anyRemember, false)
			e.clk.Advance(30 * time.Second)
			_, form := e.verifyForm(alice, anyRemember, ret, "totp", e.code(secret, 0))
			rec := e.post("/.stepup/mfa", alice, form)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("%d", rec.Code)
			}
			if got := rec.Header().Get("Location"); got != "/" {
				t.Errorf("Location %q, want /", got)
			}
		})
	}
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)
	e.clk.Advance(30 * time.Second)
	st, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	otherState, _ := e.verifyForm(alice, anyRemember, returnURL, "totp", "")
	otherStateCSRF := scrape(t, reCSRF, e.get(mfaURL(otherState), alice).Body.String())
	recoveryCSRF := scrape(t, reCSRF, e.get(mfaURL(st)+"&method=recovery", alice).Body.String())
	expiredCSRF, _ := e.h.csrfToken(alice.user, bindState(st), "totp", "")
	good := form.Get("csrf")

	for _, tc := range []struct {
		name string
		csrf string
		hdr  map[string]string
	}{
		{"no token", "", nil},
		{"garbage", "x", nil},
		{"token of another state", otherStateCSRF, nil},
		{"token of another form", recoveryCSRF, nil},
		{"token with its signature altered", good[:len(good)-2] + "AA", nil},
		{"cross-site fetch", good, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site fetch", good, map[string]string{"Sec-Fetch-Site": "same-site"}},
		{"other origin", good, map[string]string{"Origin": "https://evil.example"}},
		{"null origin without fetch metadata", good, map[string]string{"Origin": "null", "Sec-Fetch-Site": ""}},
		{"null origin from another site", good, map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}},
		{"http origin", good, map[string]string{"Origin": "http://app.example"}},
		{"expired token", expiredCSRF, map[string]string{"advance": "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			f.Set("csrf", tc.csrf)
			hdr := map[string]string{"Origin": "https://" + host, "Sec-Fetch-Site": "same-origin"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			if hdr["advance"] != "" {
				delete(hdr, "advance")
				e.clk.Advance(csrfTTL + time.Second)
				defer func() { e.clk.Advance(-csrfTTL - time.Second) }()
			}
			rec := e.do(http.MethodPost, "/.stepup/mfa", alice, f, nil, hdr)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "This form could not be accepted") {
				t.Fatalf("%d", rec.Code)
			}
		})
	}
	// The state survived all that, and the right form still works.
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("good form after the refusals: %d %q", rec.Code, pageError(rec.Body.String()))
	}
	// A browser that sends neither Origin nor Sec-Fetch-Site relies on the token.
	e.clk.Advance(30 * time.Second)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	if rec := e.do(http.MethodPost, "/.stepup/mfa", alice, form, nil, nil); rec.Code != http.StatusSeeOther {
		t.Fatalf("no origin headers: %d", rec.Code)
	}
}

func TestRememberOnlyWhenAllowed(t *testing.T) {
	e := newEnv(t, nil)
	_, rememberName, _ := e.m.CookieNames()
	noRemember := session.Requirement{Provider: "any", AllowRemember: false}

	// Enrolment page: no box; a forged remember=1 is ignored.
	st := e.state(alice.user, noRemember, returnURL)
	body := e.get(mfaURL(st), alice).Body.String()
	if strings.Contains(body, `name="remember"`) || strings.Contains(body, "Remember this browser") {
		t.Fatalf("remember box offered though the rule forbids it")
	}
	secret := strings.ReplaceAll(scrape(t, reSecret, body), " ", "")
	rec := e.post("/.stepup/mfa", alice, url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, body)}, "method": {"enrol"}, "code": {e.code(secret, 0)}, "remember": {"1"}})
	if rec.Code != http.StatusOK || cookie(rec, rememberName) != nil {
		t.Fatalf("enrol with a forged remember: %d, remember cookie %v", rec.Code, cookie(rec, rememberName))
	}
	// Verification page: same.
	e.clk.Advance(30 * time.Second)
	st, form := e.verifyForm(alice, noRemember, returnURL, "totp", e.code(secret, 0))
	if strings.Contains(e.get(mfaURL(st), alice).Body.String(), `name="remember"`) {
		t.Fatalf("remember box offered on the verify page")
	}
	form.Set("remember", "1")
	rec = e.post("/.stepup/mfa", alice, form)
	if rec.Code != http.StatusSeeOther || cookie(rec, rememberName) != nil {
		t.Fatalf("verify with a forged remember: %d, remember cookie %v", rec.Code, cookie(rec, rememberName))
	}
	devices, _ := e.m.ListUser(context.Background(), alice.user)
	if len(devices.Devices) != 0 {
		t.Fatalf("devices remembered: %+v", devices.Devices)
	}
	// Allowed and ticked: remembered.
	e.clk.Advance(30 * time.Second)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	form.Set("remember", "1")
	if rec := e.post("/.stepup/mfa", alice, form); cookie(rec, rememberName) == nil {
		t.Fatalf("remember not set when allowed and ticked")
	}
}

func TestEnrolNetworks(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.EnrollNetworks = []string{"corporate"} })
	outside := who{user: "auth0|carol", networks: []string{"guest-wifi"}}
	inside := who{user: "auth0|carol", networks: []string{"corporate"}}

	st := e.state(outside.user, anyRemember, returnURL)
	rec := e.get(mfaURL(st), outside)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "You need to enrol your authenticator from the office network first") {
		t.Fatalf("enrol outside: %d\n%s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "totp-secret") {
		t.Fatal("secret shown outside the enrolment networks")
	}
	// A form obtained inside cannot be posted from outside.
	page := e.get(mfaURL(st), inside).Body.String()
	secret := strings.ReplaceAll(scrape(t, reSecret, page), " ", "")
	form := url.Values{"state": {st}, "csrf": {scrape(t, reCSRF, page)}, "method": {"enrol"}, "code": {e.code(secret, 0)}}
	if rec := e.post("/.stepup/mfa", outside, form); rec.Code != http.StatusForbidden {
		t.Fatalf("enrol post from outside: %d", rec.Code)
	}
	if rec := e.post("/.stepup/mfa", inside, form); rec.Code != http.StatusOK {
		t.Fatalf("enrol inside: %d %q", rec.Code, pageError(rec.Body.String()))
	}
	// Once enrolled, verification works from anywhere.
	e.clk.Advance(30 * time.Second)
	_, form = e.verifyForm(outside, anyRemember, returnURL, "totp", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", outside, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("verify outside: %d", rec.Code)
	}
}

func TestUnsupportedRequirement(t *testing.T) {
	e := newEnv(t, nil)
	st := e.state(alice.user, session.Requirement{Provider: "sms"}, returnURL)
	rec := e.get(mfaURL(st), alice)
	if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "This sign-in method is not available yet") {
		t.Fatalf("sms: %d\n%s", rec.Code, rec.Body)
	}
	// A rule redirect's state belongs to {prefix}continue, not to this page.
	tok, err := e.m.NewState(context.Background(), session.State{User: alice.user, Host: host, ReturnURL: returnURL, RedirectURL: "https://mfa.example/start", Completes: session.RedirectFactor("mfa-example"), Requirement: anyRemember})
	if err != nil {
		t.Fatal(err)
	}
	if rec := e.get(mfaURL(tok), alice); rec.Code != http.StatusBadRequest {
		t.Fatalf("redirect state: %d", rec.Code)
	}
	if _, err := e.m.LoadState(context.Background(), tok, alice.user); err != nil {
		t.Fatalf("the redirect's state was used up by the mfa page: %v", err)
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/.stepup/", http.StatusNotFound},
		{http.MethodGet, "/.stepup/nope", http.StatusNotFound},
		{http.MethodGet, "/elsewhere", http.StatusNotFound},
		{http.MethodPut, "/.stepup/mfa", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/.stepup/factors", http.StatusMethodNotAllowed},
		{http.MethodHead, "/.stepup/mfa", http.StatusBadRequest},
	} {
		rec := e.do(tc.method, tc.path, alice, nil, nil, nil)
		if rec.Code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
	// Oversized bodies are refused before anything else.
	big := url.Values{"code": {strings.Repeat("1", maxFormBytes)}}
	if rec := e.post("/.stepup/mfa", alice, big); rec.Code != http.StatusBadRequest {
		t.Errorf("oversized form: %d", rec.Code)
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t, nil)
	secret, codes, rec := e.enrol(alice, anyRemember, true)
	mfaName, rememberName, _ := e.m.CookieNames()
	var secrets []string
	secrets = append(secrets, secret, cookie(rec, mfaName).Value, cookie(rec, rememberName).Value)
	secrets = append(secrets, codes...)
	for _, c := range codes {
		canon, _ := normalizeRecovery(c)
		secrets = append(secrets, canon)
	}
	// Wrong codes, a recovery code, a replay, a lockout.
	e.clk.Advance(30 * time.Second)
	st, form := e.verifyForm(alice, anyRemember, returnURL, "totp", "")
	secrets = append(secrets, st, form.Get("csrf"))
	for _, c := range []string{"123456", "654321", e.code(secret, 0), e.code(secret, 0), "999999", "888888", "777777"} {
		form.Set("code", c)
		e.post("/.stepup/mfa", alice, form)
		secrets = append(secrets, c)
	}
	e.clk.Advance(2 * time.Hour)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "recovery", codes[0])
	e.post("/.stepup/mfa", alice, form)
	secrets = append(secrets, e.assertion(alice))

	logs := e.logs.String()
	if !strings.Contains(logs, "mfa verification failed") || !strings.Contains(logs, "mfa authenticator enrolled") {
		t.Fatalf("expected log lines missing:\n%s", logs)
	}
	for _, s := range secrets {
		if len(s) >= 6 && strings.Contains(logs, s) {
			t.Errorf("logs contain a secret value %q", s)
		}
	}
}

func TestHeadersOnEveryPage(t *testing.T) {
	// checkSecurityHeaders runs on every response of every test through
	// env.do; here the pages no other test reaches.
	e := newEnv(t, nil)
	rec := e.do(http.MethodGet, "/favicon.ico", who{}, nil, nil, nil)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("%d", rec.Code)
	}
	if got, want := rec.Header().Get("Content-Type"), "text/html; charset=utf-8"; got != want {
		t.Errorf("Content-Type %q, want %q", got, want)
	}
}

func TestSealedWithOldKeyIsResealed(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, _ := e.enrol(alice, anyRemember, false)
	ctx := context.Background()

	// Rotate: a new key in front, the old one still opens.
	k2 := testKey(t, "k2")
	rotated, err := session.NewSealer([]session.Key{k2, e.keys[0]})
	if err != nil {
		t.Fatal(err)
	}
	o := e.opts
	o.Sealer, o.Metrics = rotated, nil
	if e.h, err = New(o); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(30 * time.Second)
	_, form := e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("verify after rotation: %d", rec.Code)
	}
	rec, err := e.h.loadTOTP(ctx, alice.user)
	if err != nil {
		t.Fatal(err)
	}
	if got := sealedKeyID(rec.Sealed); got != "k2" {
		t.Fatalf("secret sealed with %q after use, want k2", got)
	}
	// The old key can go now.
	onlyNew, _ := session.NewSealer([]session.Key{k2})
	o.Sealer = onlyNew
	if e.h, err = New(o); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(30 * time.Second)
	_, form = e.verifyForm(alice, anyRemember, returnURL, "totp", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("verify with the new key only: %d", rec.Code)
	}
	// A record sealed for another user does not open for alice.
	bobRec, _ := e.store.GetUser(ctx, alice.user, KindFactor, factorTOTP)
	if err := e.store.PutUser(ctx, "auth0|mallory", KindFactor, factorTOTP, bobRec, time.Hour); err != nil {
		t.Fatal(err)
	}
	mallory := who{user: "auth0|mallory"}
	e.clk.Advance(30 * time.Second)
	_, form = e.verifyForm(mallory, anyRemember, returnURL, "totp", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", mallory, form); rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "cannot be checked") {
		t.Fatalf("copied record: %d", rec.Code)
	}
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, nil)
	_, err := New(Options{Prefix: "stepup", Issuer: "a:b", Limits: RateLimits{Lockout: time.Hour, MaxLockout: time.Minute}, Messages: map[string]string{"nope": "x"}})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, want := range []string{"prefix", "no session manager", "no store", "no sealer", "issuer", "max lockout", "unknown message ids"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Registering twice on one registry fails cleanly.
	if _, err := New(e.opts); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("second registration: %v", err)
	}
	// Translations replace text.
	o := e.opts
	o.Metrics = nil
	o.Messages = map[string]string{"verify_title": "Geben Sie Ihren Code ein", "lang": "de"}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	e.enrol(alice, anyRemember, false)
	e.clk.Advance(30 * time.Second)
	st := e.state(alice.user, anyRemember, returnURL)
	body := e.get(mfaURL(st), alice).Body.String()
	if !strings.Contains(body, `<html lang="de">`) || !strings.Contains(body, "<h1>Geben Sie Ihren Code ein</h1>") {
		t.Errorf("translation not applied:\n%s", body)
	}
}

func TestDefaultMessagesIsACopy(t *testing.T) {
	m := DefaultMessages()
	m["lang"] = "xx"
	if diff := cmp.Diff("en", DefaultMessages()["lang"]); diff != "" {
		t.Error(diff)
	}
}

// TestRacingSubmissions: the same form posted many times at once succeeds
// exactly once, with a code and with a recovery code.
func TestRacingSubmissions(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits = RateLimits{UserFailures: 100, IPFailures: 100} })
	secret, codes, _ := e.enrol(alice, anyRemember, false)
	for _, tc := range []struct {
		method, code string
		sameState    bool
	}{
		{"totp", "", true},
		{"totp", "", false},
		{"recovery", codes[0], false},
	} {
		e.clk.Advance(time.Minute)
		if tc.method == "totp" {
			tc.code = e.code(secret, 0)
		}
		const n = 8
		forms := make([]url.Values, n)
		for i := range forms {
			if i == 0 || !tc.sameState {
				_, forms[i] = e.verifyForm(alice, anyRemember, returnURL, tc.method, tc.code)
			} else {
				forms[i] = forms[0]
			}
		}
		results := make(chan int, n)
		for i := range n {
			go func() { results <- e.post("/.stepup/mfa", alice, forms[i]).Code }()
		}
		ok := 0
		for range n {
			if <-results == http.StatusSeeOther {
				ok++
			}
		}
		if ok != 1 {
			t.Errorf("%s (same state %v): %d successes, want 1", tc.method, tc.sameState, ok)
		}
	}
}
