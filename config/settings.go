package config

// MFA configures the step-up redirect.
type MFA struct {
	// Prefix is the reserved path prefix of the MFA step on every protected
	// host. Default "/.stepup/". Must start and end with '/'.
	Prefix string `yaml:"prefix"`
	// TOTPIssuer labels the account in authenticator apps. Default "stepup".
	TOTPIssuer string `yaml:"totp_issuer"`
	// EnrollNetworks, when set, restricts a user's first enrolment to
	// clients inside these networks (e.g. [corporate]).
	EnrollNetworks []string `yaml:"enroll_networks"`
	// ReauthAfter: resetting one's own factors needs a verification at
	// most this old. Default 15m.
	ReauthAfter Duration      `yaml:"reauth_after"`
	RateLimits  MFARateLimits `yaml:"rate_limits"`
	// Duo configures the Duo Universal Prompt (provider 'duo').
	Duo MFADuo `yaml:"duo"`
	// Redirect configures Auth0's redirect protocol (a rule's
	// context.redirect to a custom MFA service).
	Redirect MFARedirect `yaml:"redirect"`
	// WebAuthn configures passkeys and security keys.
	WebAuthn MFAWebAuthn `yaml:"webauthn"`
	// Branding is the organisation's look of the MFA pages.
	Branding MFABranding `yaml:"branding"`
	// MessagesFile is a YAML file of texts by language and message id
	// ({de: {product: "Anmeldung"}, fr: {...}}): overrides of the shipped
	// English and German, or another language. Unknown ids are errors.
	MessagesFile string `yaml:"messages_file"`
}

// MFAWebAuthn configures passkeys and security keys.
type MFAWebAuthn struct {
	// Disabled turns passkeys off.
	Disabled bool `yaml:"disabled"`
	// RPID is the relying party id: empty (default) for each protected
	// host, or a parent domain of the protected hosts to share passkeys
	// between them. Never an IP address.
	RPID string `yaml:"rp_id"`
	// RPName is the name authenticators show; default mfa.totp_issuer.
	RPName string `yaml:"rp_name"`
	// UserVerification: preferred (default), required or discouraged.
	UserVerification string `yaml:"user_verification"`
}

// MFABranding is the organisation's name, logo and accent colour.
type MFABranding struct {
	Organisation string `yaml:"organisation"`
	// LogoFile is a PNG, JPEG, GIF, WebP or SVG file of at most 64 KiB.
	LogoFile string `yaml:"logo_file"`
	// AccentColor is "#rrggbb"; white text on it needs 4.5:1 contrast.
	AccentColor string `yaml:"accent_color"`
}

// MFADuo configures the Duo step. The Duo application itself (ikey, skey,
// host) comes from the rule.
type MFADuo struct {
	// CAFile holds extra root CAs (PEM) trusted for Duo's API host, on
	// top of the system roots.
	CAFile string `yaml:"ca_file"`
	// Fallback is what happens when Duo is unreachable: "none" (default:
	// the user cannot go on) or "totp" (a user with an authenticator app
	// may use it instead).
	Fallback string `yaml:"fallback"`
	// UsernameClaim is the identity claim sent to Duo as the username
	// when the rule sets none. Default: email, then nickname.
	UsernameClaim string `yaml:"username_claim"`
	// Timeout bounds each call to Duo. Default 10s.
	Timeout Duration `yaml:"timeout"`
}

// MFARedirect configures the continue endpoint of the redirect protocol.
type MFARedirect struct {
	// Verify, when set, makes every return from a custom MFA service carry
	// a signed token (parameter token or id_token) that stepup checks
	// before the rules run again.
	Verify *RedirectVerify `yaml:"verify"`
	// Services are the custom MFA services rules redirect to. Completing a
	// redirect to one proves its factor ("redirect:<name>"), which meets
	// a provider "any" requirement; a redirect anywhere else (terms of
	// service, a profile form) proves nothing but its own completion.
	Services []RedirectService `yaml:"services"`
}

