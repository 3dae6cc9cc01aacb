package duo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Sentinel errors. Callers branch on them with [errors.Is]; the returned
// errors wrap them with more context.
var (
	// ErrInvalidConfig is returned by [NewClient] for a client id that is not
	// 20 characters, a client secret that is not 40, a malformed API host or
	// redirect URI, a negative timeout, or both HTTPClient and RootCAs set.
	ErrInvalidConfig = errors.New("invalid duo configuration")

	// ErrInvalidInput is returned for arguments that cannot be sent to Duo:
	// an empty username, a state outside 22..1024 characters, a nonce or code
	// that is empty, too long or not printable ASCII, and by [ParseCallback]
	// for a callback without state or duo_code.
	ErrInvalidInput = errors.New("invalid duo input")

	// ErrUnavailable is returned when Duo cannot be used: the health check
	// failed, Duo could not be reached or did not answer in time (the error
	// then also wraps the context or network error), or it answered with a
	// server error or with something that is not its documented response.
	// The caller fails closed.
	ErrUnavailable = errors.New("duo unavailable")

	// ErrRejected is returned when Duo refused this transaction: the token
	// endpoint answered 4xx (an unknown, expired or already used code, a
	// redirect URI mismatch, bad client credentials), or Duo came back to
	// the callback with an error instead of a code. It is not an outage.
	ErrRejected = errors.New("duo rejected the request")

	// ErrInvalidToken is returned by [Client.Exchange] when the id_token does
	// not validate: malformed, not HS512, bad signature, wrong audience or
	// issuer, missing or expired exp, iat in the future, missing iat,
	// another preferred_username, or another nonce.
	ErrInvalidToken = errors.New("invalid duo id token")

	// ErrDenied is returned by [Client.Exchange] when the id_token is valid
	// but its auth_result is not "allow" (the user denied the push, reported
	// fraud, timed out, or a Duo policy denied access). The [Result] is
	// returned along with it.
	ErrDenied = errors.New("duo denied the authentication")
)

// Protocol constants, from Duo's OIDC Auth API.
const (
	// ClientIDLength is the length of a Duo client id (the former ikey).
	ClientIDLength = 20
	// ClientSecretLength is the length of a Duo client secret (the former skey).
	ClientSecretLength = 40
	// MinStateLength and MaxStateLength bound the state Duo accepts.
	MinStateLength = 22
	MaxStateLength = 1024
	// DefaultTimeout bounds each call to Duo when [Config.Timeout] is zero.
	DefaultTimeout = 10 * time.Second
	// ClockSkew is the leeway allowed on the id_token's exp and iat.
	ClockSkew = 60 * time.Second

	assertionLifetime   = 300 * time.Second
	jtiLength           = 36
	maxNonceLength      = 1024
	maxCodeLength       = 4096
	maxUsernameLength   = 1024
	maxResponseBytes    = 1 << 20
	clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	healthCheckPath     = "/oauth/v1/health_check"
	authorizePath       = "/oauth/v1/authorize"
	tokenPath           = "/oauth/v1/token"
	userAgent           = "stepup-duo/1"
)

// Config configures a [Client]. ClientID, ClientSecret, APIHost and
// RedirectURI are required.
type Config struct {
	// ClientID is the Duo client id (the rule's ikey), 20 characters.
	ClientID string
	// ClientSecret is the Duo client secret (the rule's skey), 40
	// characters. It signs every JWT sent to Duo and verifies the id_token.
	ClientSecret string
	// APIHost is Duo's API host name, optionally with a port, without
	// scheme or path: "api-XXXXXXXX.duosecurity.com".
	APIHost string
	// RedirectURI is the absolute http(s) URL Duo sends the browser back to,
	// stepup's "/.stepup/duo/callback" on the protected host. It travels in
	// the signed request and again with the code, which Duo only redeems
	// for the same URI. Use https in production.
	RedirectURI string

	// HTTPClient makes the calls to Duo. Nil means a client with the system
	// roots (or RootCAs), TLS 1.2 or later and the environment's proxy.
	// Redirects are never followed, whatever its CheckRedirect says.
	HTTPClient *http.Client
	// RootCAs, when set, replaces the system roots of the default client:
	// use it to pin Duo's CAs. It cannot be combined with HTTPClient.
	RootCAs *x509.CertPool
	// Timeout bounds each call to Duo on top of the caller's context.
	// Zero means [DefaultTimeout].
	Timeout time.Duration
	// Now is the clock for assertion expiry and id_token validation. Nil
	// means time.Now.
	Now func() time.Time
}

