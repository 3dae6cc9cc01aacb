package main

import (
	"log/slog"
	"net/http"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/mfa"
)

// newMFAStep builds the MFA step pages served under the reserved prefix.
func newMFAStep(cfg *config.Config, a *app, log *slog.Logger) (http.Handler, error) {
	sealer := a.sealer
	if sealer == nil {
		var err error
		if sealer, err = newSealer(cfg, log); err != nil {
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
