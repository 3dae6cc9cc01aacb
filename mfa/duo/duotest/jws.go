package duotest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// The fake signs and verifies its JWTs with this small HS512/HS256 JWS
// code instead of a JOSE library, so that a bug shared with the client's
// library (golang-jwt) cannot hide on both sides.

var b64 = base64.RawURLEncoding

// sign returns the compact JWS of claims, HMAC-signed with key under alg
// ("HS512" or "HS256").
func sign(alg string, key []byte, claims any) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	mac, err := macOf(alg, key, input)
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(mac), nil
}

func macOf(alg string, key []byte, input string) ([]byte, error) {
	var h func() hash.Hash
	switch alg {
	case "HS512":
		h = sha512.New
	case "HS256":
		h = sha256.New
	default:
		return nil, fmt.Errorf("unsupported alg %q", alg)
	}
	m := hmac.New(h, key)
	m.Write([]byte(input))
	return m.Sum(nil), nil
}

// verify checks that raw is a compact JWS with alg HS512 whose HMAC under
// key is valid, and decodes its payload into dst.
func verify(raw string, key []byte, dst any) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hb, &header); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if header.Alg != "HS512" {
		return fmt.Errorf("alg %q is not HS512", header.Alg)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	want, err := macOf("HS512", key, parts[0]+"."+parts[1])
	if err != nil {
		return err
	}
	if !hmac.Equal(sig, want) {
		return errors.New("bad signature")
	}
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	return nil
}

// registered holds the registered claims the fake checks.
type registered struct {
	Issuer   string      `json:"iss"`
	Subject  string      `json:"sub"`
	Audience audience    `json:"aud"`
	Expiry   json.Number `json:"exp"`
	ID       string      `json:"jti"`
}

// audience is a JWT "aud": one string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

func (a audience) contains(s string) bool {
	for _, v := range a {
		if v == s {
			return true
		}
	}
	return false
}

// expiry checks that exp is present and not more than leeway in the past.
// It returns the expiry time.
func (r registered) expiry(now time.Time, leeway time.Duration) (time.Time, error) {
	if r.Expiry == "" {
		return time.Time{}, errors.New("exp is missing")
	}
	f, err := r.Expiry.Float64()
	if err != nil {
		return time.Time{}, errors.New("exp is not a number")
	}
	exp := time.Unix(int64(f), 0)
	if now.Add(-leeway).After(exp) {
		return time.Time{}, errors.New("expired")
	}
	return exp, nil
}
