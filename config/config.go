// Package config is stepup's configuration file: its schema, strict decoding,
// defaults and validation.
//
// A configuration is one YAML file, read against the Config structs (their
// yaml tags are the schema). Every unknown key, duplicate key and value of
// the wrong type is reported at once, each with its line and its path in
// the user's words ("line 12: server.http: unknown key \"listn\" (did you
// mean \"listen\"?)"); only a YAML syntax error stops at the first.
// Durations are Go durations ("12h", "500ms"). Secrets are never written
// inline; a [Secret] names an environment variable or a file that holds the
// value.
//
// Keys a file does not write take the embedded default's value
// ([DefaultYAML]): sections merge key by key, while lists and maps of names
// (networks, rules.list, ...) replace the default's whole; see [Parse] for
// the defaults that name the default's network "corporate". [Load] then
// runs [Config.Validate], which also reports every problem at once, with
// the line of the key when the file wrote it. docs/configuration.md lists
// every key; a test keeps it in sync with the structs.
//
// The package has no side effects: it reads the files it is asked to read
// and nothing else. The embedded default ([Default]) is what `stepup serve`
// runs with no flags.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/stepup-dev/stepup/cidr"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the embedded default configuration file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole configuration file.
type Config struct {
	// Development relaxes browser-facing defaults for local use: cookies are
	// not marked Secure and lose their __Host- prefix. Never set it in
	// production.
	Development bool `yaml:"development"`
	// DataDir holds what stepup keeps on disk: the embedded session store
	// and generated keys. A relative path is relative to the configuration
	// file's directory (the working directory for the embedded default).
	DataDir  string        `yaml:"data_dir"`
	Log      Log           `yaml:"log"`
	Server   Server        `yaml:"server"`
	Networks Networks      `yaml:"networks"`
	ClientIP ClientIP      `yaml:"client_ip"`
	Identity Identity      `yaml:"identity"`
	Clients  Clients       `yaml:"clients"`
	MFA      MFA           `yaml:"mfa"`
	Upstream Upstream      `yaml:"upstream"`
	Policy   Policy        `yaml:"policy"`
	Rules    Rules         `yaml:"rules"`
	Sessions Sessions      `yaml:"sessions"`
	Limits   RequestLimits `yaml:"limits"`
	Runtime  Runtime       `yaml:"runtime"`

	// path is the file the configuration came from ("" for the embedded
	// default); relative file references are resolved against its directory.
	path string
	// file is what the file wrote, with lines; nil for the embedded default
	// and configurations not parsed from a file (all of whose values are
	// then taken as written).
	file *written
}

// Log configures the structured (JSON) log.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Decisions says which check decisions get a log line: "all",
	// "non_allow" (default: denials and step-ups) or "none".
	Decisions string `yaml:"decisions"`
	// Audit is the audit trail: decisions and MFA events as JSON lines in
	// a file of their own.
	Audit Audit `yaml:"audit"`
}

// Audit configures the audit trail.
type Audit struct {
	// File receives one JSON line per event, appended; it is created with
	// mode 0600 and opened again on SIGHUP (log rotation). A relative
	// path is relative to the configuration file's directory. Empty (the
	// default): no audit trail.
	File string `yaml:"file"`
	// Decisions says which check decisions go into the trail: "all"
	// (default), "non_allow" or "none". MFA events always do.
	Decisions string `yaml:"decisions"`
}

// Server configures stepup's two listeners.
type Server struct {
	GRPC GRPC `yaml:"grpc"`
	HTTP HTTP `yaml:"http"`
	// DrainDelay is how long stepup keeps answering after it reported
	// NOT_SERVING on shutdown, so that Envoy's health checks notice first:
	// at least its health check interval × unhealthy_threshold. Default 0 in the
	// embedded demo; set it to 10s behind Envoy.
	DrainDelay Duration `yaml:"drain_delay"`
	// ShutdownTimeout bounds the graceful stop of both servers. Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxInFlight bounds the checks being decided at once (gRPC and HTTP
	// together); past it a check is denied at once with 503, reason
	// "overloaded". 0 (the default) means 64 per CPU.
	MaxInFlight int `yaml:"max_in_flight"`
}

