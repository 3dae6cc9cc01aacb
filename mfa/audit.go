package mfa

import (
	"net/http"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// Auditor receives the MFA events of the audit trail. The step waits for
// it: it must be quick, and safe for concurrent use.
type Auditor interface {
	AuditMFA(AuditEvent)
}

// AuditName names an MFA event.
type AuditName string

// The MFA events.
const (
	// AuditEnrolled: a user confirmed their first factor (Factor).
	AuditEnrolled AuditName = "enrolled"
	// AuditVerified: a user passed the step with Factor.
	AuditVerified AuditName = "verified"
	// AuditFailed: a wrong, reused or refused answer (Result).
	AuditFailed AuditName = "failed"
	// AuditLocked: verification paused for a user or an address (Scope)
	// after Failures failures, for Pause.
	AuditLocked AuditName = "locked"
	// AuditFactorsReset: every factor and recovery code removed (Removed).
	AuditFactorsReset AuditName = "factors_reset"
	// AuditCodesRegenerated: a new set of recovery codes.
	AuditCodesRegenerated AuditName = "recovery_codes_regenerated"
	// AuditPasskeyAdded: another passkey or security key (Factor).
	AuditPasskeyAdded AuditName = "passkey_added"
	// AuditPasskeyRemoved: a passkey or security key removed (Device is
	// its id).
	AuditPasskeyRemoved AuditName = "passkey_removed"
	// AuditAuthenticatorRemoved: the authenticator app removed.
	AuditAuthenticatorRemoved AuditName = "authenticator_removed"
	// AuditBrowserForgotten: one remembered browser (Device) forgotten.
	AuditBrowserForgotten AuditName = "browser_forgotten"
	// AuditSessionsRevoked: MFA sessions and remembered browsers revoked
	// (Removed.Sessions of them; Device when only one was named).
	AuditSessionsRevoked AuditName = "sessions_revoked"
)

// AuditNames returns every MFA event name.
func AuditNames() []AuditName {
	return []AuditName{AuditEnrolled, AuditVerified, AuditFailed, AuditLocked, AuditFactorsReset, AuditCodesRegenerated,
		AuditPasskeyAdded, AuditPasskeyRemoved, AuditAuthenticatorRemoved, AuditBrowserForgotten, AuditSessionsRevoked}
}

// Who acted, for AuditEvent.By.
const (
	AuditByUser  = "user"  // the user, on the step's pages
	AuditByCLI   = "cli"   // the command line, on the session store
	AuditByAdmin = "admin" // the command line, through the admin endpoint
)

// AuditEvent is one MFA event. It carries no code, secret, state,
// cookie or credential: only who, what, where and counts.
type AuditEvent struct {
	Name AuditName
	By   string
	User string
	// ClientIP, Host and RequestID are those of the request (events by
	// the user).
	ClientIP, Host, RequestID string
	// Factor is the factor the event is about: otp, recovery-code,
	// webauthn-platform, webauthn-roaming, duo, redirect:<service>.
	Factor string
	// Result is why an answer failed: failure, replay, or Duo's result.
	Result string
	// Scope, Failures and Pause describe a pause (user or ip).
	Scope    string
	Failures int64
	Pause    time.Duration
	// Device is the id of the passkey, remembered browser or session
	// concerned.
	Device string
	// Removed counts what a reset or a revocation removed.
	Removed *ResetResult
}

// audit hands e, about a request of the user, to the auditor if any.
func (h *Handler) audit(r *http.Request, e AuditEvent) {
	if h.auditor == nil {
		return
	}
	e.By = AuditByUser
	e.Host = r.Host
	e.RequestID = requestID(r).Value.String()
	h.auditor.AuditMFA(e)
}

// auditFactor names the factor of a metric label as the session does (a
// failed passkey answer does not say which kind of passkey it was).
func auditFactor(label string) string {
	switch label {
	case factorLabelTOTP:
		return session.FactorOTP
	case factorLabelRecovery:
		return session.FactorRecoveryCode
	}
	return label // duo, webauthn
}
