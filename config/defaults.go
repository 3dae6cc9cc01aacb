package config

import "time"

// setDefaults fills in what neither the file nor the embedded default set.
func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	defDur := func(d *Duration, v time.Duration) {
		if *d == 0 {
			*d = Duration(v)
		}
	}
	def(&c.DataDir, "stepup-data")
	def(&c.Log.Level, "info")
	def(&c.Log.Decisions, "non_allow")
	def(&c.Log.Audit.Decisions, "all")
	def(&c.Server.GRPC.Listen, "127.0.0.1:9191")
	def(&c.Server.HTTP.Listen, "127.0.0.1:9192")
	if c.Server.GRPC.MaxRecvBytes == 0 {
		c.Server.GRPC.MaxRecvBytes = 4 << 20
	}
	defDur(&c.Server.GRPC.KeepaliveMinTime, 5*time.Second)
	defDur(&c.Server.ShutdownTimeout, 10*time.Second)
	if c.ClientIP.TrustedProxies == nil && c.ClientIP.TrustedHops == 0 {
		c.ClientIP.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	}
	def(&c.Identity.JWTAuthn.Namespace, "envoy.filters.http.jwt_authn")
	def(&c.Identity.JWTAuthn.Key, "jwt_payload")
	def(&c.Identity.UserClaim, "sub")
	defDur(&c.Identity.JWT.JWKSRefresh, 10*time.Minute)
	defDur(&c.Identity.JWT.Leeway, 30*time.Second)
	if len(c.Identity.JWT.Algorithms) == 0 {
		c.Identity.JWT.Algorithms = []string{"RS256", "ES256", "EdDSA"}
	}
	def(&c.Clients.Default, "default")
	def(&c.MFA.Prefix, "/.stepup/")
	def(&c.MFA.TOTPIssuer, "stepup")
	defDur(&c.MFA.ReauthAfter, 15*time.Minute)
	if c.MFA.RateLimits.UserFailures == 0 {
		c.MFA.RateLimits.UserFailures = 5
	}
	if c.MFA.RateLimits.IPFailures == 0 {
		c.MFA.RateLimits.IPFailures = 20
	}
	defDur(&c.MFA.RateLimits.Lockout, time.Minute)
	defDur(&c.MFA.RateLimits.MaxLockout, time.Hour)
	defDur(&c.MFA.RateLimits.Window, 24*time.Hour)
	def(&c.MFA.Duo.Fallback, "none")
	def(&c.MFA.WebAuthn.UserVerification, "preferred")
	defDur(&c.MFA.Duo.Timeout, 10*time.Second)
	verifies := []*RedirectVerify{c.MFA.Redirect.Verify}
	for i := range c.MFA.Redirect.Services {
		verifies = append(verifies, c.MFA.Redirect.Services[i].Verify)
	}
	for _, v := range verifies {
		if v != nil {
			def(&v.SecretEncoding, "raw")
			defDur(&v.Leeway, 30*time.Second)
		}
	}
	def(&c.Policy.Mode, "enforce")
	def(&c.Upstream.UserHeader, "x-stepup-user")
	def(&c.Upstream.EmailHeader, "x-stepup-email")
	def(&c.Upstream.MFAHeader, "x-stepup-mfa")
	def(&c.Upstream.NetworkHeader, "x-stepup-network")
	def(&c.Upstream.ClaimPrefix, "x-stepup-claim-")
	if c.Policy.MFAExemptNetworks == nil {
		c.Policy.MFAExemptNetworks = []string{"corporate"}
	}
	def(&c.Policy.Provider, "any")
	defDur(&c.Rules.RuleTimeout, 100*time.Millisecond)
	defDur(&c.Rules.PipelineTimeout, 300*time.Millisecond)
	if c.Rules.MaxRuntimeMemory == 0 {
		c.Rules.MaxRuntimeMemory = 64 << 20
	}
	def(&c.Sessions.CookiePrefix, "stepup")
	defDur(&c.Sessions.MFASessionTTL, 12*time.Hour)
	defDur(&c.Sessions.MFASessionIdle, time.Hour)
	defDur(&c.Sessions.RememberTTL, 30*24*time.Hour)
	defDur(&c.Sessions.StateTTL, time.Hour)
	if c.Sessions.MaxDevices == 0 {
		c.Sessions.MaxDevices = 20
	}
	def(&c.Sessions.Store.Type, "bolt")
	defDur(&c.Sessions.Store.Redis.Timeout, 200*time.Millisecond)
	if c.Sessions.Store.Redis.DeadlineFraction == 0 {
		c.Sessions.Store.Redis.DeadlineFraction = 0.5
	}
	if c.Sessions.Store.Redis.Breaker.Failures == 0 {
		c.Sessions.Store.Redis.Breaker.Failures = 3
	}
	defDur(&c.Sessions.Store.Redis.Breaker.Cooldown, 500*time.Millisecond)
	def(&c.Sessions.Store.Redis.KeyPrefix, "stepup:")
	if c.Sessions.Store.Redis.CacheTTL == nil {
		d := Duration(2 * time.Second)
		c.Sessions.Store.Redis.CacheTTL = &d
	}
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = 16 << 10
	}
	if c.Limits.MaxHeadersBytes == 0 {
		c.Limits.MaxHeadersBytes = 64 << 10
	}
	if c.Limits.MaxPathBytes == 0 {
		c.Limits.MaxPathBytes = 8 << 10
	}
	if c.Runtime.GCPercent == 0 {
		// With a memory limit the limit decides when to collect; without
		// one a high percentage would let the heap grow 30-fold.
		// See GCPercentFor for the default without a memory limit.
		c.Runtime.GCPercent, c.Runtime.GCPercentDefault = 3000, true
	}
	if c.Runtime.MemoryLimit.Mode == "" {
		c.Runtime.MemoryLimit.Mode = MemoryLimitAuto
	}
}
