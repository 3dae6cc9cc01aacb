package duo

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stepup-dev/stepup/mfa/duo/duotest"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	testUser     = "alice@example.com"
	testState    = "state-0123456789abcdefghijklmnop"
	testNonce    = "nonce-0123456789abcdefghijklmnop"
	testRedirect = "https://app.example.com/.stepup/duo/callback"
)

func clock(t time.Time) func() time.Time { return func() time.Time { return t } }

// newFake starts a fake Duo on the fixed clock t0.
func newFake(t *testing.T, cfg duotest.Config) *duotest.Server {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = clock(t0)
	}
	return duotest.New(t, cfg)
}

// newClient returns a client for fake on the clock t0, after mod.
func newClient(t *testing.T, fake *duotest.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		ClientID:     fake.ClientID(),
		ClientSecret: fake.ClientSecret(),
		APIHost:      fake.Host(),
		RedirectURI:  testRedirect,
		HTTPClient:   fake.Client(),
		Now:          clock(t0),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// authorize runs the browser part: AuthURL, the fake's prompt, and the
// callback. It returns the duo_code.
func authorize(t *testing.T, fake *duotest.Server, c *Client, user, nonce string) string {
	t.Helper()
	au, err := c.AuthURL(user, testState, nonce)
	if err != nil {
		t.Fatalf("AuthURL: %v", err)
	}
	cb, err := fake.Visit(context.Background(), au)
	if err != nil {
		t.Fatalf("Visit: %v", err)
	}
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != testRedirect {
		t.Fatalf("callback went to %q, want %q", got, testRedirect)
	}
	got, err := ParseCallback(cb.Query())
	if err != nil {
		t.Fatalf("ParseCallback: %v", err)
	}
	if got.State != testState {
		t.Fatalf("callback state = %q, want %q", got.State, testState)
	}
	return got.Code
}

var allowResult = &Result{
	Username:      testUser,
	Subject:       testUser,
	AuthTime:      t0,
	Outcome:       "allow",
	Status:        "allow",
	StatusMessage: "Login Successful",
	Factor:        "duo_push",
	Reason:        "user_approved",
	DeviceName:    "Fake phone",
	AccessIP:      "127.0.0.1",
}

func TestExchange(t *testing.T) {
	denied := *allowResult
	denied.Outcome, denied.Status, denied.StatusMessage, denied.Reason = "deny", "deny", "Login request denied.", "user_cancelled"
	fraud := denied
	fraud.Status, fraud.StatusMessage, fraud.Reason = "fraud", "Login request reported as fraudulent.", "user_marked_fraud"

	tests := []struct {
		name          string
		outcome       duotest.Outcome
		fault         duotest.Fault
		clientNow     time.Time // zero: t0
		authNonce     string    // nonce sent to Duo
		exchangeNonce string    // nonce expected back
		exchangeUser  string    // zero: testUser
		want          *Result
		wantErr       []error // every one must match errors.Is
	}{
		{name: "success", authNonce: testNonce, exchangeNonce: testNonce, want: allowResult},
		{name: "success without nonce", want: allowResult},
		{name: "denied push", outcome: duotest.Deny, authNonce: testNonce, exchangeNonce: testNonce, want: &denied, wantErr: []error{ErrDenied}},
		{name: "reported fraud", outcome: duotest.Fraud, want: &fraud, wantErr: []error{ErrDenied}},
		{name: "bad signature", fault: duotest.BadSignature, wantErr: []error{ErrInvalidToken, errSignature}},
		{name: "hs256 instead of hs512", fault: duotest.WrongAlgorithm, wantErr: []error{ErrInvalidToken, errSignature}},
		{name: "wrong audience", fault: duotest.WrongAudience, wantErr: []error{ErrInvalidToken, errAudience}},
		{name: "wrong issuer", fault: duotest.WrongIssuer, wantErr: []error{ErrInvalidToken, errIssuer}},
		{name: "expired token", fault: duotest.Expired, wantErr: []error{ErrInvalidToken, errExpired}},
		{name: "token without exp", fault: duotest.NoExpiry, wantErr: []error{ErrInvalidToken, errMissingClaim}},
		{name: "wrong username in token", fault: duotest.WrongUsername, wantErr: []error{ErrInvalidToken, errUsername}},
		{name: "token for another user than expected", exchangeUser: "bob@example.com", wantErr: []error{ErrInvalidToken, errUsername}},
		{name: "wrong nonce", fault: duotest.WrongNonce, authNonce: testNonce, exchangeNonce: testNonce, wantErr: []error{ErrInvalidToken, errNonce}},
		{name: "nonce expected but absent", exchangeNonce: testNonce, wantErr: []error{ErrInvalidToken, errMissingClaim}},
		{name: "nonce sent, another expected", authNonce: testNonce, exchangeNonce: "nonce-zzzzzzzzzzzzzzzzzzzzzzzzzz", wantErr: []error{ErrInvalidToken, errNonce}},
		{name: "clock 30 s past exp, within skew", clientNow: t0.Add(330 * time.Second), want: allowResult},
		{name: "clock 100 s past exp", clientNow: t0.Add(400 * time.Second), wantErr: []error{ErrInvalidToken, errExpired}},
		{name: "clock 2 min behind duo", clientNow: t0.Add(-2 * time.Minute), wantErr: []error{ErrInvalidToken, errNotYetValid}},
		{name: "no id_token in answer", fault: duotest.NoIDToken, wantErr: []error{ErrUnavailable}},
		{name: "token endpoint 500", fault: duotest.ServerError, wantErr: []error{ErrUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, duotest.Config{Outcome: tt.outcome})
			c := newClient(t, fake, nil)
			code := authorize(t, fake, c, testUser, tt.authNonce)
			fake.SetFault(tt.fault)
			if !tt.clientNow.IsZero() {
				c = newClient(t, fake, func(cfg *Config) { cfg.Now = clock(tt.clientNow) })
			}
			user := tt.exchangeUser
			if user == "" {
				user = testUser
			}
			got, err := c.Exchange(context.Background(), code, user, tt.exchangeNonce)
			checkErr(t, err, tt.wantErr)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Result{}, "TxID")); diff != "" {
				t.Errorf("Exchange result (-want +got):\n%s", diff)
			}
			if got != nil && got.TxID == "" {
				t.Errorf("Exchange result has no TxID")
			}
			if err != nil && strings.Contains(err.Error(), code) {
				t.Errorf("error %q contains the code", err)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want []error) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("got error %q, want it to match %q", err, w)
		}
	}
}

