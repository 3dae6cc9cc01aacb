package session

import (
	"slices"
	"strings"
)

// FactorMeets is the requirement table: whether a proof of factor meets a
// requirement for provider, restricted to allowed when allowed is not
// empty. duoFallback says whether the configuration lets the
// authenticator app stand in for Duo while Duo is down.
//
//	provider              met by
//	any, ""               otp, recovery-code, duo, webauthn-platform,
//	                      webauthn-roaming, redirect:<service>
//	google-authenticator  otp, recovery-code
//	guardian              otp, recovery-code
//	duo                   duo; duo-fallback when the fallback is on
//	anything else         nothing
//
// A completed redirect that is not a declared MFA service ("done:…") meets
// no requirement. Whether a service is declared is the caller's to check
// (extauthz does). The MFA step uses the same table to choose which
// factors to offer; docs/security-model.md carries it too.
func FactorMeets(provider string, allowed []string, factor string, duoFallback bool) bool {
	if len(allowed) > 0 && !slices.Contains(allowed, factor) {
		// The duo-fallback marker stands for Duo in an allow list too.
		if !(factor == FactorDuoFallback && slices.Contains(allowed, FactorDuo)) {
			return false
		}
	}
	switch provider {
	case "any", "":
		return IsFactor(factor) && !strings.HasPrefix(factor, CompletedPrefix)
	case "google-authenticator", "guardian":
		return factor == FactorOTP || factor == FactorRecoveryCode
	case "duo":
		return factor == FactorDuo || duoFallback && factor == FactorDuoFallback
	}
	return false
}
