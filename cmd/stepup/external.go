package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/mfa"
)

// duoOptions builds the MFA step's Duo settings from mfa.duo.
func duoOptions(cfg *config.Config) (mfa.DuoOptions, error) {
	d := cfg.MFA.Duo
	o := mfa.DuoOptions{Fallback: d.Fallback, Timeout: d.Timeout.D()}
	if d.UsernameClaim != "" {
		o.UsernameClaims = []string{d.UsernameClaim}
	}
	if d.CAFile != "" {
		raw, err := os.ReadFile(cfg.Resolve(d.CAFile))
		if err != nil {
			return o, fmt.Errorf("mfa.duo.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(raw) {
			return o, fmt.Errorf("mfa.duo.ca_file %s: no PEM certificates found", d.CAFile)
		}
		o.RootCAs = pool
	}
	return o, nil
}

// redirectOptions builds the MFA step's continue endpoint: the rules
// re-run through the decision core, and the token checks of
// mfa.redirect.verify and of each declared service's own verify.
func redirectOptions(cfg *config.Config, a *app) (mfa.RedirectOptions, error) {
	var o mfa.RedirectOptions
	if a.rules != nil {
		o.Continuer = rulesContinuer{authz: a.authz}
	}
	var err error
	if v := cfg.MFA.Redirect.Verify; v != nil {
		if o.Verify, err = tokenVerification(cfg, "mfa.redirect.verify", v); err != nil {
			return o, err
		}
	}
	for i, svc := range cfg.MFA.Redirect.Services {
		if o.Services == nil {
			o.Services = make(map[string]*mfa.TokenVerification)
		}
		if svc.Verify == nil {
			// verified_by_rule: the rules check the return.
			o.Services[svc.Name] = nil
			continue
		}
		tv, err := tokenVerification(cfg, fmt.Sprintf("mfa.redirect.services[%d].verify", i), svc.Verify)
		if err != nil {
			return o, err
		}
		o.Services[svc.Name] = tv
	}
	return o, nil
}

// tokenVerification builds the check of a returned token from v, the
// configuration at path.
func tokenVerification(cfg *config.Config, path string, v *config.RedirectVerify) (*mfa.TokenVerification, error) {
	tv := &mfa.TokenVerification{Issuer: v.Issuer, Audience: v.Audience, Leeway: v.Leeway.D()}
	switch {
	case !v.Secret.IsZero():
		s, err := v.Secret.Resolve(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s.secret: %w", path, err)
		}
		key := []byte(s)
		if v.SecretEncoding == "base64" {
			if key, err = decodeBase64(strings.TrimSpace(s)); err != nil {
				return nil, fmt.Errorf("%s.secret: not base64: %w", path, err)
			}
		}
		if len(key) < 32 {
			return nil, fmt.Errorf("%s.secret: %d bytes; HS256 needs at least 32", path, len(key))
		}
		tv.Algorithms = []string{"HS256"}
		tv.Keyfunc = func(*jwt.Token) (any, error) { return key, nil }
	case v.PublicKeyFile != "":
		raw, err := os.ReadFile(cfg.Resolve(v.PublicKeyFile))
		if err != nil {
			return nil, fmt.Errorf("%s.public_key_file: %w", path, err)
		}
		pub, err := rsaPublicKey(raw)
		if err != nil {
			return nil, fmt.Errorf("%s.public_key_file: %w", path, err)
		}
		tv.Algorithms = []string{"RS256"}
		tv.Keyfunc = func(*jwt.Token) (any, error) { return pub, nil }
	case v.JWKSFile != "":
		raw, err := os.ReadFile(cfg.Resolve(v.JWKSFile))
		if err != nil {
			return nil, fmt.Errorf("%s.jwks_file: %w", path, err)
		}
		if !json.Valid(raw) {
			return nil, fmt.Errorf("%s.jwks_file: not valid JSON", path)
		}
		kf, err := keyfunc.NewJWKSetJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s.jwks_file: %w", path, err)
		}
		tv.Algorithms = []string{"RS256"}
		tv.Keyfunc = kf.Keyfunc
	default:
		return nil, fmt.Errorf("%s: no key", path)
	}
	return tv, nil
}

func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("invalid base64")
}

// rsaPublicKey reads a PEM RSA public key (PKIX or PKCS#1) or a
// certificate holding one.
func rsaPublicKey(raw []byte) (*rsa.PublicKey, error) {
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

// rulesContinuer re-runs the rules for the MFA step's continue endpoint
// (mfa cannot import the decision core).
type rulesContinuer struct {
	authz *extauthz.Server
}

// Continue implements mfa.Continuer.
func (c rulesContinuer) Continue(ctx context.Context, in mfa.ContinueInput) (mfa.ContinueResult, error) {
	ip, err := netip.ParseAddr(in.ClientIP)
	if err != nil {
		return mfa.ContinueResult{}, fmt.Errorf("client address %q: %w", in.ClientIP, err)
	}
	res := c.authz.Resume(ctx, extauthz.ResumeInput{
		User: in.User, SID: in.SID, Claims: in.Claims,
		ClientID: in.ClientID, ReturnURL: in.ReturnURL, Hostname: in.Hostname,
		ClientIP: ip, UserAgent: in.UserAgent, Query: in.Query, Body: in.Body,
	})
	switch {
	case res.Err == nil:
		return mfa.ContinueResult{}, nil
	case res.Err.Status == http.StatusForbidden:
		return mfa.ContinueResult{Denied: true, Message: res.Err.Message, Rule: res.Err.Rule}, nil
	default:
		return mfa.ContinueResult{}, fmt.Errorf("rules: %s (status %d, rule %q)", res.Err.Reason, res.Err.Status, res.Err.Rule)
	}
}
