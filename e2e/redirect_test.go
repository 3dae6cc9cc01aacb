package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// customHost is the custom MFA service of seed 003's redirect snippet
// ("https://your_custom_mfa"), which the tests run themselves.
const customHost = "your_custom_mfa"

// conditionRule defines the condition() that seed 003's redirect snippet
// calls but leaves undefined (the pattern of rules/seeds_test.go).
const conditionRule = `function (user, context, callback) {
  global.condition = function () { return true; };
  callback(null, user, context);
}
`

// customMFA is a small custom MFA service: it "authenticates" whoever the
// test says and sends the browser back to stepup's continue endpoint with
// the state and a signed token (HS256 with sub, state, iat, exp, jti).
type customMFA struct {
	srv   *httptest.Server
	cert  *x509.Certificate
	front string
	param string

	mu     sync.Mutex
	user   string
	secret []byte
	method jwt.SigningMethod
	key    any
	mutate func(jwt.MapClaims)
}

func newCustomMFA(t *testing.T, front string, secret []byte, param string) *customMFA {
	t.Helper()
	c := &customMFA{front: front, secret: secret, param: param}
	c.reset("")
	tlsCert, cert := extSelfSignedCert(t, customHost)
	c.cert = cert
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serve))
	c.srv.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12}
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	return c
}

// reset makes the service behave for user.
func (c *customMFA) reset(user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.user, c.method, c.key, c.mutate = user, jwt.SigningMethodHS256, c.secret, nil
}

// misbehave makes the next tokens differ from a good one.
func (c *customMFA) misbehave(method jwt.SigningMethod, key any, mutate func(jwt.MapClaims)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if method != nil {
		c.method, c.key = method, key
	}
	c.mutate = mutate
}

// host routes the browser's connections for the service's name.
func (c *customMFA) host() extHost {
	return extHost{name: customHost + ":443", addr: c.srv.Listener.Addr().String()}
}

