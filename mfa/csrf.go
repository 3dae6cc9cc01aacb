package mfa

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

const (
	// purposeCSRF is the keyring purpose of CSRF tokens.
	purposeCSRF = "csrf"
	// csrfTTL bounds a form's life; the state's own expiry is checked too.
	csrfTTL = time.Hour
	// bindFactors is what CSRF tokens of the factors page are bound to
	// instead of a state.
	bindFactors = "factors"
)

// csrfClaims is the payload of a CSRF token: the user, the state (or
// bindFactors) and the form it was made for, where the state returns to
// (for the "start again" link of a form posted after the state expired),
// and an expiry.
type csrfClaims struct {
	User   string `json:"u"`
	Bind   string `json:"b"`
	Form   string `json:"f"`
	Return string `json:"r,omitempty"`
	Expiry int64  `json:"exp"`
}

// csrfToken signs a token for form, bound to user and bind. ret is
// included when the token stays within size.
func (h *Handler) csrfToken(user, bind, form, ret string) (string, error) {
	c := csrfClaims{User: user, Bind: bind, Form: form, Return: ret, Expiry: h.now().Add(csrfTTL).Unix()}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	tok, err := h.kr.Sign(purposeCSRF, payload)
	if err != nil && ret != "" {
		return h.csrfToken(user, bind, form, "")
	}
	return tok, err
}

// checkCSRF verifies a posted token for user, bind and form, and returns
// its return URL.
func (h *Handler) checkCSRF(token, user, bind, form string) (string, bool) {
	if token == "" {
		return "", false
	}
	payload, err := h.kr.Verify(purposeCSRF, token)
	if err != nil {
		return "", false
	}
	var c csrfClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", false
	}
	ok := subtle.ConstantTimeCompare([]byte(c.User), []byte(user)) == 1
	ok = subtle.ConstantTimeCompare([]byte(c.Bind), []byte(bind)) == 1 && ok
	ok = c.Form == form && ok
	ok = h.now().Before(time.Unix(c.Expiry, 0)) && ok
	if !ok {
		return "", false
	}
	return c.Return, true
}

// sameOrigin checks the browser's own statement of where a POST comes
// from, when it makes one: Sec-Fetch-Site must be same-origin (or none,
// a user action), and Origin must be this host over https (or http in
// development). Browsers that send neither rely on the CSRF token alone.
//
// The step's pages set Referrer-Policy: no-referrer, under which browsers
// send "Origin: null" with every POST, even to the same origin (Fetch,
// "serializing a request origin"; Chromium does). "null" is therefore
// accepted, but only when Sec-Fetch-Site says same-origin: the same
// "null" from a sandboxed frame or a data: URL on another site comes
// with cross-site, and without Sec-Fetch-Site it proves nothing.
func (h *Handler) sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "", "same-origin", "none":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if origin == "null" {
		return site == "same-origin"
	}
	u, err := url.Parse(origin)
	if err != nil || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Host == "" {
		return false
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && (h.dev || loopbackHost(r.Host))) {
		return false
	}
	got, ok1 := canonicalHost(u.Host, u.Scheme)
	want, ok2 := canonicalHost(r.Host, u.Scheme)
	return ok1 && ok2 && got == want
}