// RedirectService declares a custom MFA service.
type RedirectService struct {
	// Name names the factor: 1-64 characters of [A-Za-z0-9_.-].
	Name string `yaml:"name"`
	// URL is the service's address; a redirect whose scheme and host are
	// the same and whose path is at or below URL's path goes to it.
	URL string `yaml:"url"`
	// Verify is the key and claims of the token this service returns,
	// checked by stepup before the rules run. It is the service's own: a
	// page that holds mfa.redirect.verify's key (a terms page, another
	// service) cannot mint it.
	Verify *RedirectVerify `yaml:"verify"`
	// VerifiedByRule says that the rules verify what the service sends
	// back (a signed token checked with require('jsonwebtoken') on the
	// redirect-callback pass) instead. One of Verify and VerifiedByRule
	// is required: an unverified return must never count as a factor.
	VerifiedByRule bool `yaml:"verified_by_rule"`
}

// RedirectVerify is the key and claims of the token a custom MFA service
// returns. Set exactly one of Secret, PublicKeyFile and JWKSFile.
type RedirectVerify struct {
	// Secret verifies HS256 tokens.
	Secret Secret `yaml:"secret"`
	// SecretEncoding is how Secret is written: "raw" (default, its bytes)
	// or "base64" (as Auth0's examples keep it).
	SecretEncoding string `yaml:"secret_encoding"`
	// PublicKeyFile is a PEM RSA public key (or certificate): RS256.
	PublicKeyFile string `yaml:"public_key_file"`
	// JWKSFile is a JSON Web Key Set file: RS256, keys chosen by kid.
	JWKSFile string `yaml:"jwks_file"`
	// Issuer and Audience, when set, must match iss and aud.
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
	// Leeway is the clock skew allowed on exp and iat. Default 30s.
	Leeway Duration `yaml:"leeway"`
}

// MFARateLimits regulate failed verifications: after UserFailures (per
// user) or IPFailures (per client address) failures within Window,
// verification pauses for Lockout, doubling up to MaxLockout.
type MFARateLimits struct {
	UserFailures int      `yaml:"user_failures"`
	IPFailures   int      `yaml:"ip_failures"`
	Lockout      Duration `yaml:"lockout"`
	MaxLockout   Duration `yaml:"max_lockout"`
	Window       Duration `yaml:"window"`
}

// Upstream configures the identity headers set on allowed requests.
type Upstream struct {
	// UserHeader default x-stepup-user; EmailHeader default x-stepup-email;
	// MFAHeader default x-stepup-mfa (the method that satisfied MFA, or
	// "none"); NetworkHeader default x-stepup-network.
	UserHeader    string `yaml:"user_header"`
	EmailHeader   string `yaml:"email_header"`
	MFAHeader     string `yaml:"mfa_header"`
	NetworkHeader string `yaml:"network_header"`
	// ClaimPrefix prefixes headers made from rules' custom token claims.
	// Default x-stepup-claim-.
	ClaimPrefix string `yaml:"claim_prefix"`
	// Remove lists further request headers stripped before the upstream.
	Remove []string `yaml:"remove"`
}

// Policy is the built-in stand-in policy used when no rules are configured:
// MFA is required outside the listed networks.
type Policy struct {
	// MFAExemptNetworks are the networks whose clients need no MFA.
	// Default [corporate].
	MFAExemptNetworks []string `yaml:"mfa_exempt_networks"`
	// Provider required elsewhere. Default "any".
	Provider string `yaml:"provider"`
	// AllowRememberBrowser default true.
	AllowRememberBrowser *bool `yaml:"allow_remember_browser"`
	// Mode is "enforce" (default) or "dry-run": decide every request as
	// usual but let it through, recording what would have happened (the
	// decision log's dry_run and would, the upstream header
	// x-stepup-dry-run). A route's context extension stepup_mode
	// (enforce or dry-run) overrides it, for rolling stepup out route by
	// route. Applies to the rules too.
	Mode string `yaml:"mode"`
}