// GRPC configures the ext_authz gRPC listener.
type GRPC struct {
	// Listen is host:port. Default 127.0.0.1:9191.
	Listen string `yaml:"listen"`
	TLS    TLS    `yaml:"tls"`
	// MaxRecvBytes bounds one CheckRequest: a larger one is denied with
	// 413. Default 4 MiB.
	MaxRecvBytes int `yaml:"max_recv_bytes"`
	// KeepaliveMinTime is the shortest interval between client pings that
	// stepup tolerates (grpc EnforcementPolicy.MinTime). It must be no more
	// than Envoy's HTTP/2 connection_keepalive interval. Default 5s.
	KeepaliveMinTime Duration `yaml:"keepalive_min_time"`
}

// HTTP configures the HTTP listener: health, metrics, forward-auth, Envoy's
// HTTP ext_authz mode and the MFA step.
type HTTP struct {
	// Listen is host:port. Default 127.0.0.1:9192.
	Listen string `yaml:"listen"`
	TLS    TLS    `yaml:"tls"`
}

// TLS configures a listener's TLS. With CertFile and KeyFile set the
// listener speaks TLS; with ClientCAFile also set it requires and verifies
// client certificates (mTLS).
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// Networks are named sets of CIDR prefixes. Each name maps to inline CIDRs
// and/or files holding one CIDR per line.
type Networks map[string]Network

// Network is one named set of prefixes.
type Network struct {
	CIDRs []string `yaml:"cidrs"`
	// Files hold one CIDR per line; '#' starts a comment.
	Files []string `yaml:"files"`
}

// UnmarshalYAML accepts either a list of CIDRs or {cidrs, files}.
func (n *Network) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind == yaml.SequenceNode {
		return v.Decode(&n.CIDRs)
	}
	type plain Network
	var p plain
	if err := decodeStrictNode(v, &p); err != nil {
		return err
	}
	*n = Network(p)
	return nil
}

// ClientIP says how the client's address is derived from a request: from
// Envoy's x-envoy-external-address, or by walking x-forwarded-for from the
// right past trusted proxies or a fixed number of hops.
type ClientIP struct {
	// EnvoyExternalAddress trusts x-envoy-external-address in gRPC Checks
	// and Envoy HTTP-mode checks. Envoy writes it at the edge with
	// use_remote_address: true and strips client copies. Default true,
	// except with TrustedHops, which says that a proxy stands in front of
	// Envoy and may pass a client's own copy: the two cannot be combined.
	// It is never honoured in forward-auth requests (Caddy, nginx), whose
	// clients could send it.
	EnvoyExternalAddress *bool `yaml:"envoy_external_address"`
	// TrustedProxies are the proxies whose x-forwarded-for entries stepup
	// believes. The chain is walked from the right: the first address that
	// is not a trusted proxy is the client. Default 127.0.0.1/32 and ::1/128
	// (a proxy on the same host, such as Caddy in forward-auth mode).
	TrustedProxies []string `yaml:"trusted_proxies"`
	// TrustedHops, when > 0, replaces TrustedProxies with Envoy's
	// xff_num_trusted_hops rule: the client is the TrustedHops-th address
	// from the right of x-forwarded-for as Envoy received it.
	TrustedHops int `yaml:"trusted_hops"`
}

// TrustEnvoyExternalAddress reports the effective EnvoyExternalAddress.
func (c ClientIP) TrustEnvoyExternalAddress() bool {
	if c.EnvoyExternalAddress == nil {
		return c.TrustedHops == 0
	}
	return *c.EnvoyExternalAddress
}

// Identity says where the primary login's identity comes from. Sources are
// tried in order: jwt_authn metadata, the trusted header, a verified JWT.
type Identity struct {
	JWTAuthn JWTAuthn `yaml:"jwt_authn"`
	Header   Header   `yaml:"header"`
	JWT      JWT      `yaml:"jwt"`
	// UserClaim names the claim that identifies the user. Default "sub".
	UserClaim string `yaml:"user_claim"`
	// LoginURL, when set, is where browsers without an identity are sent
	// (302). "{url}" in it is replaced with the escaped original URL. API
	// clients always get 401.
	LoginURL string `yaml:"login_url"`
}