func TestAuthURL(t *testing.T) {
	fake := newFake(t, duotest.Config{})
	c := newClient(t, fake, nil)
	au, err := c.AuthURL(testUser, testState, testNonce)
	if err != nil {
		t.Fatalf("AuthURL: %v", err)
	}
	u, err := url.Parse(au)
	if err != nil {
		t.Fatalf("parse %q: %v", au, err)
	}
	if got, want := u.Scheme+"://"+u.Host+u.Path, fake.URL()+"/oauth/v1/authorize"; got != want {
		t.Errorf("AuthURL endpoint = %q, want %q", got, want)
	}
	q := u.Query()
	if q.Get("client_id") != fake.ClientID() || q.Get("response_type") != "code" || q.Get("request") == "" {
		t.Errorf("AuthURL query = %v, want client_id, response_type=code and request", q)
	}
	if _, err := fake.Visit(context.Background(), au); err != nil {
		t.Fatalf("the fake refused the request: %v", err)
	}
	want := []duotest.Authorization{{Username: testUser, State: testState, Nonce: testNonce, RedirectURI: testRedirect, UseDuoCode: true}}
	if diff := cmp.Diff(want, fake.Authorizations()); diff != "" {
		t.Errorf("authorize request as the fake read it (-want +got):\n%s", diff)
	}
}

func TestAuthURLInvalidInput(t *testing.T) {
	fake := newFake(t, duotest.Config{})
	c := newClient(t, fake, nil)
	tests := []struct{ name, user, state, nonce string }{
		{"empty username", "", testState, ""},
		{"username with newline", "alice\n", testState, ""},
		{"state too short", testUser, strings.Repeat("s", MinStateLength-1), ""},
		{"state too long", testUser, strings.Repeat("s", MaxStateLength+1), ""},
		{"state with space", testUser, "state with spaces in it ok", ""},
		{"nonce with space", testUser, testState, "a nonce"},
		{"nonce too long", testUser, testState, strings.Repeat("n", 1025)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.AuthURL(tt.user, tt.state, tt.nonce)
			if !errors.Is(err, ErrInvalidInput) || got != "" {
				t.Errorf("AuthURL = %q, %v; want ErrInvalidInput", got, err)
			}
		})
	}
	// Bounds are inclusive.
	for _, n := range []int{MinStateLength, MaxStateLength} {
		if _, err := c.AuthURL(testUser, strings.Repeat("s", n), ""); err != nil {
			t.Errorf("AuthURL with a %d-character state: %v", n, err)
		}
	}
}

