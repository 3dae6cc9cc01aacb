// Package duotest runs a fake Duo for tests: the three endpoints of Duo's
// OIDC Auth API (Universal Prompt, Web SDK v4) over TLS on a loopback port,
// checking what a real client must send and answering as Duo documents.
//
//	POST /oauth/v1/health_check  client_id + client_assertion (HS512, aud = this URL)
//	GET  /oauth/v1/authorize     client_id, response_type=code, request (HS512 JWT)
//	POST /oauth/v1/token         authorization_code grant with client_assertion
//
// The authorize endpoint plays the user: by default it redirects at once to
// redirect_uri?state=…&duo_code=… with the configured [Outcome]; with
// [Config.Interactive] it shows a page with Approve, Deny and Report
// buttons for a browser test to click. Codes are single-use and bound to
// the client and redirect URI; the id_token is HS512 with the client secret
// and carries preferred_username, nonce, auth_time, auth_result and
// auth_context. Knobs ([Server.SetFault], [Server.SetHealthy],
// [Server.SetDelay]) produce the failures a client must refuse.
//
// Point a client at it with [Server.Host] as API host and [Server.Client]
// (or [Server.CertPool], or [Server.CACertPEM] for another process) to
// trust its certificate.
package duotest

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test credentials, valid in length for a Duo client.
const (
	DefaultClientID     = "DIFAKEDUOCLIENTID001"
	DefaultClientSecret = "fakeduoclientsecretfakeduoclientsecret01"
)

// Outcome is what the simulated user (or Duo's policy) decides.
type Outcome string

// Outcomes.
const (
	// Allow: the user approved the push.
	Allow Outcome = "allow"
	// Deny: the user denied the push.
	Deny Outcome = "deny"
	// Fraud: the user denied the push and reported it as fraud.
	Fraud Outcome = "fraud"
)

// Fault makes the fake misbehave in one way, from the next request on.
type Fault string

// Faults.
const (
	// NoFault: behave.
	NoFault Fault = ""
	// BadSignature signs the id_token with another secret.
	BadSignature Fault = "bad-signature"
	// WrongAlgorithm signs the id_token with HS256 and the right secret.
	WrongAlgorithm Fault = "wrong-algorithm"
	// WrongAudience issues the id_token to another client id.
	WrongAudience Fault = "wrong-audience"
	// WrongIssuer issues the id_token from another host.
	WrongIssuer Fault = "wrong-issuer"
	// Expired issues an id_token that expired ten minutes ago.
	Expired Fault = "expired"
	// NoExpiry issues an id_token without exp.
	NoExpiry Fault = "no-expiry"
	// WrongUsername puts another user in preferred_username.
	WrongUsername Fault = "wrong-username"
	// WrongNonce puts another nonce in the id_token.
	WrongNonce Fault = "wrong-nonce"
	// NoIDToken answers the token request 200 without an id_token.
	NoIDToken Fault = "no-id-token"
	// ServerError answers the token request 500.
	ServerError Fault = "server-error"
)

