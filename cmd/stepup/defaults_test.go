package main

import (
	"testing"
	"time"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/session"
)

// TestDefaultsAgree: the configuration holds the defaults stepup runs
// with and passes them explicitly; the libraries' defaults for their zero
// values are the same, so that a library used on its own behaves as the
// server does.
func TestDefaultsAgree(t *testing.T) {
	cfg := config.Default()
	s := cfg.Sessions
	for _, tc := range []struct {
		name      string
		cfg, zero time.Duration
	}{
		{"mfa_session_ttl", s.MFASessionTTL.D(), session.DefaultMFASessionTTL},
		{"mfa_session_idle", s.MFASessionIdle.D(), session.DefaultMFASessionIdle},
		{"remember_ttl", s.RememberTTL.D(), session.DefaultRememberTTL},
		{"remember_idle", s.RememberIdle.D(), 0},
		{"state_ttl", s.StateTTL.D(), session.DefaultStateTTL},
	} {
		if tc.cfg != tc.zero {
			t.Errorf("sessions.%s: configuration default %v, session default %v", tc.name, tc.cfg, tc.zero)
		}
	}
	if s.MaxDevices != session.DefaultMaxDevices || s.CookiePrefix != session.DefaultCookiePrefix {
		t.Errorf("sessions: max_devices_per_user %d, cookie_prefix %q; session defaults %d, %q", s.MaxDevices, s.CookiePrefix, session.DefaultMaxDevices, session.DefaultCookiePrefix)
	}
	l := cfg.Limits
	if got := (extauthz.Limits{MaxHeaderBytes: l.MaxHeaderBytes, MaxHeadersBytes: l.MaxHeadersBytes, MaxPathBytes: l.MaxPathBytes}); got != extauthz.DefaultLimits {
		t.Errorf("limits: configuration defaults %+v, extauthz defaults %+v", got, extauthz.DefaultLimits)
	}
}
