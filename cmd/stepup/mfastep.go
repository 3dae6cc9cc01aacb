package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/internal/mfaconfig"
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
	duo, err := mfaconfig.Duo(cfg)
	if err != nil {
		return nil, err
	}
	redirect, err := redirectOptions(cfg, a)
	if err != nil {
		return nil, err
	}
	brand, translations, err := mfaconfig.Look(cfg)
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

// redirectOptions builds the MFA step's continue endpoint: the token
// checks of the configuration, and the rules re-run through the decision
// core.
func redirectOptions(cfg *config.Config, a *app) (mfa.RedirectOptions, error) {
	o, err := mfaconfig.Redirect(cfg)
	if err == nil && a.rules != nil {
		o.Continuer = rulesContinuer{authz: a.authz}
	}
	return o, err
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
