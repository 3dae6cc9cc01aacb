// Package mfaconfig builds the MFA step's options from the configuration:
// Duo's settings, the token checks of the redirect continue endpoint, and
// the branding and messages of the pages. It reads the files the
// configuration names; it wires nothing.
package mfaconfig

import (
	"crypto/x509"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/internal/jwtkeys"
	"github.com/stepup-dev/stepup/mfa"
)

// Duo builds the MFA step's Duo settings from mfa.duo.
func Duo(cfg *config.Config) (mfa.DuoOptions, error) {
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

// Redirect builds the token checks of the MFA step's continue endpoint:
// mfa.redirect.verify and each declared service's own verify. The caller
// sets the Continuer (the rules re-run through the decision core).
func Redirect(cfg *config.Config) (mfa.RedirectOptions, error) {
	var o mfa.RedirectOptions
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
		if err == nil {
			var key []byte
			if key, err = jwtkeys.Secret(s, v.SecretEncoding); err == nil {
				tv.Algorithms, tv.Keyfunc = []string{"HS256"}, func(*jwt.Token) (any, error) { return key, nil }
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s.secret: %w", path, err)
		}
	case v.PublicKeyFile != "":
		pub, err := jwtkeys.RSAPublicKeyFile(cfg.Resolve(v.PublicKeyFile))
		if err != nil {
			return nil, fmt.Errorf("%s.public_key_file: %w", path, err)
		}
		tv.Algorithms, tv.Keyfunc = []string{"RS256"}, func(*jwt.Token) (any, error) { return pub, nil }
	case v.JWKSFile != "":
		kf, err := jwtkeys.JWKSFile(cfg.Resolve(v.JWKSFile))
		if err != nil {
			return nil, fmt.Errorf("%s.jwks_file: %w", path, err)
		}
		tv.Algorithms, tv.Keyfunc = []string{"RS256"}, kf
	default:
		return nil, fmt.Errorf("%s: no key", path)
	}
	return tv, nil
}

// maxMessagesFile bounds mfa.messages_file.
const maxMessagesFile = 1 << 20

// Look reads the branding and messages files of the MFA pages.
func Look(cfg *config.Config) (mfa.Branding, map[string]map[string]string, error) {
	b := mfa.Branding{Organisation: cfg.MFA.Branding.Organisation, Accent: cfg.MFA.Branding.AccentColor}
	if f := cfg.MFA.Branding.LogoFile; f != "" {
		logo, err := readBounded(f, mfa.MaxLogoBytes)
		if err != nil {
			return b, nil, fmt.Errorf("mfa.branding.logo_file: %w", err)
		}
		b.Logo = logo
	}
	var tr map[string]map[string]string
	if f := cfg.MFA.MessagesFile; f != "" {
		raw, err := readBounded(f, maxMessagesFile)
		if err != nil {
			return b, nil, fmt.Errorf("mfa.messages_file: %w", err)
		}
		if err := yaml.Unmarshal(raw, &tr); err != nil {
			return b, nil, fmt.Errorf("mfa.messages_file %s: must map language tags to message ids to texts: %w", f, err)
		}
	}
	return b, tr, nil
}

func readBounded(path string, limit int) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > int64(limit) {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, st.Size(), limit)
	}
	return os.ReadFile(path)
}
