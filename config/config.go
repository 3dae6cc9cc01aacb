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
	"os"
	"path/filepath"
	"strings"

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