func TestExchangeInvalidInput(t *testing.T) {
	fake := newFake(t, duotest.Config{})
	c := newClient(t, fake, nil)
	tests := []struct{ name, code, user, nonce string }{
		{"empty code", "", testUser, ""},
		{"code with space", "a b", testUser, ""},
		{"code too long", strings.Repeat("c", 4097), testUser, ""},
		{"empty username", "code", "", ""},
		{"bad nonce", "code", testUser, "a\x00b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Exchange(context.Background(), tt.code, tt.user, tt.nonce)
			if !errors.Is(err, ErrInvalidInput) || got != nil {
				t.Errorf("Exchange = %v, %v; want ErrInvalidInput", got, err)
			}
		})
	}
}

func TestExchangeRejected(t *testing.T) {
	t.Run("replayed code", func(t *testing.T) {
		fake := newFake(t, duotest.Config{})
		c := newClient(t, fake, nil)
		code := authorize(t, fake, c, testUser, "")
		if _, err := c.Exchange(context.Background(), code, testUser, ""); err != nil {
			t.Fatalf("first Exchange: %v", err)
		}
		got, err := c.Exchange(context.Background(), code, testUser, "")
		checkErr(t, err, []error{ErrRejected})
		wantAPI(t, err, &APIError{HTTPStatus: 400, Message: "invalid_grant", Detail: "code already used"})
		if got != nil {
			t.Errorf("replay returned a result: %+v", got)
		}
	})
	t.Run("unknown code", func(t *testing.T) {
		fake := newFake(t, duotest.Config{})
		c := newClient(t, fake, nil)
		_, err := c.Exchange(context.Background(), "0123456789abcdef", testUser, "")
		checkErr(t, err, []error{ErrRejected})
		wantAPI(t, err, &APIError{HTTPStatus: 400, Message: "invalid_grant", Detail: "unknown code"})
	})
	t.Run("code redeemed with another redirect uri", func(t *testing.T) {
		fake := newFake(t, duotest.Config{})
		code := authorize(t, fake, newClient(t, fake, nil), testUser, "")
		other := newClient(t, fake, func(cfg *Config) { cfg.RedirectURI = "https://evil.example.com/.stepup/duo/callback" })
		_, err := other.Exchange(context.Background(), code, testUser, "")
		checkErr(t, err, []error{ErrRejected})
		wantAPI(t, err, &APIError{HTTPStatus: 400, Message: "invalid_grant", Detail: "redirect_uri does not match the authorize request"})
	})
	t.Run("code expired", func(t *testing.T) {
		var now atomic.Int64 // the fake's clock, read by its handlers
		now.Store(t0.Unix())
		fake := newFake(t, duotest.Config{Now: func() time.Time { return time.Unix(now.Load(), 0) }})
		c := newClient(t, fake, nil)
		code := authorize(t, fake, c, testUser, "")
		later := t0.Add(6 * time.Minute)
		now.Store(later.Unix())
		c = newClient(t, fake, func(cfg *Config) { cfg.Now = clock(later) })
		_, err := c.Exchange(context.Background(), code, testUser, "")
		checkErr(t, err, []error{ErrRejected})
		wantAPI(t, err, &APIError{HTTPStatus: 400, Message: "invalid_grant", Detail: "code expired"})
	})
	t.Run("wrong client secret", func(t *testing.T) {
		fake := newFake(t, duotest.Config{})
		code := authorize(t, fake, newClient(t, fake, nil), testUser, "")
		c := newClient(t, fake, func(cfg *Config) { cfg.ClientSecret = strings.Repeat("x", ClientSecretLength) })
		_, err := c.Exchange(context.Background(), code, testUser, "")
		checkErr(t, err, []error{ErrRejected})
		var api *APIError
		if !errors.As(err, &api) || api.HTTPStatus != 401 || api.Message != "invalid_client" {
			t.Errorf("got %v, want a 401 invalid_client APIError", err)
		}
	})
}

