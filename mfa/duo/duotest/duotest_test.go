package duotest

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	user     = "alice@example.com"
	state    = "state-0123456789abcdefghijklmnop"
	redirect = "https://app.example.com/.stepup/duo/callback?keep=1"
)

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Now = func() time.Time { return t0 }
	return New(t, cfg)
}

// signed returns claims signed with golang-jwt (not the fake's own code).
func signed(t *testing.T, method jwt.SigningMethod, key string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertionClaims(s *Server, path string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": s.ClientID(), "sub": s.ClientID(), "aud": s.URL() + path,
		"exp": t0.Add(5 * time.Minute).Unix(), "jti": "jti-" + randomHex(),
	}
}

func requestJWTClaims(s *Server) jwt.MapClaims {
	return jwt.MapClaims{
		"scope": "openid", "response_type": "code", "redirect_uri": redirect,
		"client_id": s.ClientID(), "iss": s.ClientID(), "aud": s.URL(),
		"exp": t0.Add(5 * time.Minute).Unix(), "state": state, "duo_uname": user,
		"use_duo_code_attribute": true, "nonce": "nonce-1",
	}
}

func post(t *testing.T, s *Server, path string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := s.Client().PostForm(s.URL()+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
	return resp.StatusCode, body
}

func authURL(s *Server, q url.Values) string { return s.URL() + "/oauth/v1/authorize?" + q.Encode() }

func TestHealthCheck(t *testing.T) {
	s := newServer(t, Config{})
	replayed := signed(t, jwt.SigningMethodHS512, DefaultClientSecret, assertionClaims(s, "/oauth/v1/health_check"))
	if code, body := post(t, s, "/oauth/v1/health_check", url.Values{"client_id": {DefaultClientID}, "client_assertion": {replayed}}); code != 200 || body["stat"] != "OK" {
		t.Fatalf("first health check = %d %v", code, body)
	}
	tests := []struct {
		name      string
		clientID  string
		method    jwt.SigningMethod
		key       string
		mod       func(jwt.MapClaims)
		assertion string // overrides the built one
		wantCode  int
		wantMsg   string
	}{
		{name: "ok", wantCode: 200},
		{name: "unknown client", clientID: "DIOTHERCLIENTID00001", wantCode: 400, wantMsg: "unknown client_id"},
		{name: "wrong secret", key: strings.Repeat("k", 40), wantCode: 400, wantMsg: "bad signature"},
		{name: "hs256", method: jwt.SigningMethodHS256, wantCode: 400, wantMsg: `alg "HS256" is not HS512`},
		{name: "token url as aud", mod: func(c jwt.MapClaims) { c["aud"] = s.URL() + "/oauth/v1/token" }, wantCode: 400, wantMsg: "aud must be"},
		{name: "expired", mod: func(c jwt.MapClaims) { c["exp"] = t0.Add(-2 * time.Minute).Unix() }, wantCode: 400, wantMsg: "expired"},
		{name: "no exp", mod: func(c jwt.MapClaims) { delete(c, "exp") }, wantCode: 400, wantMsg: "exp is missing"},
		{name: "no jti", mod: func(c jwt.MapClaims) { delete(c, "jti") }, wantCode: 400, wantMsg: "jti is missing"},
		{name: "iss not client", mod: func(c jwt.MapClaims) { c["iss"] = "someone" }, wantCode: 400, wantMsg: "iss and sub"},
		{name: "replayed jti", assertion: replayed, wantCode: 400, wantMsg: "jti already used"},
		{name: "no assertion", assertion: "-", wantCode: 400, wantMsg: "client_assertion is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientID, method, key := DefaultClientID, jwt.SigningMethod(jwt.SigningMethodHS512), DefaultClientSecret
			if tt.clientID != "" {
				clientID = tt.clientID
			}
			if tt.method != nil {
				method = tt.method
			}
			if tt.key != "" {
				key = tt.key
			}
			claims := assertionClaims(s, "/oauth/v1/health_check")
			if tt.mod != nil {
				tt.mod(claims)
			}
			a := signed(t, method, key, claims)
			switch tt.assertion {
			case "":
			case "-":
				a = ""
			default:
				a = tt.assertion
			}
			code, body := post(t, s, "/oauth/v1/health_check", url.Values{"client_id": {clientID}, "client_assertion": {a}})
			if code != tt.wantCode {
				t.Fatalf("status = %d %v, want %d", code, body, tt.wantCode)
			}
			if tt.wantCode == 200 {
				return
			}
			if body["stat"] != "FAIL" || !strings.Contains(body["message_detail"].(string), tt.wantMsg) {
				t.Errorf("answer = %v, want stat FAIL and %q", body, tt.wantMsg)
			}
		})
	}
	t.Run("down", func(t *testing.T) {
		s.SetHealthy(false)
		defer s.SetHealthy(true)
		a := signed(t, jwt.SigningMethodHS512, DefaultClientSecret, assertionClaims(s, "/oauth/v1/health_check"))
		if code, body := post(t, s, "/oauth/v1/health_check", url.Values{"client_id": {DefaultClientID}, "client_assertion": {a}}); code != 503 || body["stat"] != "FAIL" {
			t.Errorf("answer = %d %v, want 503 FAIL", code, body)
		}
	})
}