// JWTAuthn reads the payload Envoy's jwt_authn filter verified, as
// forwarded in the CheckRequest's metadata_context under its filter
// namespace when ext_authz lists it in metadata_context_namespaces.
type JWTAuthn struct {
	Enabled *bool `yaml:"enabled"`
	// Namespace default "envoy.filters.http.jwt_authn".
	Namespace string `yaml:"namespace"`
	// Key is jwt_authn's payload_in_metadata. Default "jwt_payload".
	Key string `yaml:"key"`
}

// On reports whether jwt_authn metadata is used (default true).
func (j JWTAuthn) On() bool { return j.Enabled == nil || *j.Enabled }

// Header takes the user from a header set by a trusted proxy in front.
type Header struct {
	// Name of the header, e.g. x-forwarded-user. Empty: disabled.
	Name string `yaml:"name"`
	// EmailName optionally names a header with the user's email.
	EmailName string `yaml:"email_name"`
	// TrustedPeers are the only direct peers whose header is believed.
	// Required when Name is set.
	TrustedPeers []string `yaml:"trusted_peers"`
}

// JWT verifies a bearer token or a cookie JWT against a JWKS.
type JWT struct {
	// JWKSFile or JWKSURL (exactly one) enables the source.
	JWKSFile string `yaml:"jwks_file"`
	JWKSURL  string `yaml:"jwks_url"`
	// JWKSRefresh is how often the URL is re-read. Default 10m.
	JWKSRefresh Duration `yaml:"jwks_refresh"`
	Issuer      string   `yaml:"issuer"`
	Audiences   []string `yaml:"audiences"`
	// Cookie names a cookie holding the token (e.g. id_token).
	Cookie string `yaml:"cookie"`
	// Bearer reads "Authorization: Bearer <token>". Default true.
	Bearer *bool `yaml:"bearer"`
	// Algorithms allowed. Default RS256, ES256, EdDSA.
	Algorithms []string `yaml:"algorithms"`
	// Leeway for exp/nbf. Default 30s.
	Leeway Duration `yaml:"leeway"`
}

// Enabled reports whether a JWKS is configured.
func (j JWT) Enabled() bool { return j.JWKSFile != "" || j.JWKSURL != "" }

// BearerOn reports whether Authorization: Bearer is read (default true).
func (j JWT) BearerOn() bool { return j.Bearer == nil || *j.Bearer }

// Clients maps requests to applications (Auth0's clientID).
type Clients struct {
	// Hosts maps a host (without port) to a client id; used when the Check
	// carries no client_id context extension, and in HTTP modes.
	Hosts map[string]string `yaml:"hosts"`
	// Names maps client ids to display names (context.clientName).
	Names map[string]string `yaml:"names"`
	// Default is the client id when nothing else names one. Default
	// "default".
	Default string `yaml:"default"`
	// MFAMaxAge maps client ids to the longest time since the user's
	// second factor that the client accepts ("15m"): an older proof steps
	// up again although the MFA session is still valid. A route's
	// context extension "mfa_max_age" and a rule's
	// context.multifactor.maxAge may shorten it, never lengthen it.
	MFAMaxAge map[string]Duration `yaml:"mfa_max_age"`
}

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

// Load reads, decodes, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	cfg.path = path
	if err := cfg.Validate(); err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	return cfg, nil
}

// FileError is what is wrong with a configuration file: one problem or
// several (Err joins them with [errors.Join]), each "line N: path: what"
// when the line is known.
type FileError struct {
	Path string
	Err  error
}