// Rules configures the Auth0-style rules pipeline.
type Rules struct {
	// Files in the order they run: .js files or Auth0 gallery .md files.
	List []RuleRef `yaml:"list"`
	// Configuration is Auth0's `configuration` object. Values may be
	// literal strings or {env: NAME} / {file: PATH}.
	Configuration map[string]Secret `yaml:"configuration"`
	// RuleTimeout bounds one rule. Default 100ms.
	RuleTimeout Duration `yaml:"rule_timeout"`
	// PipelineTimeout bounds the whole pipeline. Default 300ms.
	PipelineTimeout Duration `yaml:"pipeline_timeout"`
	// Watch reloads rules when their files change. Default true.
	Watch *bool `yaml:"watch"`
	// MaxRuntimeMemory bounds what one stretch of a rule's JavaScript may
	// allocate; past it the rule fails and its runtime is discarded.
	// Default 64MiB; at least 1MiB.
	MaxRuntimeMemory ByteSize `yaml:"max_runtime_memory"`
	// MaxWaitingRuns bounds the runs parked in a setTimeout or promise
	// wait, which do not count against the runs executing JavaScript
	// (2×GOMAXPROCS). Default 4× that; at most 10000.
	MaxWaitingRuns int `yaml:"max_waiting_runs"`
}

// WatchOn reports the effective Watch.
func (r Rules) WatchOn() bool { return r.Watch == nil || *r.Watch }

// RuleRef names one rule file.
type RuleRef struct {
	Name    string `yaml:"name"`
	File    string `yaml:"file"`
	Enabled *bool  `yaml:"enabled"`
	// Builtin names a rule shipped inside the binary (e.g.
	// "extranet-mfa") instead of File.
	Builtin string `yaml:"builtin"`
	// Kind is "rule" or "action" (an Auth0 post-login Action); empty
	// detects it from the file (an Action assigns
	// exports.onExecutePostLogin).
	Kind string `yaml:"kind"`
}

// On reports whether the rule is enabled (default true).
func (r RuleRef) On() bool { return r.Enabled == nil || *r.Enabled }

// Sessions configures the cookies and their store.
type Sessions struct {
	// Keys sign cookies: the first signs, all verify. Each is {id, secret}
	// with the secret from env or file. Empty: keys are generated on first
	// start and kept in data_dir (a warning says production should set its
	// own).
	Keys []SigningKey `yaml:"keys"`
	// EncryptionKeys seal secrets at rest (AES-256-GCM); same shape.
	EncryptionKeys []SigningKey `yaml:"encryption_keys"`
	// CookiePrefix default "stepup".
	CookiePrefix string `yaml:"cookie_prefix"`
	// MFASessionTTL default 12h; MFASessionIdle default 1h (0 also means
	// the default).
	MFASessionTTL  Duration `yaml:"mfa_session_ttl"`
	MFASessionIdle Duration `yaml:"mfa_session_idle"`
	// RememberTTL default 720h (30 days); RememberIdle default 0: no
	// inactivity expiry.
	RememberTTL  Duration `yaml:"remember_ttl"`
	RememberIdle Duration `yaml:"remember_idle"`
	// MaxDevices caps the remembered browsers of one user: remembering
	// one more forgets the oldest. Default 20, at most 1000.
	MaxDevices int `yaml:"max_devices_per_user"`
	// StateTTL (transaction state of the MFA step and of redirects)
	// default 1h, at most 72h.
	StateTTL Duration `yaml:"state_ttl"`
	// Realms groups hosts that share MFA sessions and remembered browsers
	// (realm name → host names or "*.domain"). A session proven on a host
	// proves nothing on hosts outside its realm; a host in no group is a
	// realm of its own. Cookies are per host, so sharing also needs the
	// browser to carry them (one host name, or a parent-domain cookie
	// set by a proxy): most deployments leave this empty.
	Realms map[string][]string `yaml:"realms"`
	Store  Store               `yaml:"store"`
}

// SigningKey is one key in a key list.
type SigningKey struct {
	ID     string `yaml:"id"`
	Secret Secret `yaml:"secret"`
}

// Store selects the session store backend.
type Store struct {
	// Type is "bolt" (default, file in data_dir), "redis" or "memory"
	// (tests and demos only: lost on restart).
	Type  string     `yaml:"type"`
	Bolt  BoltStore  `yaml:"bolt"`
	Redis RedisStore `yaml:"redis"`
}

// BoltStore configures the embedded store.
type BoltStore struct {
	// Path default <data_dir>/sessions.db.
	Path string `yaml:"path"`
}