func TestAuthorize(t *testing.T) {
	s := newServer(t, Config{})
	tests := []struct {
		name    string
		query   func(url.Values)
		key     string
		mod     func(jwt.MapClaims)
		wantErr string // empty: a redirect
	}{
		{name: "ok"},
		{name: "unknown client", query: func(q url.Values) { q.Set("client_id", "DIOTHERCLIENTID00001") }, wantErr: "unknown client_id"},
		{name: "response type", query: func(q url.Values) { q.Set("response_type", "token") }, wantErr: "response_type must be code"},
		{name: "no request", query: func(q url.Values) { q.Del("request") }, wantErr: "not a compact JWS"},
		{name: "wrong secret", key: strings.Repeat("k", 40), wantErr: "bad signature"},
		{name: "wrong aud", mod: func(c jwt.MapClaims) { c["aud"] = "https://api-other.duosecurity.com" }, wantErr: "aud must be"},
		{name: "client_id claim", mod: func(c jwt.MapClaims) { c["client_id"] = "x" }, wantErr: "iss and client_id"},
		{name: "expired", mod: func(c jwt.MapClaims) { c["exp"] = t0.Add(-2 * time.Minute).Unix() }, wantErr: "expired"},
		{name: "short state", mod: func(c jwt.MapClaims) { c["state"] = "short" }, wantErr: "state must be"},
		{name: "no user", mod: func(c jwt.MapClaims) { delete(c, "duo_uname") }, wantErr: "duo_uname is missing"},
		{name: "scope", mod: func(c jwt.MapClaims) { c["scope"] = "profile" }, wantErr: "scope must be openid"},
		{name: "relative redirect", mod: func(c jwt.MapClaims) { c["redirect_uri"] = "/cb" }, wantErr: "redirect_uri must be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := DefaultClientSecret
			if tt.key != "" {
				key = tt.key
			}
			claims := requestJWTClaims(s)
			if tt.mod != nil {
				tt.mod(claims)
			}
			q := url.Values{"client_id": {DefaultClientID}, "response_type": {"code"}, "request": {signed(t, jwt.SigningMethodHS512, key, claims)}}
			if tt.query != nil {
				tt.query(q)
			}
			cb, err := s.Visit(context.Background(), authURL(s, q))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Visit = %v, %v; want error %q", cb, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := cb.Query()
			if got.Get("state") != state || got.Get("keep") != "1" || got.Get("duo_code") == "" || got.Has("code") {
				t.Errorf("callback query = %v, want keep, state and duo_code", got)
			}
		})
	}
	t.Run("code attribute off", func(t *testing.T) {
		claims := requestJWTClaims(s)
		claims["use_duo_code_attribute"] = false
		q := url.Values{"client_id": {DefaultClientID}, "response_type": {"code"}, "request": {signed(t, jwt.SigningMethodHS512, DefaultClientSecret, claims)}}
		cb, err := s.Visit(context.Background(), authURL(s, q))
		if err != nil {
			t.Fatal(err)
		}
		if q := cb.Query(); q.Get("code") == "" || q.Has("duo_code") {
			t.Errorf("callback query = %v, want code only", q)
		}
	})
}

// authorizeCode gets a code for user from s, non-interactively.
func authorizeCode(t *testing.T, s *Server) string {
	t.Helper()
	q := url.Values{"client_id": {DefaultClientID}, "response_type": {"code"}, "request": {signed(t, jwt.SigningMethodHS512, DefaultClientSecret, requestJWTClaims(s))}}
	cb, err := s.Visit(context.Background(), authURL(s, q))
	if err != nil {
		t.Fatal(err)
	}
	return cb.Query().Get("duo_code")
}

