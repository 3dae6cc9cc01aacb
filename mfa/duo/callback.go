package duo

import (
	"crypto/rand"
	"fmt"
	"net/url"
)

// Callback is what Duo sends back to the redirect URI.
type Callback struct {
	// State is the state given to [Client.AuthURL]. The caller must check
	// that it is the transaction's, and consume it, before calling
	// [Client.Exchange].
	State string
	// Code is the duo_code to pass to [Client.Exchange]. It is a credential:
	// never log it.
	Code string
}

// ParseCallback reads Duo's callback query: state and duo_code, each
// exactly once. When Duo came back with an OAuth error instead, the error
// wraps [ErrRejected] and names it (Callback.State is still set when
// present, so the caller can end the transaction). A missing, repeated or
// malformed parameter wraps [ErrInvalidInput].
func ParseCallback(q url.Values) (Callback, error) {
	var cb Callback
	if s, ok := single(q, "state"); ok && checkState(s) == nil {
		cb.State = s
	}
	if e := q.Get("error"); e != "" {
		return cb, fmt.Errorf("%w: callback error %q: %q", ErrRejected, clean(e), clean(q.Get("error_description")))
	}
	if cb.State == "" {
		return Callback{}, fmt.Errorf("%w: callback needs exactly one state of %d to %d printable ASCII characters", ErrInvalidInput, MinStateLength, MaxStateLength)
	}
	code, ok := single(q, "duo_code")
	if !ok || checkCode(code) != nil {
		return Callback{}, fmt.Errorf("%w: callback needs exactly one duo_code of 1 to %d printable ASCII characters", ErrInvalidInput, maxCodeLength)
	}
	cb.Code = code
	return cb, nil
}

func single(q url.Values, key string) (string, bool) {
	v := q[key]
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// NewNonce returns 36 random alphanumeric characters (about 214 bits from
// crypto/rand), fit for a nonce or a Duo state.
func NewNonce() (string, error) { return randomString(jtiLength) }

const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n characters drawn uniformly from alphanumeric.
func randomString(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("read random: %w", err)
		}
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps the draw uniform.
			if b < 248 && len(out) < n {
				out = append(out, alphanumeric[int(b)%len(alphanumeric)])
			}
		}
	}
	return string(out), nil
}