// RedisStore configures the Redis store (go-redis UniversalClient: one
// address is a single node, several a cluster, MasterName a Sentinel set).
type RedisStore struct {
	Addrs      []string `yaml:"addrs"`
	MasterName string   `yaml:"master_name"`
	Username   string   `yaml:"username"`
	Password   Secret   `yaml:"password"`
	DB         int      `yaml:"db"`
	TLS        bool     `yaml:"tls"`
	KeyPrefix  string   `yaml:"key_prefix"`
	// Timeout bounds every call. Default 200ms.
	Timeout Duration `yaml:"timeout"`
	// DeadlineFraction is the share of the time left before a request's
	// deadline (a Check's is Envoy's timeout) that one call may use, when
	// that is less than Timeout: the rest is kept to send the fail-closed
	// answer in time. Default 0.5, between 0.1 and 0.9.
	DeadlineFraction float64 `yaml:"deadline_fraction"`
	// Breaker fails calls at once while Redis is down.
	Breaker RedisBreaker `yaml:"breaker"`
	// CacheTTL is how long a replica keeps a remember-browser or MFA
	// session record it read from Redis in a local cache, dropped at once
	// when any replica (or the CLI) changes or revokes it. Default 2s, at
	// most 10s; "0s" turns the cache off.
	CacheTTL *Duration `yaml:"cache_ttl"`
}

// RedisBreaker configures the Redis store's circuit breaker: after
// Failures consecutive failed calls, calls fail closed at once (503
// store_unavailable) for Cooldown, then one call probes Redis and its
// answer closes the breaker again.
type RedisBreaker struct {
	// Failures default 3, between 1 and 1000.
	Failures int `yaml:"failures"`
	// Cooldown default 500ms, between 10ms and 1m.
	Cooldown Duration `yaml:"cooldown"`
}

// RequestLimits bound what stepup accepts from a CheckRequest.
type RequestLimits struct {
	// MaxHeaderBytes bounds one header value. Default 16 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxHeadersBytes bounds all headers together. Default 64 KiB.
	MaxHeadersBytes int `yaml:"max_headers_bytes"`
	// MaxPathBytes bounds :path. Default 8 KiB.
	MaxPathBytes int `yaml:"max_path_bytes"`
}

// Runtime tunes the Go runtime of `stepup serve`. The environment variables
// GOGC and GOMEMLIMIT, when set, take precedence over both settings.
type Runtime struct {
	// GCPercent is the garbage collector's target percentage (GOGC).
	// Default 3000, so that the memory limit decides when to collect (a
	// Check allocates ~8 KB, and with Go's default of 100 the collector's
	// fixed cost dominates a small heap: docs/performance.md); 400 when
	// the limit is off, or not stepup's to set (GOMEMLIMIT in the
	// environment).
	GCPercent int `yaml:"gc_percent"`
	// GCPercentDefault is set when gc_percent was not configured.
	GCPercentDefault bool `yaml:"-"`
	// MemoryLimit is the runtime's soft memory limit (GOMEMLIMIT): "auto"
	// (default: the larger of 120 MiB and twice the live heap after start-up
	// and after each reload, followed as it grows, at most 90% of the
	// cgroup's limit), "off", or a size such as "512MiB" or "1GiB".
	// It bounds the heap that a high gc_percent would otherwise let grow.
	MemoryLimit ByteSizeOrAuto `yaml:"memory_limit"`
}

// DefaultGCPercentUnbounded is the gc_percent default when no memory
// limit of stepup's bounds the heap.
const DefaultGCPercentUnbounded = 400

// GCPercentFor returns the gc_percent to apply: the configured one, or
// the default for whether stepup's memory limit bounds the heap. It does
// not when memory_limit is off or envLimit (GOMEMLIMIT is set in the
// environment): a high percentage would then let the heap grow 30-fold.
func (r Runtime) GCPercentFor(envLimit bool) int {
	if r.GCPercentDefault && (envLimit || r.MemoryLimit.Mode == MemoryLimitOff) {
		return DefaultGCPercentUnbounded
	}
	return r.GCPercent
}