func wantAPI(t *testing.T, err error, want *APIError) {
	t.Helper()
	var got *APIError
	if !errors.As(err, &got) {
		t.Fatalf("error %v carries no *APIError", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("APIError (-want +got):\n%s", diff)
	}
}

func TestHealthCheck(t *testing.T) {
	closedHost := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	tests := []struct {
		name    string
		setup   func(*testing.T, *duotest.Server, *Config)
		ctx     func() (context.Context, context.CancelFunc)
		wantErr []error
		wantAPI *APIError
	}{
		{name: "healthy"},
		{name: "pinned roots", setup: func(_ *testing.T, f *duotest.Server, c *Config) {
			c.HTTPClient, c.RootCAs = nil, f.CertPool()
		}},
		{
			name:    "duo down",
			setup:   func(_ *testing.T, f *duotest.Server, _ *Config) { f.SetHealthy(false) },
			wantErr: []error{ErrUnavailable},
			wantAPI: &APIError{HTTPStatus: 503, Code: 50301, Message: "Service Unavailable", Detail: "fake duo is down"},
		},
		{
			name: "wrong secret",
			setup: func(_ *testing.T, _ *duotest.Server, c *Config) {
				c.ClientSecret = strings.Repeat("y", ClientSecretLength)
			},
			wantErr: []error{ErrUnavailable},
			wantAPI: &APIError{HTTPStatus: 400, Code: 40002, Message: "invalid_client", Detail: "client_assertion: bad signature"},
		},
		{
			name:    "unreachable",
			setup:   func(t *testing.T, _ *duotest.Server, c *Config) { c.APIHost = closedHost(t) },
			wantErr: []error{ErrUnavailable},
		},
		{
			name:    "untrusted certificate",
			setup:   func(_ *testing.T, _ *duotest.Server, c *Config) { c.HTTPClient, c.RootCAs = nil, x509.NewCertPool() },
			wantErr: []error{ErrUnavailable},
		},
		{
			name:  "context deadline",
			setup: func(_ *testing.T, f *duotest.Server, _ *Config) { f.SetDelay(time.Minute) },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 50*time.Millisecond)
			},
			wantErr: []error{ErrUnavailable, context.DeadlineExceeded},
		},
		{
			name: "client timeout",
			setup: func(_ *testing.T, f *duotest.Server, c *Config) {
				f.SetDelay(time.Minute)
				c.Timeout = 50 * time.Millisecond
			},
			wantErr: []error{ErrUnavailable, context.DeadlineExceeded},
		},
		{
			name:  "context cancelled",
			setup: func(_ *testing.T, f *duotest.Server, _ *Config) { f.SetDelay(time.Minute) },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantErr: []error{ErrUnavailable, context.Canceled},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFake(t, duotest.Config{})
			c := newClient(t, fake, func(cfg *Config) {
				if tt.setup != nil {
					tt.setup(t, fake, cfg)
				}
			})
			ctx, cancel := context.Background(), context.CancelFunc(func() {})
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			err := c.HealthCheck(ctx)
			checkErr(t, err, tt.wantErr)
			if tt.wantAPI != nil {
				wantAPI(t, err, tt.wantAPI)
			}
		})
	}
}