// token signs what the service says about state.
func (c *customMFA) token(state string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	now := time.Now()
	claims := jwt.MapClaims{"sub": c.user, "state": state, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": hex.EncodeToString(jti)}
	if c.mutate != nil {
		c.mutate(claims)
	}
	return jwt.NewWithClaims(c.method, claims).SignedString(c.key)
}

func (c *customMFA) serve(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state == "" {
		http.Error(w, "no state", http.StatusBadRequest)
		return
	}
	tok, err := c.token(state)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// The code was right: back to the protected host.
	http.Redirect(w, r, c.front+"/.stepup/continue?"+url.Values{"state": {state}, c.param: {tok}}.Encode(), http.StatusFound)
}

// TestRedirectSeedRoundTrip: seed 003's "Use a custom MFA service"
// snippet, unmodified, against a custom service whose token stepup
// verifies itself (mfa.redirect.verify).
func TestRedirectSeedRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := []byte("custom-mfa-hs256-shared-secret-0123456789")
	st := startExtStack(t, extConfig{
		Rules: []string{writeFile(t, dir, "condition.js", []byte(conditionRule)), seedRulePath(t, "003_redirect.js")},
		MFA: "  redirect:\n    services:\n      - name: custom\n        url: https://" + customHost + "\n" +
			"        verify:\n          secret: {file: " + writeFile(t, dir, "secret", secret) + "}\n",
	})
	svc := newCustomMFA(t, st.front.URL, secret, "token")
	newBrowser := func(sub string) *webClient {
		return st.newBrowser(t, sub, strings.TrimPrefix(sub, "auth0|")+"@corp.example", []*x509.Certificate{svc.cert}, svc.host())
	}
	report := st.appURL("/payroll/report?month=11")
	toService := func(b *webClient) extPage {
		t.Helper()
		return expectPage(t, "the application", b.get(report), http.StatusFound, "https://"+customHost+"?state=")
	}
	back := func(b *webClient) extPage {
		t.Helper()
		return expectPage(t, "the custom service", b.get(toService(b).location), http.StatusFound, st.front.URL+"/.stepup/continue?state=")
	}

	t.Run("full round trip", func(t *testing.T) {
		svc.reset("auth0|alice")
		alice := newBrowser("auth0|alice")
		b := back(alice)
		done := expectPage(t, "continue", alice.get(b.location), http.StatusSeeOther, report)
		expectPage(t, "the application afterwards", alice.get(done.location), http.StatusOK, "application")
		h, ok := st.app.last("/payroll/report")
		if !ok || h.Get("X-Stepup-User") != "auth0|alice" || h.Get("X-Stepup-Mfa") != "redirect:custom" {
			t.Fatalf("upstream headers %v", h)
		}
		if strings.Contains(strings.Join(h.Values("Cookie"), ";"), "stepup_") {
			t.Error("stepup's cookies reached the application")
		}
		// The rules still set context.redirect on every request: the
		// service's factor in the MFA session satisfies it.
		expectPage(t, "another page", alice.get(st.appURL("/payroll/other")), http.StatusOK, "application")
		// The continue link works once.
		expectPage(t, "continue again", alice.get(b.location), http.StatusGone, "already used")
	})

	t.Run("form post back", func(t *testing.T) {
		svc.reset("auth0|alice")
		alice := newBrowser("auth0|alice")
		loc, _ := url.Parse(toService(alice).location)
		state := loc.Query().Get("state")
		tok, err := svc.token(state)
		if err != nil {
			t.Fatal(err)
		}
		done := expectPage(t, "continue (POST)", alice.post(st.front.URL+"/.stepup/continue", url.Values{"state": {state}, "token": {tok}}), http.StatusSeeOther, report)
		expectPage(t, "the application afterwards", alice.get(done.location), http.StatusOK, "application")
	})

	t.Run("another user's state is refused and left for its owner", func(t *testing.T) {
		svc.reset("auth0|bob")
		bob := newBrowser("auth0|bob")
		b := back(bob)
		mallory := newBrowser("auth0|alice")
		expectPage(t, "alice with bob's link", mallory.get(b.location), http.StatusForbidden, "another account")
		expectPage(t, "alice's application", mallory.get(report), http.StatusFound, "https://"+customHost)
		done := expectPage(t, "bob with his link", bob.get(b.location), http.StatusSeeOther, report)
		expectPage(t, "bob's application", bob.get(done.location), http.StatusOK, "application")
	})

	for _, tc := range []struct {
		name   string
		user   string
		method jwt.SigningMethod
		key    any
		mutate func(jwt.MapClaims)
	}{
		{name: "a token for another user", user: "auth0|bob"},
		{name: "an expired token", user: "auth0|alice", mutate: func(c jwt.MapClaims) {
			c["iat"], c["exp"] = time.Now().Add(-20*time.Minute).Unix(), time.Now().Add(-10*time.Minute).Unix()
		}},
		{name: "an unsigned token (alg none)", user: "auth0|alice", method: jwt.SigningMethodNone, key: jwt.UnsafeAllowNoneSignatureType},
		{name: "a token signed with another secret", user: "auth0|alice", method: jwt.SigningMethodHS256, key: []byte("not-the-shared-secret-but-as-long-as-it")},
		{name: "a token for another state", user: "auth0|alice", mutate: func(c jwt.MapClaims) { c["state"] = "another" }},
		{name: "a token without jti", user: "auth0|alice", mutate: func(c jwt.MapClaims) { delete(c, "jti") }},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			svc.reset(tc.user)
			svc.misbehave(tc.method, tc.key, tc.mutate)
			alice := newBrowser("auth0|alice")
			b := back(alice)
			expectPage(t, "continue", alice.get(b.location), http.StatusForbidden, "could not be confirmed")
			// No MFA session came of it.
			expectPage(t, "the application", alice.get(report), http.StatusFound, "https://"+customHost)
		})
	}

	t.Run("the log holds no secret", func(t *testing.T) {
		if logs := st.stepup.Stderr(); strings.Contains(logs, string(secret)) || strings.Contains(logs, "token=") {
			t.Error("the shared secret or a token is in stepup's log")
		}
	})

	t.Run("refused: no token at all", func(t *testing.T) {
		alice := newBrowser("auth0|alice")
		loc, _ := url.Parse(toService(alice).location)
		expectPage(t, "continue", alice.get(st.front.URL+"/.stepup/continue?state="+url.QueryEscape(loc.Query().Get("state"))), http.StatusForbidden, "could not be confirmed")
	})
}