// Client talks to one Duo application (one client id, secret and API host)
// for one redirect URI. It is immutable and safe for concurrent use, and
// cheap to create: build one per rule configuration and redirect URI, and
// share one http.Client between them.
type Client struct {
	clientID    string
	secret      []byte
	apiHost     string
	redirectURI string
	http        *http.Client
	timeout     time.Duration
	now         func() time.Time
}

// NewClient checks cfg and returns a Client. Every problem found is
// reported, each wrapped with [ErrInvalidConfig]; the secret never appears
// in the error.
func NewClient(cfg Config) (*Client, error) {
	var problems []error
	if n := len(cfg.ClientID); n != ClientIDLength || !printable(cfg.ClientID) {
		problems = append(problems, fmt.Errorf("client id must be %d printable ASCII characters, got %d characters", ClientIDLength, n))
	}
	if n := len(cfg.ClientSecret); n != ClientSecretLength || !printable(cfg.ClientSecret) {
		problems = append(problems, fmt.Errorf("client secret must be %d printable ASCII characters, got %d characters", ClientSecretLength, n))
	}
	if err := checkAPIHost(cfg.APIHost); err != nil {
		problems = append(problems, err)
	}
	if err := checkRedirectURI(cfg.RedirectURI); err != nil {
		problems = append(problems, err)
	}
	if cfg.Timeout < 0 {
		problems = append(problems, fmt.Errorf("timeout must not be negative, got %v", cfg.Timeout))
	}
	if cfg.HTTPClient != nil && cfg.RootCAs != nil {
		problems = append(problems, errors.New("set HTTPClient or RootCAs, not both"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(problems...))
	}

	c := &Client{
		clientID:    cfg.ClientID,
		secret:      []byte(cfg.ClientSecret),
		apiHost:     cfg.APIHost,
		redirectURI: cfg.RedirectURI,
		timeout:     cfg.Timeout,
		now:         cfg.Now,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	} else {
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			tr = dt.Clone() // keeps the stdlib's dial, idle and handshake timeouts
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs}
		hc.Transport = tr
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	return c, nil
}

func checkAPIHost(host string) error {
	if host == "" {
		return errors.New("api host is required")
	}
	u, err := url.Parse("https://" + host)
	if err != nil || u.Host != host || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" ||
		u.Hostname() == "" || strings.ContainsAny(host, " \t\r\n/\\?#@") {
		return fmt.Errorf("api host %q must be a host name with an optional port, without scheme or path", host)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("api host %q has an invalid port", host)
		}
	}
	return nil
}