func TestExchangeTimeout(t *testing.T) {
	fake := newFake(t, duotest.Config{})
	c := newClient(t, fake, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
	code := authorize(t, fake, c, testUser, "")
	fake.SetDelay(time.Minute)
	got, err := c.Exchange(context.Background(), code, testUser, "")
	checkErr(t, err, []error{ErrUnavailable, context.DeadlineExceeded})
	if got != nil {
		t.Errorf("Exchange returned a result: %+v", got)
	}
}

func TestExchangeUnreachable(t *testing.T) {
	fake := newFake(t, duotest.Config{})
	c := newClient(t, fake, nil)
	code := authorize(t, fake, c, testUser, "")
	fake.Close()
	_, err := c.Exchange(context.Background(), code, testUser, "")
	checkErr(t, err, []error{ErrUnavailable})
}

// TestMisbehavingServer covers answers the fake never gives.
func TestMisbehavingServer(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr error
	}{
		{
			// The redirect target serves a token that would validate.
			name: "redirect is not followed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/elsewhere" {
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
					return
				}
				claims := goodClaims()
				claims["iss"] = "https://" + r.Host + "/oauth/v1/token"
				claims["aud"] = duotest.DefaultClientID
				fmt.Fprintf(w, `{"id_token":%q}`, hs512(t, duotest.DefaultClientSecret, claims))
			},
			wantErr: ErrUnavailable,
		},
		{
			name: "oversized body",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Write([]byte(`{"id_token":"`))
				w.Write([]byte(strings.Repeat("a", maxResponseBytes)))
				w.Write([]byte(`"}`))
			},
			wantErr: ErrUnavailable,
		},
		{
			name:    "not json",
			handler: func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>maintenance</html>")) },
			wantErr: ErrUnavailable,
		},
		{
			name:    "rate limited",
			handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) },
			wantErr: ErrUnavailable,
		},
		{
			name: "id_token not a jwt",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Write([]byte(`{"id_token":"not.a.jwt"}`))
			},
			wantErr: ErrInvalidToken,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(tt.handler)
			t.Cleanup(srv.Close)
			c, err := NewClient(Config{
				ClientID:     duotest.DefaultClientID,
				ClientSecret: duotest.DefaultClientSecret,
				APIHost:      strings.TrimPrefix(srv.URL, "https://"),
				RedirectURI:  testRedirect,
				HTTPClient:   srv.Client(),
				Now:          clock(t0),
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exchange(context.Background(), "code", testUser, ""); !errors.Is(err, tt.wantErr) {
				t.Errorf("Exchange error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNewClient(t *testing.T) {
	valid := Config{
		ClientID:     duotest.DefaultClientID,
		ClientSecret: duotest.DefaultClientSecret,
		APIHost:      "api-12345678.duosecurity.com",
		RedirectURI:  testRedirect,
	}
	tests := []struct {
		name  string
		mod   func(*Config)
		valid bool
		want  []string // substrings of the error
	}{
		{name: "valid", valid: true},
		{name: "host with port", mod: func(c *Config) { c.APIHost = "127.0.0.1:8443" }, valid: true},
		{name: "ipv6 host", mod: func(c *Config) { c.APIHost = "[::1]:8443" }, valid: true},
		{name: "http redirect", mod: func(c *Config) { c.RedirectURI = "http://localhost:8080/.stepup/duo/callback" }, valid: true},
		{name: "short client id", mod: func(c *Config) { c.ClientID = "DI123" }, want: []string{"client id must be 20"}},
		{name: "client id with space", mod: func(c *Config) { c.ClientID = "DI 34567890123456789" }, want: []string{"client id must be 20"}},
		{name: "long secret", mod: func(c *Config) { c.ClientSecret += "z" }, want: []string{"client secret must be 40", "got 41"}},
		{name: "no host", mod: func(c *Config) { c.APIHost = "" }, want: []string{"api host is required"}},
		{name: "host with scheme", mod: func(c *Config) { c.APIHost = "https://api.duosecurity.com" }, want: []string{"without scheme or path"}},
		{name: "host with path", mod: func(c *Config) { c.APIHost = "api.duosecurity.com/x" }, want: []string{"without scheme or path"}},
		{name: "host with user", mod: func(c *Config) { c.APIHost = "me@api.duosecurity.com" }, want: []string{"without scheme or path"}},
		{name: "host with bad port", mod: func(c *Config) { c.APIHost = "api.duosecurity.com:99999" }, want: []string{"invalid port"}},
		{name: "no redirect", mod: func(c *Config) { c.RedirectURI = "" }, want: []string{"redirect uri is required"}},
		{name: "relative redirect", mod: func(c *Config) { c.RedirectURI = "/.stepup/duo/callback" }, want: []string{"absolute http(s) URL"}},
		{name: "redirect with fragment", mod: func(c *Config) { c.RedirectURI = testRedirect + "#x" }, want: []string{"absolute http(s) URL"}},
		{name: "javascript redirect", mod: func(c *Config) { c.RedirectURI = "javascript:alert(1)" }, want: []string{"absolute http(s) URL"}},
		{name: "negative timeout", mod: func(c *Config) { c.Timeout = -time.Second }, want: []string{"timeout must not be negative"}},
		{name: "client and roots", mod: func(c *Config) { c.HTTPClient, c.RootCAs = http.DefaultClient, x509.NewCertPool() }, want: []string{"not both"}},
		{
			name: "every problem reported",
			mod:  func(c *Config) { *c = Config{ClientSecret: "short-secret"} },
			want: []string{"client id", "client secret", "api host", "redirect uri"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			if tt.mod != nil {
				tt.mod(&cfg)
			}
			c, err := NewClient(cfg)
			if tt.valid {
				if err != nil || c == nil {
					t.Fatalf("NewClient = %v, %v; want a client", c, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || c != nil {
				t.Fatalf("NewClient = %v, %v; want ErrInvalidConfig", c, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if cfg.ClientSecret != "" && strings.Contains(err.Error(), cfg.ClientSecret) {
				t.Errorf("error %q contains the client secret", err)
			}
		})
	}
}

func TestNewNonce(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n, err := NewNonce()
		if err != nil {
			t.Fatal(err)
		}
		if len(n) != 36 || checkState(n) != nil || strings.Trim(n, alphanumeric) != "" {
			t.Fatalf("NewNonce = %q, want 36 alphanumeric characters", n)
		}
		if seen[n] {
			t.Fatalf("NewNonce repeated %q", n)
		}
		seen[n] = true
	}
}
