// Package idp is a minimal OpenID provider for end-to-end tests: an RSA
// signing key published as a JWKS file, and RS256 id_tokens signed with it,
// so that stepup's identity.jwt source can be exercised with real tokens.
package idp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// IdP signs tokens with one RSA key.
type IdP struct {
	// Issuer is the iss of every token; Audience its aud.
	Issuer   string
	Audience string
	key      *rsa.PrivateKey
	kid      string
}

// New generates a 2048-bit RSA key. kid names it in the JWKS and in token
// headers.
func New(issuer, audience, kid string) (*IdP, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return &IdP{Issuer: issuer, Audience: audience, key: key, kid: kid}, nil
}

// JWKS returns the public key as a JSON Web Key Set.
func (p *IdP) JWKS() ([]byte, error) {
	pub := p.key.PublicKey
	jwk := map[string]string{
		"kty": "RSA",
		"use": "sig",
		"alg": "RS256",
		"kid": p.kid,
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
	return json.Marshal(map[string]any{"keys": []any{jwk}})
}

// WriteJWKS writes the JWKS to path.
func (p *IdP) WriteJWKS(path string) error {
	b, err := p.JWKS()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// Sign signs claims as an RS256 JWT with the key's kid.
func (p *IdP) Sign(claims jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = p.kid
	return tok.SignedString(p.key)
}

// Claims returns the standard claims of a token for sub that is valid from
// now for an hour; email is omitted when empty.
func (p *IdP) Claims(sub, email string, now time.Time) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": p.Issuer,
		"aud": p.Audience,
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	if email != "" {
		c["email"] = email
	}
	return c
}

// Token signs [IdP.Claims] for sub and email.
func (p *IdP) Token(sub, email string, now time.Time) (string, error) {
	return p.Sign(p.Claims(sub, email, now))
}