func checkRedirectURI(raw string) error {
	if raw == "" {
		return errors.New("redirect uri is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redirect uri: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return fmt.Errorf("redirect uri %q must be an absolute http(s) URL without user info or fragment", raw)
	}
	return nil
}

// printable reports whether s is non-empty printable ASCII without spaces.
func printable(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func (c *Client) endpoint(path string) string { return "https://" + c.apiHost + path }

// HealthCheck asks Duo whether it can serve this application. It returns
// nil when Duo answered {"stat": "OK"}; otherwise an error wrapping
// [ErrUnavailable] (and an [*APIError] when Duo answered with one, such as
// invalid_client for a wrong secret).
func (c *Client) HealthCheck(ctx context.Context) error {
	u := c.endpoint(healthCheckPath)
	assertion, err := c.assertion(u)
	if err != nil {
		return fmt.Errorf("%w: health check: %w", ErrUnavailable, err)
	}
	form := url.Values{"client_id": {c.clientID}, "client_assertion": {assertion}}
	status, body, err := c.post(ctx, u, form)
	if err != nil {
		return fmt.Errorf("%w: health check: %w", ErrUnavailable, err)
	}
	var resp struct {
		Stat string `json:"stat"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &resp) != nil || resp.Stat != "OK" {
		return fmt.Errorf("%w: health check: %w", ErrUnavailable, newAPIError(status, body))
	}
	return nil
}

// AuthURL returns the URL of Duo's prompt to redirect the browser to, for
// username, carrying state (22 to 1024 characters; Duo returns it to the
// callback) and, unless empty, nonce (the OIDC nonce claim of the request,
// which comes back in the id_token; pass the same value to
// [Client.Exchange]). The request JWT it contains is valid for five
// minutes.
func (c *Client) AuthURL(username, state, nonce string) (string, error) {
	if err := checkUsername(username); err != nil {
		return "", err
	}
	if err := checkState(state); err != nil {
		return "", err
	}
	if nonce != "" {
		if err := checkNonce(nonce); err != nil {
			return "", err
		}
	}
	now := c.now()
	claims := jwt.MapClaims{
		"scope":                  "openid",
		"response_type":          "code",
		"redirect_uri":           c.redirectURI,
		"client_id":              c.clientID,
		"iss":                    c.clientID,
		"aud":                    "https://" + c.apiHost,
		"exp":                    now.Add(assertionLifetime).Unix(),
		"state":                  state,
		"duo_uname":              username,
		"use_duo_code_attribute": true,
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	request, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString(c.secret)
	if err != nil {
		return "", fmt.Errorf("sign duo request: %w", err)
	}
	q := url.Values{"response_type": {"code"}, "client_id": {c.clientID}, "request": {request}}
	return c.endpoint(authorizePath) + "?" + q.Encode(), nil
}

// Exchange redeems duoCode (from the callback) at Duo's token endpoint and
// validates the id_token for username and nonce (empty: not checked; pass
// exactly what [Client.AuthURL] got). It returns the [Result] of an allowed
// authentication. When the token is valid but Duo did not allow, it returns
// the Result and an error wrapping [ErrDenied]. Other failures wrap
// [ErrInvalidInput], [ErrUnavailable], [ErrRejected] or [ErrInvalidToken],
// with a nil Result.
func (c *Client) Exchange(ctx context.Context, duoCode, username, nonce string) (*Result, error) {
	if err := checkCode(duoCode); err != nil {
		return nil, err
	}
	if err := checkUsername(username); err != nil {
		return nil, err
	}
	if nonce != "" {
		if err := checkNonce(nonce); err != nil {
			return nil, err
		}
	}
	u := c.endpoint(tokenPath)
	assertion, err := c.assertion(u)
	if err != nil {
		return nil, fmt.Errorf("%w: token: %w", ErrUnavailable, err)
	}
	form := url.Values{
		"grant_type":            {"authorization_code"},
		"code":                  {duoCode},
		"redirect_uri":          {c.redirectURI},
		"client_id":             {c.clientID},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
	}
	status, body, err := c.post(ctx, u, form)
	if err != nil {
		return nil, fmt.Errorf("%w: token: %w", ErrUnavailable, err)
	}
	switch {
	case status == http.StatusOK:
	case status >= 400 && status < 500 && status != http.StatusTooManyRequests:
		return nil, fmt.Errorf("%w: token: %w", ErrRejected, newAPIError(status, body))
	default:
		return nil, fmt.Errorf("%w: token: %w", ErrUnavailable, newAPIError(status, body))
	}
	var tr struct {
		IDToken string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.IDToken == "" {
		return nil, fmt.Errorf("%w: token: response has no id_token", ErrUnavailable)
	}
	res, err := c.validateIDToken(tr.IDToken, username, nonce)
	if err != nil {
		return nil, err
	}
	if res.Outcome != "allow" {
		return res, fmt.Errorf("%w: result %q, status %q", ErrDenied, res.Outcome, res.Status)
	}
	return res, nil
}

// assertion returns a client assertion JWT for the endpoint aud, as Duo's
// SDKs make it: HS512, iss = sub = client id, five minutes, a random jti.
func (c *Client) assertion(aud string) (string, error) {
	jti, err := randomString(jtiLength)
	if err != nil {
		return "", err
	}
	claims := jwt.MapClaims{
		"iss": c.clientID,
		"sub": c.clientID,
		"aud": aud,
		"exp": c.now().Add(assertionLifetime).Unix(),
		"jti": jti,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString(c.secret)
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return s, nil
}

// post sends form to u, bounded by ctx and the client's timeout, and
// returns the status and at most maxResponseBytes of the body. The error
// only describes the transport (never the form, which holds secrets).
func (c *Client) post(ctx context.Context, u string, form url.Values) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which holds no secret (they are all in
		// the body), and unwraps to the context or network error.
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	if len(body) > maxResponseBytes {
		return 0, nil, fmt.Errorf("response larger than %d bytes", maxResponseBytes)
	}
	return resp.StatusCode, body, nil
}

func checkUsername(username string) error {
	if username == "" || len(username) > maxUsernameLength || strings.ContainsAny(username, "\x00\r\n") {
		return fmt.Errorf("%w: username must be 1 to %d characters without NUL or line breaks", ErrInvalidInput, maxUsernameLength)
	}
	return nil
}

func checkState(state string) error {
	if n := len(state); n < MinStateLength || n > MaxStateLength || !printable(state) {
		return fmt.Errorf("%w: state must be %d to %d printable ASCII characters, got %d characters", ErrInvalidInput, MinStateLength, MaxStateLength, n)
	}
	return nil
}

func checkNonce(nonce string) error {
	if n := len(nonce); n > maxNonceLength || !printable(nonce) {
		return fmt.Errorf("%w: nonce must be 1 to %d printable ASCII characters", ErrInvalidInput, maxNonceLength)
	}
	return nil
}

func checkCode(code string) error {
	if len(code) > maxCodeLength || !printable(code) {
		return fmt.Errorf("%w: duo code must be 1 to %d printable ASCII characters", ErrInvalidInput, maxCodeLength)
	}
	return nil
}

// APIError is an error answer from Duo, wrapped by [ErrUnavailable] or
// [ErrRejected] errors. Its fields come from Duo (the health check's
// stat/code/message/message_detail, or the token endpoint's OAuth
// error/error_description), shortened and stripped of control characters;
// they are safe to log.
type APIError struct {
	// HTTPStatus is the HTTP status code of the answer.
	HTTPStatus int
	// Code is Duo's numeric error code (such as 40002), or 0.
	Code int
	// Message is Duo's message or OAuth error ("invalid_grant").
	Message string
	// Detail is Duo's message_detail or error_description.
	Detail string
}

// Error implements error.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "duo answered http %d", e.HTTPStatus)
	if e.Code != 0 {
		fmt.Fprintf(&b, " code %d", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " (%s)", e.Detail)
	}
	return b.String()
}

func newAPIError(status int, body []byte) *APIError {
	var v struct {
		Stat             string `json:"stat"`
		Code             int    `json:"code"`
		Message          string `json:"message"`
		MessageDetail    string `json:"message_detail"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	e := &APIError{HTTPStatus: status}
	if json.Unmarshal(body, &v) != nil {
		if status == http.StatusOK {
			e.Message = "unexpected response"
		}
		return e
	}
	e.Code = v.Code
	e.Message = clean(firstNonEmpty(v.Message, v.Error))
	e.Detail = clean(firstNonEmpty(v.MessageDetail, v.ErrorDescription))
	if e.Message == "" && v.Stat != "" && v.Stat != "OK" {
		e.Message = "stat " + clean(v.Stat)
	}
	return e
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// clean shortens s to 200 bytes and replaces control characters, so a
// message from Duo cannot forge log lines.
func clean(s string) string {
	const maxLen = 200
	if len(s) > maxLen {
		s = s[:maxLen]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
