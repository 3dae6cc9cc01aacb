// Package jwtkeys loads the keys that verify JSON Web Tokens: a JWKS from
// a file or a URL (refreshed in the background), an RSA public key from a
// PEM file, or a shared secret.
package jwtkeys

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// JWKSFile reads a JSON Web Key Set from path.
func JWKSFile(path string) (jwt.Keyfunc, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !json.Valid(raw) {
		return nil, errors.New("not valid JSON")
	}
	kf, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return nil, err
	}
	return kf.Keyfunc, nil
}

// JWKSURL fetches a JSON Web Key Set from url and refreshes it every
// refresh until ctx ends. A first fetch that fails is no error: the keys
// come with a later refresh, and each failed refresh is logged.
func JWKSURL(ctx context.Context, url string, refresh time.Duration, log *slog.Logger) (jwt.Keyfunc, error) {
	noErr := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		RefreshInterval:           refresh,
		HTTPTimeout:               5 * time.Second,
		NoErrorReturnFirstHTTPReq: &noErr,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				log.Warn("jwks refresh failed", "url", u, "error", err.Error())
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return kf.Keyfunc, nil
}

// Secret returns the key bytes of a shared secret written raw or, with
// encoding "base64", in any base64 alphabet (padded or not). HS256 needs
// at least 32 bytes.
func Secret(s, encoding string) ([]byte, error) {
	key := []byte(s)
	if encoding == "base64" {
		var err error
		if key, err = decodeBase64(strings.TrimSpace(s)); err != nil {
			return nil, fmt.Errorf("not base64: %w", err)
		}
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("%d bytes; HS256 needs at least 32", len(key))
	}
	return key, nil
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("invalid base64")
}

// RSAPublicKeyFile reads a PEM RSA public key (PKIX or PKCS#1) or a
// certificate holding one.
func RSAPublicKeyFile(path string) (*rsa.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if pub, err := jwt.ParseRSAPublicKeyFromPEM(raw); err == nil {
		return pub, nil
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if block.Type == "CERTIFICATE" {
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok {
			return pub, nil
		}
	}
	return nil, errors.New("not an RSA public key or certificate")
}
