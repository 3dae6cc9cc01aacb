package config

import (
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Validate reports every problem in the configuration at once.
func (c *Config) Validate() error {
	v := validator{file: c.file}
	c.validateServer(&v)
	c.validateNetworks(&v)
	c.validateClients(&v)
	c.validateRealms(&v)
	c.validateIdentity(&v)
	c.validateMFA(&v)
	c.validateUpstream(&v)
	c.validateNetworkRefs(&v)
	c.validateRules(&v)
	c.validateSessions(&v)
	c.validateStore(&v)
	c.validateLimits(&v)
	return v.err()
}

// validateServer checks the listeners, the runtime, the log and the policy mode.
func (c *Config) validateServer(v *validator) {
	v.hostPort("server.grpc.listen", c.Server.GRPC.Listen)
	v.hostPort("server.http.listen", c.Server.HTTP.Listen)
	v.tls("server.grpc.tls", c.Server.GRPC.TLS)
	v.tls("server.http.tls", c.Server.HTTP.TLS)
	if c.Server.MaxInFlight < 0 || c.Server.MaxInFlight > 1_000_000 {
		v.add("server.max_in_flight", "must be between 0 (64 per CPU) and 1000000")
	}
	if c.Server.GRPC.MaxRecvBytes < 64<<10 {
		v.add("server.grpc.max_recv_bytes", "must be at least 65536")
	}
	if g := c.Runtime.GCPercent; g < 25 || g > 10000 {
		v.add("runtime.gc_percent", "must be between 25 and 10000, not %d", g)
	}
	if m := c.Runtime.MemoryLimit; m.Mode == MemoryLimitFixed && m.Bytes < 32<<20 {
		v.add("runtime.memory_limit", "must be at least 32MiB, not %d bytes", m.Bytes)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	switch c.Policy.Mode {
	case "enforce", "dry-run":
	default:
		v.add("policy.mode", "must be enforce or dry-run, not %q", c.Policy.Mode)
	}
	switch c.Log.Decisions {
	case "all", "non_allow", "none":
	default:
		v.add("log.decisions", "must be all, non_allow or none, not %q", c.Log.Decisions)
	}
	switch c.Log.Audit.Decisions {
	case "all", "non_allow", "none":
	default:
		v.add("log.audit.decisions", "must be all, non_allow or none, not %q", c.Log.Audit.Decisions)
	}
}

// validateNetworks checks the named networks and the trusted proxies.
func (c *Config) validateNetworks(v *validator) {
	if len(c.Networks) == 0 {
		v.add("networks", "at least one network is required")
	}
	for _, name := range sortedKeys(c.Networks) {
		n := c.Networks[name]
		p := "networks." + name
		if !validName(name) {
			v.add(p, "network names use only letters, digits, '_', '-' and '.'")
		}
		if len(n.CIDRs) == 0 && len(n.Files) == 0 {
			v.add(p, "has no cidrs and no files")
		}
		for i, s := range n.CIDRs {
			if _, err := parsePrefix(s); err != nil {
				v.add(fmt.Sprintf("%s[%d]", p, i), "%v", err)
			}
		}
		for i, f := range n.Files {
			if _, err := os.Stat(c.Resolve(f)); err != nil {
				v.add(fmt.Sprintf("%s.files[%d]", p, i), "%v", err)
			}
		}
	}
	for i, s := range c.ClientIP.TrustedProxies {
		if _, err := parsePrefix(s); err != nil {
			v.add(fmt.Sprintf("client_ip.trusted_proxies[%d]", i), "%v", err)
		}
	}
	if c.ClientIP.TrustedHops < 0 || c.ClientIP.TrustedHops > 16 {
		v.add("client_ip.trusted_hops", "must be between 0 and 16")
	}
}

// validateClients checks clients.mfa_max_age.
func (c *Config) validateClients(v *validator) {
	for _, client := range sortedKeys(c.Clients.MFAMaxAge) {
		if d := c.Clients.MFAMaxAge[client]; d <= 0 || d > Duration(400*24*time.Hour) {
			v.add("clients.mfa_max_age."+client, "must be more than 0s and at most 9600h")
		}
	}
}

// validateRealms checks sessions.realms: names, and each host in one realm only.
func (c *Config) validateRealms(v *validator) {
	hostRealm := map[string]string{}
	for _, name := range sortedKeys(c.Sessions.Realms) {
		p := "sessions.realms." + name
		if !validServiceName(name) {
			v.add(p, "realm names are 1-64 characters of [A-Za-z0-9_.-]")
		}
		if len(c.Sessions.Realms[name]) == 0 {
			v.add(p, "has no hosts")
		}
		for i, h := range c.Sessions.Realms[name] {
			host := strings.TrimPrefix(h, "*.")
			if host == "" || strings.ContainsAny(host, "*:/ ") || strings.ToLower(host) != host {
				v.add(fmt.Sprintf("%s[%d]", p, i), "must be a lower-case host name or *.domain, not %q", h)
			} else if other, dup := hostRealm[h]; dup {
				v.add(fmt.Sprintf("%s[%d]", p, i), "%q is already in realm %q", h, other)
			}
			hostRealm[h] = name
		}
	}
}

// validateIdentity checks who the request is from: the client address
// source, then the identity sources of the user.
func (c *Config) validateIdentity(v *validator) {
	if c.ClientIP.TrustedHops > 0 && c.ClientIP.EnvoyExternalAddress != nil && *c.ClientIP.EnvoyExternalAddress {
		v.add("client_ip.envoy_external_address", "must not be true when client_ip.trusted_hops is set: behind another proxy Envoy is not the edge, and the header may be the client's own")
	}
	id := c.Identity
	if id.Header.Name != "" && len(id.Header.TrustedPeers) == 0 {
		v.add("identity.header.trusted_peers", "required when identity.header.name is set: the header is only believed from these peers")
	}
	for i, s := range id.Header.TrustedPeers {
		if _, err := parsePrefix(s); err != nil {
			v.add(fmt.Sprintf("identity.header.trusted_peers[%d]", i), "%v", err)
		}
	}
	if id.JWT.JWKSFile != "" && id.JWT.JWKSURL != "" {
		v.add("identity.jwt", "set jwks_file or jwks_url, not both")
	}
	if id.JWT.JWKSURL != "" {
		if u, err := url.Parse(id.JWT.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.add("identity.jwt.jwks_url", "must be an absolute http(s) URL")
		}
	}
	if id.JWT.JWKSFile != "" {
		if _, err := os.Stat(c.Resolve(id.JWT.JWKSFile)); err != nil {
			v.add("identity.jwt.jwks_file", "%v", err)
		}
	}
	for i, a := range id.JWT.Algorithms {
		switch a {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA":
		default:
			v.add(fmt.Sprintf("identity.jwt.algorithms[%d]", i), "unsupported algorithm %q (HMAC and none are not accepted for identity tokens)", a)
		}
	}
	if id.JWT.Enabled() && id.JWT.Issuer == "" {
		v.add("identity.jwt.issuer", "required when a JWKS is configured")
	}
	if !id.JWTAuthn.On() && id.Header.Name == "" && !id.JWT.Enabled() {
		v.add("identity", "no identity source is enabled")
	}
	if id.LoginURL != "" {
		if u, err := url.Parse(id.LoginURL); err != nil || u.Scheme == "" || u.Host == "" {
			v.add("identity.login_url", "must be an absolute URL")
		}
	}
}

// validateMFA checks the MFA step.
func (c *Config) validateMFA(v *validator) {
	if p := c.MFA.Prefix; !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || len(p) < 3 || strings.ContainsAny(p, "?#% ") {
		v.add("mfa.prefix", "must start and end with '/', e.g. /.stepup/")
	}
	for i, n := range c.MFA.EnrollNetworks {
		if _, ok := c.Networks[n]; !ok {
			v.add(fmt.Sprintf("mfa.enroll_networks[%d]", i), "unknown network %q", n)
		}
	}
	if rl := c.MFA.RateLimits; rl.UserFailures < 1 || rl.IPFailures < 1 || rl.Lockout > rl.MaxLockout {
		v.add("mfa.rate_limits", "user_failures and ip_failures must be positive and lockout ≤ max_lockout")
	}
	c.validateExternalMFA(v)
	c.validateWebAuthn(v)
}

// validateUpstream checks the identity header names set on allowed requests.
func (c *Config) validateUpstream(v *validator) {
	for _, h := range []struct{ path, val string }{
		{"upstream.user_header", c.Upstream.UserHeader},
		{"upstream.email_header", c.Upstream.EmailHeader},
		{"upstream.mfa_header", c.Upstream.MFAHeader},
		{"upstream.network_header", c.Upstream.NetworkHeader},
		{"upstream.claim_prefix", c.Upstream.ClaimPrefix},
	} {
		if !validHeaderName(h.val) {
			v.add(h.path, "%q is not a valid header name", h.val)
		}
	}
}

// validateRules checks policy.provider and the rules pipeline.
func (c *Config) validateRules(v *validator) {
	switch c.Policy.Provider {
	case "any", "google-authenticator", "none":
	default:
		v.add("policy.provider", "must be any, google-authenticator or none")
	}
	for i, r := range c.Rules.List {
		p := fmt.Sprintf("rules.list[%d]", i)
		if (r.File == "") == (r.Builtin == "") {
			v.add(p, "set exactly one of file and builtin")
		}
		switch r.Kind {
		case "", "rule", "action":
		default:
			v.add(p+".kind", "must be rule or action")
		}
		if r.File != "" {
			if _, err := os.Stat(c.Resolve(r.File)); err != nil {
				v.add(p+".file", "%v", err)
			}
		}
	}
	for _, k := range sortedKeys(c.Rules.Configuration) {
		c.Rules.Configuration[k].check(v, "rules.configuration."+k)
	}
	if c.Rules.RuleTimeout <= 0 || c.Rules.PipelineTimeout <= 0 {
		v.add("rules", "rule_timeout and pipeline_timeout must be positive")
	}
	if c.Rules.RuleTimeout > c.Rules.PipelineTimeout {
		v.add("rules.rule_timeout", "must not exceed pipeline_timeout")
	}
	if c.Rules.MaxRuntimeMemory < 1<<20 {
		v.add("rules.max_runtime_memory", "must be at least 1MiB")
	}
	if c.Rules.MaxWaitingRuns < 0 || c.Rules.MaxWaitingRuns > 10000 {
		v.add("rules.max_waiting_runs", "must be between 0 (the default) and 10000")
	}
}

// validateSessions checks the keys, cookies and lifetimes of sessions.
func (c *Config) validateSessions(v *validator) {
	s := c.Sessions
	for i, k := range s.Keys {
		p := fmt.Sprintf("sessions.keys[%d]", i)
		if k.ID == "" {
			v.add(p+".id", "required")
		}
		k.Secret.check(v, p+".secret")
	}
	for i, k := range s.EncryptionKeys {
		p := fmt.Sprintf("sessions.encryption_keys[%d]", i)
		if k.ID == "" {
			v.add(p+".id", "required")
		}
		k.Secret.check(v, p+".secret")
	}
	if !validName(s.CookiePrefix) {
		v.add("sessions.cookie_prefix", "letters, digits, '_', '-' and '.' only")
	}
	for _, d := range []struct {
		path string
		val  Duration
		min  time.Duration
	}{
		{"sessions.mfa_session_ttl", s.MFASessionTTL, time.Minute},
		{"sessions.remember_ttl", s.RememberTTL, time.Minute},
		{"sessions.state_ttl", s.StateTTL, 10 * time.Second},
	} {
		if time.Duration(d.val) < d.min {
			v.add(d.path, "must be at least %s", d.min)
		}
	}
	if s.StateTTL > Duration(72*time.Hour) {
		v.add("sessions.state_ttl", "must not exceed 72h (Auth0's limit for redirect state)")
	}
	// Browsers keep cookies for at most 400 days.
	for _, d := range []struct {
		path string
		val  Duration
	}{{"sessions.mfa_session_ttl", s.MFASessionTTL}, {"sessions.remember_ttl", s.RememberTTL}} {
		if d.val > Duration(400*24*time.Hour) {
			v.add(d.path, "must not exceed 9600h (400 days, the longest cookie lifetime browsers keep)")
		}
	}
	// The last-used time is written at most once a minute.
	for _, d := range []struct {
		path string
		val  Duration
	}{{"sessions.mfa_session_idle", s.MFASessionIdle}, {"sessions.remember_idle", s.RememberIdle}} {
		if d.val > 0 && d.val <= Duration(2*time.Minute) {
			v.add(d.path, "must be longer than 2m")
		}
	}
	if s.MaxDevices < 1 || s.MaxDevices > 1000 {
		v.add("sessions.max_devices_per_user", "must be between 1 and 1000, not %d", s.MaxDevices)
	}
	if s.MFASessionIdle < 0 || s.RememberIdle < 0 {
		v.add("sessions", "idle timeouts must not be negative")
	}
}

// validateStore checks sessions.store.
func (c *Config) validateStore(v *validator) {
	s := c.Sessions
	switch s.Store.Type {
	case "bolt", "memory":
	case "redis":
		if len(s.Store.Redis.Addrs) == 0 {
			v.add("sessions.store.redis.addrs", "at least one address is required")
		}
		for i, a := range s.Store.Redis.Addrs {
			v.hostPort(fmt.Sprintf("sessions.store.redis.addrs[%d]", i), a)
		}
		s.Store.Redis.Password.check(v, "sessions.store.redis.password")
		if ttl := s.Store.Redis.CacheTTL; ttl != nil && *ttl > Duration(10*time.Second) {
			v.add("sessions.store.redis.cache_ttl", "must be at most 10s (0s turns the cache off), not %v", *ttl)
		}
		if to := s.Store.Redis.Timeout; to < Duration(time.Millisecond) || to > Duration(time.Minute) {
			v.add("sessions.store.redis.timeout", "must be between 1ms and 1m, not %v", to)
		}
		if f := s.Store.Redis.DeadlineFraction; !(f >= 0.1 && f <= 0.9) {
			v.add("sessions.store.redis.deadline_fraction", "must be between 0.1 and 0.9 (the rest of a Check's time is kept to answer), not %v", f)
		}
		if n := s.Store.Redis.Breaker.Failures; n < 1 || n > 1000 {
			v.add("sessions.store.redis.breaker.failures", "must be between 1 and 1000, not %d", n)
		}
		if d := s.Store.Redis.Breaker.Cooldown; d < Duration(10*time.Millisecond) || d > Duration(time.Minute) {
			v.add("sessions.store.redis.breaker.cooldown", "must be between 10ms and 1m, not %v", d)
		}
	default:
		v.add("sessions.store.type", "must be bolt, redis or memory, not %q", s.Store.Type)
	}
}

// validateLimits checks the request limits.
func (c *Config) validateLimits(v *validator) {
	if c.Limits.MaxHeaderBytes < 1024 || c.Limits.MaxHeadersBytes < c.Limits.MaxHeaderBytes || c.Limits.MaxPathBytes < 256 {
		v.add("limits", "max_header_bytes ≥ 1024, max_headers_bytes ≥ max_header_bytes, max_path_bytes ≥ 256")
	}
}

// validateNetworkRefs checks the networks policy.mfa_exempt_networks and
// the rules name, explaining the defaults that name the default's network
// "corporate" when the file replaced it.
func (c *Config) validateNetworkRefs(v *validator) {
	_, haveCorporate := c.Networks[defaultNetwork]
	replaced := "this file's networks replace the default's (a map of names is replaced whole, not merged) and define no network " + strconv.Quote(defaultNetwork)
	builtinPolicy := len(c.Rules.List) == 0
	if c.file.has("policy.mfa_exempt_networks") {
		for i, n := range c.Policy.MFAExemptNetworks {
			if _, ok := c.Networks[n]; !ok {
				v.add(fmt.Sprintf("policy.mfa_exempt_networks[%d]", i), "unknown network %q", n)
			}
		}
	} else if builtinPolicy && !haveCorporate && slices.Contains(c.Policy.MFAExemptNetworks, defaultNetwork) {
		// The default is only in force for the built-in policy.
		v.add("policy.mfa_exempt_networks", "not set in this file, so the default [%s] applies to the built-in policy (rules.list is empty), but %s: set policy.mfa_exempt_networks to the networks whose clients need no MFA (for example [office]), or [] to ask for MFA everywhere", defaultNetwork, replaced)
	}
	if !c.file.has("rules.list") && !haveCorporate {
		for _, r := range c.Rules.List {
			if r.Builtin == "extranet-mfa" {
				v.add("rules.list", "not set in this file, so the default applies: the built-in rule extranet-mfa, which asks for MFA outside the network %q; but %s: set rules.list (your own rules, or [] for the built-in policy of policy.mfa_exempt_networks), or name one of your networks %s", defaultNetwork, replaced, defaultNetwork)
				break
			}
		}
	}
}

// defaultNetwork is the network the embedded default defines and its
// rule list and policy name.
const defaultNetwork = "corporate"

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func validHeaderName(s string) bool {
	if s == "" || s != strings.ToLower(s) {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := slices.AppendSeq(make([]string, 0, len(m)), maps.Keys(m))
	slices.Sort(keys)
	return keys
}

// validateExternalMFA checks mfa.duo and mfa.redirect.
func (c *Config) validateExternalMFA(v *validator) {
	d := c.MFA.Duo
	switch d.Fallback {
	case "none", "totp":
	default:
		v.add("mfa.duo.fallback", "must be none or totp, not %q", d.Fallback)
	}
	if d.CAFile != "" {
		if _, err := os.Stat(c.Resolve(d.CAFile)); err != nil {
			v.add("mfa.duo.ca_file", "%v", err)
		}
	}
	if d.Timeout <= 0 || d.Timeout > Duration(time.Minute) {
		v.add("mfa.duo.timeout", "must be more than 0 and at most 1m")
	}
	if strings.TrimSpace(d.UsernameClaim) != d.UsernameClaim {
		v.add("mfa.duo.username_claim", "must not have surrounding spaces")
	}
	seen := map[string]bool{}
	for i, svc := range c.MFA.Redirect.Services {
		path := fmt.Sprintf("mfa.redirect.services[%d]", i)
		if !validServiceName(svc.Name) {
			v.add(path+".name", "must be 1-64 characters of [A-Za-z0-9_.-], not %q", svc.Name)
		} else if seen[svc.Name] {
			v.add(path+".name", "%q is declared twice", svc.Name)
		}
		seen[svc.Name] = true
		if u, err := url.Parse(svc.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			v.add(path+".url", "must be an http(s) URL without query or fragment, not %q", svc.URL)
		}
		switch {
		case svc.Verify != nil && svc.VerifiedByRule:
			v.add(path, "set verify or verified_by_rule, not both")
		case svc.Verify == nil && !svc.VerifiedByRule:
			v.add(path, "a service counts as a second factor only when its return is verified: give it its own verify, or verified_by_rule: true when the rules verify it")
		case svc.Verify != nil:
			c.validateVerify(v, path+".verify", svc.Verify)
		}
	}
	if rv := c.MFA.Redirect.Verify; rv != nil {
		c.validateVerify(v, "mfa.redirect.verify", rv)
	}
}

// validateVerify checks a token verification at path.
func (c *Config) validateVerify(v *validator, path string, rv *RedirectVerify) {
	n := 0
	if !rv.Secret.IsZero() {
		n++
		rv.Secret.check(v, path+".secret")
	}
	for _, f := range []struct{ path, file string }{
		{path + ".public_key_file", rv.PublicKeyFile},
		{path + ".jwks_file", rv.JWKSFile},
	} {
		if f.file == "" {
			continue
		}
		n++
		if _, err := os.Stat(c.Resolve(f.file)); err != nil {
			v.add(f.path, "%v", err)
		}
	}
	if n != 1 {
		v.add(path, "set exactly one of secret, public_key_file and jwks_file")
	}
	switch rv.SecretEncoding {
	case "raw", "base64":
	default:
		v.add(path+".secret_encoding", "must be raw or base64, not %q", rv.SecretEncoding)
	}
	if rv.Leeway < 0 || rv.Leeway > Duration(5*time.Minute) {
		v.add(path+".leeway", "must be between 0s and 5m")
	}
}

// validServiceName accepts 1-64 characters of [A-Za-z0-9_.-] (custom MFA
// service and realm names).
func validServiceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validateWebAuthn checks mfa.webauthn, mfa.branding and
// mfa.messages_file (the files' contents are checked when stepup starts).
func (c *Config) validateWebAuthn(v *validator) {
	wa := c.MFA.WebAuthn
	switch wa.UserVerification {
	case "preferred", "required", "discouraged":
	default:
		v.add("mfa.webauthn.user_verification", "must be preferred, required or discouraged, not %q", wa.UserVerification)
	}
	if id := wa.RPID; id != "" {
		if _, err := netip.ParseAddr(id); err == nil {
			v.add("mfa.webauthn.rp_id", "must be a domain name, not an IP address")
		} else if id != strings.ToLower(id) || strings.ContainsAny(id, ":/ ") || strings.HasPrefix(id, ".") || !strings.Contains(id, ".") && id != "localhost" {
			v.add("mfa.webauthn.rp_id", "must be a lower-case domain name such as example.com, not %q", id)
		}
	}
	if len(wa.RPName) > 64 {
		v.add("mfa.webauthn.rp_name", "must be at most 64 characters")
	}
	if a := c.MFA.Branding.AccentColor; a != "" {
		if len(a) != 7 || a[0] != '#' || strings.Trim(strings.ToLower(a[1:]), "0123456789abcdef") != "" {
			v.add("mfa.branding.accent_color", "must be #rrggbb, not %q", a)
		}
	}
	if len(c.MFA.Branding.Organisation) > 100 {
		v.add("mfa.branding.organisation", "must be at most 100 characters")
	}
	for _, f := range []struct{ path, file string }{{"mfa.branding.logo_file", c.MFA.Branding.LogoFile}, {"mfa.messages_file", c.MFA.MessagesFile}} {
		if f.file == "" {
			continue
		}
		if st, err := os.Stat(f.file); err != nil {
			v.add(f.path, "%v", err)
		} else if st.IsDir() {
			v.add(f.path, "%q is a directory", f.file)
		}
	}
}