func tokenForm(t *testing.T, s *Server, code string) url.Values {
	return url.Values{
		"grant_type":            {"authorization_code"},
		"code":                  {code},
		"redirect_uri":          {redirect},
		"client_id":             {DefaultClientID},
		"client_assertion_type": {clientAssertion},
		"client_assertion":      {signed(t, jwt.SigningMethodHS512, DefaultClientSecret, assertionClaims(s, "/oauth/v1/token"))},
	}
}

// parseIDToken verifies an id_token with golang-jwt and returns its claims.
func parseIDToken(t *testing.T, raw string) jwt.MapClaims {
	t.Helper()
	var claims jwt.MapClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return []byte(DefaultClientSecret), nil },
		jwt.WithValidMethods([]string{"HS512"}), jwt.WithTimeFunc(func() time.Time { return t0 }))
	if err != nil {
		t.Fatalf("id_token: %v", err)
	}
	return claims
}

func TestToken(t *testing.T) {
	s := newServer(t, Config{})
	code := authorizeCode(t, s)
	status, body := post(t, s, "/oauth/v1/token", tokenForm(t, s, code))
	if status != 200 {
		t.Fatalf("token = %d %v", status, body)
	}
	for _, k := range []string{"access_token", "token_type", "expires_in"} {
		if body[k] == nil || body[k] == "" {
			t.Errorf("token answer has no %s: %v", k, body)
		}
	}
	claims := parseIDToken(t, body["id_token"].(string))
	want := map[string]any{
		"iss": s.URL() + "/oauth/v1/token", "aud": DefaultClientID, "sub": user, "preferred_username": user,
		"nonce": "nonce-1", "iat": float64(t0.Unix()), "exp": float64(t0.Add(5 * time.Minute).Unix()), "auth_time": float64(t0.Unix()),
		"auth_result": map[string]any{"result": "allow", "status": "allow", "status_msg": "Login Successful"},
	}
	got := maps.Clone(claims)
	for k := range got {
		if _, ok := want[k]; !ok {
			delete(got, k)
		}
	}
	if diff := cmp.Diff(want, map[string]any(got)); diff != "" {
		t.Errorf("id_token claims (-want +got):\n%s", diff)
	}

	tests := []struct {
		name     string
		mod      func(url.Values)
		wantCode int
		wantErr  string
	}{
		{name: "replayed code", wantCode: 400, wantErr: "invalid_grant"},
		{name: "unknown client", mod: func(f url.Values) { f.Set("client_id", "DIOTHERCLIENTID00001") }, wantCode: 401, wantErr: "invalid_client"},
		{name: "assertion type", mod: func(f url.Values) { f.Set("client_assertion_type", "x") }, wantCode: 400, wantErr: "invalid_request"},
		{name: "bad assertion", mod: func(f url.Values) { f.Set("client_assertion", "a.b.c") }, wantCode: 401, wantErr: "invalid_client"},
		{name: "grant type", mod: func(f url.Values) { f.Set("grant_type", "password") }, wantCode: 400, wantErr: "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tokenForm(t, s, code)
			if tt.mod != nil {
				tt.mod(f)
			}
			status, body := post(t, s, "/oauth/v1/token", f)
			if status != tt.wantCode || body["error"] != tt.wantErr {
				t.Errorf("token = %d %v, want %d %s", status, body, tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestInteractive(t *testing.T) {
	s := newServer(t, Config{Interactive: true})
	hc := *s.Client()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	q := url.Values{"client_id": {DefaultClientID}, "response_type": {"code"}, "request": {signed(t, jwt.SigningMethodHS512, DefaultClientSecret, requestJWTClaims(s))}}
	resp, err := hc.Get(authURL(s, q))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `id="deny"`) {
		t.Fatalf("prompt = %d %s", resp.StatusCode, page)
	}
	i := strings.Index(string(page), `name="txn" value="`)
	if i < 0 {
		t.Fatalf("no txn in page %s", page)
	}
	txn := string(page[i+len(`name="txn" value="`):])
	txn = txn[:strings.IndexByte(txn, '"')]

	decide := func(outcome string) *http.Response {
		resp, err := hc.PostForm(s.URL()+"/frame/decide", url.Values{"txn": {txn}, "outcome": {outcome}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp = decide("deny")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("decide = %d", resp.StatusCode)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	status, body := post(t, s, "/oauth/v1/token", tokenForm(t, s, cb.Query().Get("duo_code")))
	if status != 200 {
		t.Fatalf("token = %d %v", status, body)
	}
	ar := parseIDToken(t, body["id_token"].(string))["auth_result"].(map[string]any)
	if ar["result"] != "deny" {
		t.Errorf("auth_result = %v, want deny", ar)
	}
	if resp := decide("allow"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("second decision = %d, want 400", resp.StatusCode)
	}
}
