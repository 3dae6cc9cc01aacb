package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/internal/jwtkeys"
	"github.com/stepup-dev/stepup/internal/sessions"
	"github.com/stepup-dev/stepup/mfa"
)

// newMFAStep builds the MFA step pages served under the reserved prefix.
func newMFAStep(cfg *config.Config, a *app, log *slog.Logger) (http.Handler, error) {
	sealer := a.sealer
	if sealer == nil {
		var err error
		if sealer, err = sessions.NewSealer(cfg, log); err != nil {
			return nil, err
		}
	}
	duo, err := duoOptions(cfg)
	if err != nil {
		return nil, err
	}
	redirect, err := redirectOptions(cfg, a)
	if err != nil {
		return nil, err
	}
	brand, translations, err := mfaLook(cfg)
	if err != nil {
		return nil, err
	}
	rl := cfg.MFA.RateLimits
	return mfa.New(mfa.Options{
		Prefix:         cfg.MFA.Prefix,
		Sessions:       a.sessions,
		Store:          a.store,
		Sealer:         sealer,
		Issuer:         cfg.MFA.TOTPIssuer,
		EnrollNetworks: cfg.MFA.EnrollNetworks,
		Limits: mfa.RateLimits{
			UserFailures: rl.UserFailures,
			IPFailures:   rl.IPFailures,
			Lockout:      rl.Lockout.D(),
			MaxLockout:   rl.MaxLockout.D(),
			Window:       rl.Window.D(),
		},
		RememberFor: cfg.Sessions.RememberTTL.D(),
		ReauthAfter: cfg.MFA.ReauthAfter.D(),
		Now:         a.now,
		Logger:      log,
		Audit:       a.audit.MFAHook(),
		Metrics:     a.reg,
		Development: cfg.Development,
		Duo:         duo,
		Redirect:    redirect,
		Realms:      a.realms,
		WebAuthn: mfa.WebAuthnOptions{
			Disabled:         cfg.MFA.WebAuthn.Disabled,
			RPID:             cfg.MFA.WebAuthn.RPID,
			RPName:           cfg.MFA.WebAuthn.RPName,
			UserVerification: cfg.MFA.WebAuthn.UserVerification,
		},
		Brand:        brand,
		Translations: translations,
	})
}

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
