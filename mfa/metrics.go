package mfa

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric label values.
const (
	factorLabelTOTP     = "totp"
	factorLabelRecovery = "recovery_code"
	factorLabelDuo      = "duo"
	factorLabelWebAuthn = "webauthn"

	resultSuccess = "success"
	resultFailure = "failure"
	resultReplay  = "replay"
	resultLocked  = "locked"
)

// metrics are the step's Prometheus counters.
type metrics struct {
	// verifications counts code checks by factor and result.
	verifications *prometheus.CounterVec
	// lockouts counts pauses started, by scope (user or ip).
	lockouts *prometheus.CounterVec
	// enrolments counts confirmed authenticator enrolments.
	enrolments prometheus.Counter
	// resets counts factor resets made through the factors page.
	resets prometheus.Counter
	// regenerations counts new sets of recovery codes made through the
	// factors page.
	regenerations prometheus.Counter
	// duoRequests counts calls to Duo by operation and result.
	duoRequests *prometheus.CounterVec
	// redirects counts callbacks from custom MFA services by result.
	redirects *prometheus.CounterVec
}

// Results of redirect callbacks (stepup_mfa_redirect_callbacks_total).
const (
	redirectResultSuccess = "success"
	redirectResultDenied  = "denied"
	redirectResultToken   = "invalid_token"
	redirectResultState   = "invalid_state"
	redirectResultError   = "error"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_mfa_verifications_total",
			Help: "MFA code verifications by factor (totp, recovery_code) and result (success, failure, replay, locked).",
		}, []string{"factor", "result"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_mfa_lockouts_total",
			Help: "Pauses of MFA verification after too many wrong codes, by scope (user, ip).",
		}, []string{"scope"}),
		enrolments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stepup_mfa_enrolments_total",
			Help: "Authenticator apps enrolled and confirmed.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stepup_mfa_factor_resets_total",
			Help: "Factor resets made by users on the factors page.",
		}),
		regenerations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stepup_mfa_recovery_codes_regenerated_total",
			Help: "New sets of recovery codes made by users on the factors page.",
		}),
		duoRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_duo_requests_total",
			Help: "Calls to Duo by operation (health_check, token) and result (ok, unavailable, rejected, invalid_token, denied, error).",
		}, []string{"op", "result"}),
		redirects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_mfa_redirect_callbacks_total",
			Help: "Browsers back from a custom MFA service (redirect protocol) by result (success, denied, invalid_token, invalid_state, error).",
		}, []string{"result"}),
	}
	for _, op := range []string{duoOpHealth, duoOpToken} {
		for _, r := range []string{duoResultOK, duoResultUnavailable, duoResultRejected, duoResultInvalidToken, duoResultDenied, duoResultError} {
			m.duoRequests.WithLabelValues(op, r)
		}
	}
	for _, r := range []string{redirectResultSuccess, redirectResultDenied, redirectResultToken, redirectResultState, redirectResultError} {
		m.redirects.WithLabelValues(r)
	}
	for _, f := range []string{factorLabelTOTP, factorLabelRecovery} {
		for _, r := range []string{resultSuccess, resultFailure, resultReplay, resultLocked} {
			m.verifications.WithLabelValues(f, r)
		}
	}
	m.lockouts.WithLabelValues("user")
	m.lockouts.WithLabelValues("ip")
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.verifications, m.lockouts, m.enrolments, m.resets, m.regenerations, m.duoRequests, m.redirects} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}