const (
	codeLifetime    = 5 * time.Minute
	idTokenLifetime = 5 * time.Minute
	leeway          = 60 * time.Second
	clientAssertion = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Config configures a fake Duo. The zero value is ready to use.
type Config struct {
	// ClientID and ClientSecret default to DefaultClientID and
	// DefaultClientSecret.
	ClientID, ClientSecret string
	// Now is the fake's clock. Nil means time.Now.
	Now func() time.Time
	// Outcome is the user's decision in non-interactive mode; default Allow.
	Outcome Outcome
	// Fault is the initial fault; see [Server.SetFault].
	Fault Fault
	// Interactive makes the authorize endpoint show a page with one button
	// per outcome instead of redirecting at once.
	Interactive bool
}

// Authorization is one authorize request the fake accepted, as the
// request JWT said it.
type Authorization struct {
	// Username is duo_uname, the user to authenticate.
	Username string
	// State is the state Duo returns to the callback.
	State string
	// Nonce is the nonce claim, empty when absent.
	Nonce string
	// RedirectURI is where the browser goes back to.
	RedirectURI string
	// UseDuoCode is use_duo_code_attribute: the callback then carries
	// duo_code instead of code.
	UseDuoCode bool
}

type grant struct {
	auth    Authorization
	outcome Outcome
	expires time.Time
	used    bool
}

// Server is a running fake Duo. Its methods are safe for concurrent use.
type Server struct {
	srv         *httptest.Server
	clientID    string
	secret      []byte
	now         func() time.Time
	interactive bool

	mu             sync.Mutex
	outcome        Outcome
	fault          Fault
	down           bool
	delay          time.Duration
	grants         map[string]*grant
	pending        map[string]Authorization
	jtis           map[string]time.Time
	authorizations []Authorization
}

// New starts a fake Duo on a loopback port and closes it when tb's test
// ends.
func New(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s := &Server{
		clientID:    cfg.ClientID,
		secret:      []byte(cfg.ClientSecret),
		now:         cfg.Now,
		interactive: cfg.Interactive,
		outcome:     cfg.Outcome,
		fault:       cfg.Fault,
		grants:      map[string]*grant{},
		pending:     map[string]Authorization{},
		jtis:        map[string]time.Time{},
	}
	if s.clientID == "" {
		s.clientID = DefaultClientID
	}
	if len(s.secret) == 0 {
		s.secret = []byte(DefaultClientSecret)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.outcome == "" {
		s.outcome = Allow
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/v1/health_check", s.healthCheck)
	mux.HandleFunc("GET /oauth/v1/authorize", s.authorize)
	mux.HandleFunc("POST /frame/decide", s.decide)
	mux.HandleFunc("POST /oauth/v1/token", s.token)
	s.srv = httptest.NewUnstartedServer(mux)
	// TLS handshake failures are expected (tests of untrusted certificates).
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.srv.StartTLS()
	tb.Cleanup(s.Close)
	return s
}

// Close stops the server. It is called automatically at the end of the
// test; calling it earlier simulates Duo going away.
func (s *Server) Close() { s.srv.Close() }

// URL is the fake's base URL, https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.srv.URL }

// Host is the fake's API host, 127.0.0.1:PORT.
func (s *Server) Host() string { return strings.TrimPrefix(s.srv.URL, "https://") }

// ClientID is the client id the fake accepts.
func (s *Server) ClientID() string { return s.clientID }

// ClientSecret is the client secret the fake signs and verifies with.
func (s *Server) ClientSecret() string { return string(s.secret) }

// Client returns an http.Client that trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// CertPool returns a pool holding the fake's certificate.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// CACertPEM returns the fake's certificate in PEM, for a process that
// reads its trusted CAs from a file.
func (s *Server) CACertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// SetOutcome sets the simulated user's decision for the next
// non-interactive authorizations.
func (s *Server) SetOutcome(o Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome = o
}

// SetFault sets the fault applied from the next request on; NoFault
// clears it.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetHealthy(false) makes the health check answer 503 {"stat": "FAIL"}.
func (s *Server) SetHealthy(ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = !ok
}

// SetDelay makes the health check and token endpoints wait d before
// answering (or until the client gives up).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Authorizations returns the authorize requests accepted so far.
func (s *Server) Authorizations() []Authorization {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Authorization(nil), s.authorizations...)
}

// Visit plays the browser's part in non-interactive mode: it GETs authURL
// from the fake and returns the callback URL the fake redirects to. An
// authorize request the fake refuses is an error carrying its message.
func (s *Server) Visit(ctx context.Context, authURL string) (*url.URL, error) {
	hc := *s.srv.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("fake duo answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return url.Parse(resp.Header.Get("Location"))
}

func (s *Server) state() (Outcome, Fault, bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcome, s.fault, s.down, s.delay
}

// wait sleeps d or until the request is abandoned; it reports whether to
// go on answering.
func wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) healthFail(w http.ResponseWriter, status, code int, msg, detail string) {
	writeJSON(w, status, map[string]any{
		"stat": "FAIL", "code": code, "message": msg, "message_detail": detail,
		"timestamp": s.now().Unix(),
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// checkAssertion verifies a client assertion for the endpoint URL aud:
// HS512 with the secret, iss = sub = client id, aud, unexpired exp, and a
// jti never seen before.
func (s *Server) checkAssertion(raw, aud string) error {
	if raw == "" {
		return errors.New("client_assertion is missing")
	}
	var c registered
	if err := verify(raw, s.secret, &c); err != nil {
		return fmt.Errorf("client_assertion: %w", err)
	}
	if c.Issuer != s.clientID || c.Subject != s.clientID {
		return errors.New("client_assertion: iss and sub must be the client id")
	}
	if !c.Audience.contains(aud) {
		return fmt.Errorf("client_assertion: aud must be %s", aud)
	}
	now := s.now()
	exp, err := c.expiry(now, leeway)
	if err != nil {
		return fmt.Errorf("client_assertion: %w", err)
	}
	if c.ID == "" {
		return errors.New("client_assertion: jti is missing")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for j, e := range s.jtis {
		if now.After(e.Add(leeway)) {
			delete(s.jtis, j)
		}
	}
	if _, seen := s.jtis[c.ID]; seen {
		return errors.New("client_assertion: jti already used")
	}
	s.jtis[c.ID] = exp
	return nil
}

func (s *Server) healthCheck(w http.ResponseWriter, r *http.Request) {
	// Read the body first: the server notices a client that gave up only
	// once the body is consumed.
	formErr := r.ParseForm()
	_, _, down, delay := s.state()
	if !wait(r, delay) {
		return
	}
	if down {
		s.healthFail(w, http.StatusServiceUnavailable, 50301, "Service Unavailable", "fake duo is down")
		return
	}
	if formErr != nil {
		s.healthFail(w, http.StatusBadRequest, 40002, "invalid_request", formErr.Error())
		return
	}
	if r.PostForm.Get("client_id") != s.clientID {
		s.healthFail(w, http.StatusBadRequest, 40002, "invalid_client", "unknown client_id")
		return
	}
	if err := s.checkAssertion(r.PostForm.Get("client_assertion"), s.URL()+"/oauth/v1/health_check"); err != nil {
		s.healthFail(w, http.StatusBadRequest, 40002, "invalid_client", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"stat": "OK", "response": map[string]int64{"timestamp": s.now().Unix()}})
}

// requestClaims is the authorize request JWT.
type requestClaims struct {
	registered
	Scope               string `json:"scope"`
	ResponseType        string `json:"response_type"`
	ClientID            string `json:"client_id"`
	RedirectURI         string `json:"redirect_uri"`
	State               string `json:"state"`
	DuoUname            string `json:"duo_uname"`
	Nonce               string `json:"nonce"`
	UseDuoCodeAttribute *bool  `json:"use_duo_code_attribute"`
}

// checkAuthorize verifies an authorize request and returns what it asks.
func (s *Server) checkAuthorize(q url.Values) (Authorization, error) {
	if q.Get("client_id") != s.clientID {
		return Authorization{}, errors.New("unknown client_id")
	}
	if q.Get("response_type") != "code" {
		return Authorization{}, errors.New("response_type must be code")
	}
	var c requestClaims
	if err := verify(q.Get("request"), s.secret, &c); err != nil {
		return Authorization{}, fmt.Errorf("request: %w", err)
	}
	switch {
	case c.Issuer != s.clientID || c.ClientID != s.clientID:
		return Authorization{}, errors.New("request: iss and client_id must be the client id")
	case !c.Audience.contains(s.URL()):
		return Authorization{}, fmt.Errorf("request: aud must be %s", s.URL())
	case c.ResponseType != "code":
		return Authorization{}, errors.New("request: response_type must be code")
	case c.Scope != "openid":
		return Authorization{}, errors.New("request: scope must be openid")
	case len(c.State) < 22 || len(c.State) > 1024:
		return Authorization{}, errors.New("request: state must be 22 to 1024 characters")
	case c.DuoUname == "":
		return Authorization{}, errors.New("request: duo_uname is missing")
	}
	if _, err := c.expiry(s.now(), leeway); err != nil {
		return Authorization{}, fmt.Errorf("request: %w", err)
	}
	ru, err := url.Parse(c.RedirectURI)
	if err != nil || !ru.IsAbs() || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") {
		return Authorization{}, errors.New("request: redirect_uri must be an absolute http(s) URL")
	}
	return Authorization{
		Username:    c.DuoUname,
		State:       c.State,
		Nonce:       c.Nonce,
		RedirectURI: c.RedirectURI,
		UseDuoCode:  c.UseDuoCodeAttribute != nil && *c.UseDuoCodeAttribute,
	}, nil
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	a, err := s.checkAuthorize(r.URL.Query())
	if err != nil {
		http.Error(w, "fake duo: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.authorizations = append(s.authorizations, a)
	outcome := s.outcome
	s.mu.Unlock()
	if !s.interactive {
		s.finish(w, r, a, outcome)
		return
	}
	txn := randomHex()
	s.mu.Lock()
	s.pending[txn] = a
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = promptPage.Execute(w, struct{ Username, Txn string }{a.Username, txn})
}

var promptPage = template.Must(template.New("prompt").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fake Duo</title></head>
<body><h1>Fake Duo</h1><p>Push sent to <span id="user">{{.Username}}</span>.</p>
<form method="post" action="/frame/decide"><input type="hidden" name="txn" value="{{.Txn}}">
<button id="approve" name="outcome" value="allow">Approve</button>
<button id="deny" name="outcome" value="deny">Deny</button>
<button id="fraud" name="outcome" value="fraud">Report fraud</button>
</form></body></html>
`))

func (s *Server) decide(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "fake duo: bad form", http.StatusBadRequest)
		return
	}
	o := Outcome(r.PostForm.Get("outcome"))
	if o != Allow && o != Deny && o != Fraud {
		http.Error(w, "fake duo: unknown outcome", http.StatusBadRequest)
		return
	}
	txn := r.PostForm.Get("txn")
	s.mu.Lock()
	a, ok := s.pending[txn]
	delete(s.pending, txn)
	s.mu.Unlock()
	if !ok {
		http.Error(w, "fake duo: unknown or finished transaction", http.StatusBadRequest)
		return
	}
	s.finish(w, r, a, o)
}

// finish issues a code for a and redirects the browser to the callback.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, a Authorization, o Outcome) {
	code := randomHex()
	s.mu.Lock()
	s.grants[code] = &grant{auth: a, outcome: o, expires: s.now().Add(codeLifetime)}
	s.mu.Unlock()
	u, _ := url.Parse(a.RedirectURI) // checked in checkAuthorize
	q := u.Query()
	q.Set("state", a.State)
	if a.UseDuoCode {
		q.Set("duo_code", code)
	} else {
		q.Set("code", code)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	formErr := r.ParseForm() // first: see healthCheck
	_, fault, _, delay := s.state()
	if !wait(r, delay) {
		return
	}
	if fault == ServerError {
		oauthError(w, http.StatusInternalServerError, "server_error", "fake duo failure")
		return
	}
	if formErr != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", formErr.Error())
		return
	}
	f := r.PostForm
	if f.Get("client_id") != s.clientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	if f.Get("client_assertion_type") != clientAssertion {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_assertion_type must be "+clientAssertion)
		return
	}
	if err := s.checkAssertion(f.Get("client_assertion"), s.URL()+"/oauth/v1/token"); err != nil {
		oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
		return
	}
	if f.Get("grant_type") != "authorization_code" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code")
		return
	}
	now := s.now()
	s.mu.Lock()
	g, ok := s.grants[f.Get("code")]
	used := ok && g.used
	if ok {
		g.used = true
	}
	s.mu.Unlock()
	switch {
	case !ok:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown code")
		return
	case used:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code already used")
		return
	case now.After(g.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code expired")
		return
	case f.Get("redirect_uri") != g.auth.RedirectURI:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorize request")
		return
	}
	if fault == NoIDToken {
		writeJSON(w, http.StatusOK, map[string]any{"access_token": randomHex(), "expires_in": 3600, "token_type": "Bearer"})
		return
	}
	idToken, err := s.idToken(g.auth, g.outcome, fault, now)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id_token":     idToken,
		"access_token": randomHex(),
		"expires_in":   3600,
		"token_type":   "Bearer",
	})
}

// idToken builds the id_token for an authorization, applying fault.
func (s *Server) idToken(a Authorization, o Outcome, fault Fault, now time.Time) (string, error) {
	result, status, msg, reason := "allow", "allow", "Login Successful", "user_approved"
	switch o {
	case Deny:
		result, status, msg, reason = "deny", "deny", "Login request denied.", "user_cancelled"
	case Fraud:
		result, status, msg, reason = "deny", "fraud", "Login request reported as fraudulent.", "user_marked_fraud"
	}
	claims := map[string]any{
		"iss":                s.URL() + "/oauth/v1/token",
		"aud":                s.clientID,
		"sub":                a.Username,
		"preferred_username": a.Username,
		"iat":                now.Unix(),
		"exp":                now.Add(idTokenLifetime).Unix(),
		"auth_time":          now.Unix(),
		"jti":                randomHex(),
		"auth_result":        map[string]string{"result": result, "status": status, "status_msg": msg},
		"auth_context": map[string]any{
			"txid":          randomHex(),
			"factor":        "duo_push",
			"result":        result,
			"reason":        reason,
			"event_type":    "authentication",
			"timestamp":     now.Unix(),
			"user":          map[string]any{"name": a.Username, "key": "DUFAKEUSERKEY0000001", "groups": []string{}},
			"application":   map[string]string{"key": s.clientID, "name": "stepup (fake duo)"},
			"access_device": map[string]any{"ip": "127.0.0.1", "browser": "Chrome", "os": "Linux"},
			"auth_device":   map[string]any{"ip": "127.0.0.2", "name": "Fake phone"},
		},
	}
	if a.Nonce != "" {
		claims["nonce"] = a.Nonce
	}
	key, alg := s.secret, "HS512"
	switch fault {
	case BadSignature:
		key = []byte("another-secret-another-secret-another-se")
	case WrongAlgorithm:
		alg = "HS256"
	case WrongAudience:
		claims["aud"] = "DIOTHERCLIENTID00001"
	case WrongIssuer:
		claims["iss"] = "https://api-evil.example/oauth/v1/token"
	case Expired:
		claims["iat"] = now.Add(-15 * time.Minute).Unix()
		claims["exp"] = now.Add(-10 * time.Minute).Unix()
	case NoExpiry:
		delete(claims, "exp")
	case WrongUsername:
		claims["preferred_username"] = "mallory@example.com"
	case WrongNonce:
		claims["nonce"] = "another-nonce-another-nonce-another"
	}
	return sign(alg, key, claims)
}

func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand.Read panics rather than return an error)
	return hex.EncodeToString(b)
}