// smsRule is Auth0's custom-MFA pattern in which the rule verifies the
// service's token itself with jsonwebtoken and a base64 secret.
const smsRule = `function (user, context, callback) {
  if (context.protocol !== 'redirect-callback') {
    context.redirect = { url: 'https://your_custom_mfa/sms' };
    return callback(null, user, context);
  }
  var jwt = require('jsonwebtoken');
  var token = context.request.query.id_token || context.request.body.id_token;
  jwt.verify(token, Buffer.from(configuration.CUSTOM_MFA_SECRET, 'base64'), function (err, decoded) {
    if (err) {
      return callback(new UnauthorizedError('The one-time code could not be verified.'));
    }
    if (decoded.sub !== user.user_id || decoded.state !== context.request.query.state) {
      return callback(new UnauthorizedError('The one-time code was not for this sign-in.'));
    }
    callback(null, user, context);
  });
}
`

// TestRedirectRuleVerifiesToken: the rule checks the returned id_token
// with require('jsonwebtoken'); stepup's own verification is off.
func TestRedirectRuleVerifiesToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := []byte("sms-service-secret-of-forty-bytes-length")
	st := startExtStack(t, extConfig{
		Rules:         []string{writeFile(t, dir, "sms.js", []byte(smsRule))},
		Configuration: map[string]string{"CUSTOM_MFA_SECRET": base64.StdEncoding.EncodeToString(secret)},
		MFA:           "  redirect:\n    services:\n      - name: sms\n        url: https://" + customHost + "/sms\n        verified_by_rule: true\n",
	})
	svc := newCustomMFA(t, st.front.URL, secret, "id_token")
	report := st.appURL("/payroll/report?month=11")
	newBrowser := func() *webClient {
		return st.newBrowser(t, "auth0|alice", "alice@corp.example", []*x509.Certificate{svc.cert}, svc.host())
	}
	start := func(b *webClient) extPage {
		t.Helper()
		toService := expectPage(t, "the application", b.get(report), http.StatusFound, "https://"+customHost+"/sms?state=")
		return expectPage(t, "the custom service", b.get(toService.location), http.StatusFound, st.front.URL+"/.stepup/continue?")
	}

	t.Run("full round trip", func(t *testing.T) {
		svc.reset("auth0|alice")
		alice := newBrowser()
		done := expectPage(t, "continue", alice.get(start(alice).location), http.StatusSeeOther, report)
		expectPage(t, "the application afterwards", alice.get(done.location), http.StatusOK, "application")
		if h, _ := st.app.last("/payroll/report"); h.Get("X-Stepup-Mfa") != "redirect:sms" {
			t.Errorf("x-stepup-mfa %q", h.Get("X-Stepup-Mfa"))
		}
	})
	t.Run("the rule refuses a forged token", func(t *testing.T) {
		svc.reset("auth0|alice")
		svc.misbehave(jwt.SigningMethodHS256, []byte("forged-secret-forged-secret-forged-secret"), nil)
		alice := newBrowser()
		expectPage(t, "continue", alice.get(start(alice).location), http.StatusForbidden, "The one-time code could not be verified.")
		expectPage(t, "the application", alice.get(report), http.StatusFound, "https://"+customHost)
	})
	t.Run("the rule refuses another user's token", func(t *testing.T) {
		svc.reset("auth0|bob")
		alice := newBrowser()
		expectPage(t, "continue", alice.get(start(alice).location), http.StatusForbidden, "The one-time code was not for this sign-in.")
	})
}
