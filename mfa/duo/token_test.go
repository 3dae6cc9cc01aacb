package duo

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
)

const (
	unitClientID = "DIUNITTESTCLIENT0001"
	unitSecret   = "unit-test-secret-unit-test-secret-unit-t"
	unitHost     = "api-unit.duosecurity.com"
)

func unitClient(t testing.TB) *Client {
	t.Helper()
	c, err := NewClient(Config{
		ClientID: unitClientID, ClientSecret: unitSecret, APIHost: unitHost,
		RedirectURI: testRedirect, Now: clock(t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":                "https://" + unitHost + "/oauth/v1/token",
		"aud":                unitClientID,
		"sub":                testUser,
		"preferred_username": testUser,
		"nonce":              testNonce,
		"iat":                t0.Unix(),
		"exp":                t0.Add(5 * time.Minute).Unix(),
		"auth_time":          t0.Unix(),
		"auth_result":        map[string]any{"result": "allow", "status": "allow", "status_msg": "Login Successful"},
		"auth_context": map[string]any{
			"txid": "tx-1", "factor": "duo_push", "reason": "user_approved",
			"auth_device": map[string]any{"name": "Phone"}, "access_device": map[string]any{"ip": "192.0.2.1"},
		},
	}
}

func hs512(t testing.TB, key string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// idTokenCases are id_tokens built by hand, for edge cases the fake does
// not produce; they also seed FuzzValidateIDToken.
func idTokenCases(t testing.TB) []struct {
	name    string
	raw     string
	want    *Result
	wantErr error
} {
	with := func(mod func(jwt.MapClaims)) string {
		c := maps.Clone(goodClaims())
		mod(c)
		return hs512(t, unitSecret, c)
	}
	good := &Result{
		Username: testUser, Subject: testUser, AuthTime: t0, Outcome: "allow", Status: "allow",
		StatusMessage: "Login Successful", Factor: "duo_push", Reason: "user_approved", TxID: "tx-1",
		DeviceName: "Phone", AccessIP: "192.0.2.1",
	}
	lenient := *good
	lenient.AuthTime, lenient.Factor, lenient.DeviceName, lenient.TxID = time.Time{}, "", "", ""
	deny := *good
	deny.Outcome = "deny"
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		strings.Split(hs512(t, unitSecret, goodClaims()), ".")[1] + "."

	return []struct {
		name    string
		raw     string
		want    *Result
		wantErr error
	}{
		{name: "good", raw: hs512(t, unitSecret, goodClaims()), want: good},
		{name: "aud as one-element array", raw: with(func(c jwt.MapClaims) { c["aud"] = []string{unitClientID} }), want: good},
		{name: "deny is not an invalid token", raw: with(func(c jwt.MapClaims) {
			c["auth_result"] = map[string]any{"result": "deny", "status": "allow", "status_msg": "Login Successful"}
		}), want: &deny},
		{name: "odd auth_context types are ignored", raw: with(func(c jwt.MapClaims) {
			c["auth_time"] = "yesterday"
			c["auth_context"] = map[string]any{"txid": 7, "factor": []int{1}, "reason": "user_approved", "auth_device": map[string]any{"name": nil}, "access_device": map[string]any{"ip": "192.0.2.1"}}
		}), want: &lenient},
		{name: "alg none", raw: none, wantErr: errSignature},
		{name: "other secret", raw: hs512(t, strings.Repeat("z", 40), goodClaims()), wantErr: errSignature},
		{name: "two audiences", raw: with(func(c jwt.MapClaims) { c["aud"] = []string{unitClientID, "DIOTHER"} }), wantErr: errAudience},
		{name: "no iat", raw: with(func(c jwt.MapClaims) { delete(c, "iat") }), wantErr: errMissingClaim},
		{name: "no exp", raw: with(func(c jwt.MapClaims) { delete(c, "exp") }), wantErr: errMissingClaim},
		{name: "no issuer", raw: with(func(c jwt.MapClaims) { delete(c, "iss") }), wantErr: errMissingClaim},
		{name: "issuer of another host", raw: with(func(c jwt.MapClaims) { c["iss"] = "https://api-other.duosecurity.com/oauth/v1/token" }), wantErr: errIssuer},
		{name: "nbf in the future", raw: with(func(c jwt.MapClaims) { c["nbf"] = t0.Add(5 * time.Minute).Unix() }), wantErr: errNotYetValid},
		{name: "no preferred_username", raw: with(func(c jwt.MapClaims) { delete(c, "preferred_username") }), wantErr: errMissingClaim},
		{name: "preferred_username differs in case", raw: with(func(c jwt.MapClaims) { c["preferred_username"] = "Alice@example.com" }), wantErr: errUsername},
		{name: "no auth_result", raw: with(func(c jwt.MapClaims) { delete(c, "auth_result") }), wantErr: errMissingClaim},
		{name: "auth_result without result", raw: with(func(c jwt.MapClaims) { c["auth_result"] = map[string]any{"status": "allow"} }), wantErr: errMissingClaim},
		{name: "auth_result.result not a string", raw: with(func(c jwt.MapClaims) { c["auth_result"] = map[string]any{"result": true} }), wantErr: errMalformed},
		{name: "exp as string", raw: with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), wantErr: errMalformed},
		{name: "nonce of another request", raw: with(func(c jwt.MapClaims) { c["nonce"] = testNonce + "x" }), wantErr: errNonce},
		{name: "no nonce", raw: with(func(c jwt.MapClaims) { delete(c, "nonce") }), wantErr: errMissingClaim},
		{name: "garbage", raw: "not a token", wantErr: errMalformed},
		{name: "empty", raw: "", wantErr: errMalformed},
	}
}

func TestValidateIDToken(t *testing.T) {
	c := unitClient(t)
	for _, tt := range idTokenCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.validateIDToken(tt.raw, testUser, testNonce)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("validateIDToken: %v", err)
			}
			if tt.wantErr != nil && (!errors.Is(err, ErrInvalidToken) || !errors.Is(err, tt.wantErr)) {
				t.Fatalf("validateIDToken error = %v, want ErrInvalidToken and %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzValidateIDToken checks that no id_token makes validation panic, and
// that an accepted one is really HS512-signed with the secret, for the
// user, with the nonce.
func FuzzValidateIDToken(f *testing.F) {
	for _, tt := range idTokenCases(f) {
		f.Add(tt.raw, testUser, testNonce)
	}
	f.Add(hs512(f, unitSecret, goodClaims()), testUser, "")
	c := unitClient(f)
	f.Fuzz(func(t *testing.T, raw, username, nonce string) {
		res, err := c.validateIDToken(raw, username, nonce)
		if err != nil {
			if res != nil || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("validateIDToken = %v, %v; want nil and ErrInvalidToken", res, err)
			}
			return
		}
		if res == nil || res.Username != username {
			t.Fatalf("accepted a token for %+v, want user %q", res, username)
		}
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted %q, not a compact JWS", raw)
		}
		m := hmac.New(sha512.New, []byte(unitSecret))
		m.Write([]byte(parts[0] + "." + parts[1]))
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !hmac.Equal(sig, m.Sum(nil)) {
			t.Fatalf("accepted %q without a valid HS512 signature", raw)
		}
		if nonce != "" {
			var claims jwt.MapClaims
			if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err != nil || claims["nonce"] != nonce {
				t.Fatalf("accepted %q without nonce %q", raw, nonce)
			}
		}
	})
}