// Error writes one problem on the line of the file's name, several on
// lines of their own below it.
func (e *FileError) Error() string {
	var list []error
	if j, ok := e.Err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	if len(list) <= 1 {
		return fmt.Sprintf("config %s: %v", e.Path, e.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %d problems:", e.Path, len(list))
	for _, err := range list {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *FileError) Unwrap() error { return e.Err }

// Default returns the embedded default configuration, defaulted and
// validated.
func Default() *Config {
	cfg, err := parse(defaultYAML, true)
	if err != nil {
		panic("embedded default config: " + err.Error()) // a build defect, caught by tests
	}
	if err := cfg.Validate(); err != nil {
		panic("embedded default config: " + err.Error())
	}
	return cfg
}

// Parse decodes a configuration file laid over the embedded default and
// fills the remaining defaults. It does not validate.
//
// Every unknown key, duplicate key and value of the wrong type is reported
// at once, each with its line; a YAML syntax error stops at the first.
// Keys the file does not write take the embedded default's value
// ([DefaultYAML]): a section (a mapping of fixed keys, such as server or
// sessions.store) is merged key by key, at every depth; any other value
// the file writes — a scalar, a list, or a map of names chosen by the
// user (networks, clients.hosts, clients.names, clients.mfa_max_age,
// sessions.realms, rules.configuration) — replaces the default's whole:
// lists and maps of names are never merged item by item.
//
// Two of the default's values name its network "corporate": rules.list
// (the built-in rule extranet-mfa asks for MFA outside "corporate") and
// policy.mfa_exempt_networks ([corporate]). A file whose networks replace
// the default's without a "corporate" must set those keys itself when they
// are in force ([Config.Validate] says which and why): rules.list always,
// policy.mfa_exempt_networks when rules.list is empty (the built-in
// policy). And client_ip.envoy_external_address, true in the default, is
// left unset (false) in a file that sets client_ip.trusted_hops, as the
// two cannot be combined.
func Parse(data []byte) (*Config, error) { return parse(data, false) }

// parse decodes data; the embedded default itself is not laid over itself
// and records no lines.
func parse(data []byte, isDefault bool) (*Config, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	w := newWalker()
	if root != nil && !isNull(root) {
		if root.Kind != yaml.MappingNode {
			return nil, problem{line: root.Line, msg: "a configuration is a mapping of keys (data_dir: ..., server: ...), found " + kindWord(root)}
		}
		w.walk(root, configType, "")
	}
	if err := joinProblems(w.problems); err != nil {
		return nil, err
	}
	merged := root
	if !isDefault {
		merged = mergeNodes(defaultTree(), root, configType)
	}
	var cfg Config
	if merged != nil && !isNull(merged) {
		if err := merged.Decode(&cfg); err != nil {
			return nil, yamlError(err)
		}
	}
	if !isDefault {
		cfg.file = &w.w
		// client_ip.envoy_external_address: true is the default only
		// without trusted_hops (see ClientIP).
		if cfg.file.has("client_ip.trusted_hops") && !cfg.file.has("client_ip.envoy_external_address") {
			cfg.ClientIP.EnvoyExternalAddress = nil
		}
	}
	cfg.setDefaults()
	return &cfg, nil
}

func decodeStrictNode(v *yaml.Node, out any) error {
	// yaml.v3 node decoding does not inherit KnownFields; re-encode and
	// decode strictly so nested unknown keys are still errors.
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("line %d: %w", v.Line, err)
	}
	return nil
}

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

// Path returns the file the configuration was loaded from ("" for the
// embedded default).
func (c *Config) Path() string { return c.path }

// Resolve returns p made absolute against the configuration file's
// directory (or kept relative to the working directory for the embedded
// default).
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.path), p)
}

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

// TrustedProxyPrefixes returns the parsed trusted proxies (Validate has
// checked them).
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	return mustPrefixes(c.ClientIP.TrustedProxies)
}

// HeaderTrustedPeers returns the parsed identity.header.trusted_peers.
func (c *Config) HeaderTrustedPeers() []netip.Prefix {
	return mustPrefixes(c.Identity.Header.TrustedPeers)
}

func mustPrefixes(ss []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// NetworkCIDRs returns every network's CIDR strings, inline ones first and
// then those read from its files.
func (c *Config) NetworkCIDRs() (map[string][]string, error) {
	out := make(map[string][]string, len(c.Networks))
	var errs []error
	for name, n := range c.Networks {
		list := append([]string(nil), n.CIDRs...)
		for _, f := range n.Files {
			lines, err := readCIDRFile(c.Resolve(f))
			if err != nil {
				errs = append(errs, fmt.Errorf("networks.%s: %w", name, err))
				continue
			}
			list = append(list, lines...)
		}
		out[name] = list
	}
	return out, errors.Join(errs...)
}

// readCIDRFile reads a networks file as [cidr.ParseList] does for loading.
func readCIDRFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list, err := cidr.ParseList(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return list, nil
}

// parsePrefix accepts a CIDR or a bare address.
func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR or address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

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
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
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
