// Package envoyproxy is an in-process HTTP proxy for stepup's end-to-end
// tests that behaves the way an edge Envoy does with the filter chain of
// envoy/envoy.yaml: the HTTP connection manager (HCM), jwt_authn, the gRPC
// ext_authz filter and the router. No Envoy binary can be installed where
// stepup is built and tested (Debian ships none), so this proxy stands in
// for Envoy: browsers and HTTP clients talk to it exactly as they would
// talk to Envoy, and stepup receives the CheckRequests Envoy would send and
// has its CheckResponses applied the way Envoy applies them.
//
// What is reproduced, with the section of docs/envoy.md that documents it:
//
//   - The HCM's request-header mutations before any filter runs (docs/envoy.md#client-address,
//     docs/envoy.md#headers-and-cookies): x-forwarded-for with the TCP peer appended (use_remote_address),
//     the trusted client address after xff_num_trusted_hops in
//     x-envoy-external-address, a fresh x-request-id at the edge,
//     x-forwarded-proto, client-sent x-envoy-* headers stripped at the
//     edge, hop-by-hop headers removed.
//   - jwt_authn with allow_missing and payload_in_metadata (docs/envoy.md#claims-from-jwt_authn): a
//     request without a token goes on without metadata, a request with a bad
//     token gets jwt_authn's 401.
//   - Routing by path prefix, first match wins; no match is a 404 without a
//     check (docs/envoy.md#per-route-settings); per-route ext_authz disabling and context_extensions
//     merged from the virtual host to the route (docs/envoy.md#per-route-settings).
//   - The CheckRequest as check_request_utils.cc builds it (docs/envoy.md#fields, docs/envoy.md#headers-and-cookies).
//   - The CheckResponse applied as ext_authz.cc applies it (docs/envoy.md#what-envoy-does-with-the-answer): OK header
//     mutations in the order set, add, append, then removals, query
//     parameter mutations, response_headers_to_add on the upstream's
//     response; Denied as a local reply; Error through status_on_error and
//     failure_mode_allow.
//
// Where Envoy generations differ (docs/envoy.md#header-encoding-across-envoy-versions), the proxy follows the newer code
// by default and the older code with [Config.LegacyAppend], so a test can
// show that stepup's encoding works on both.
//
// Deliberate simplifications are listed on [Config] and [Proxy]; none of
// them changes what stepup sees for the requests its tests make.
package envoyproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrConfig marks an invalid [Config] passed to [New].
var ErrConfig = errors.New("invalid envoyproxy configuration")

// DefaultTimeout is the ext_authz timeout when [Config.Timeout] is zero:
// the 0.5 s of envoy/envoy.yaml (Envoy's own default is 200 ms, docs/envoy.md#filter-settings).
const DefaultTimeout = 500 * time.Millisecond

// Route is one entry of the virtual host's route table (as in envoy/envoy.yaml).
type Route struct {
	// Prefix is matched against :path, case-sensitively, as Envoy's
	// prefix match does. It must start with "/".
	Prefix string
	// Upstream is the cluster the route forwards to: scheme and host of
	// an HTTP server. Its path must be empty: Envoy forwards :path
	// unchanged (no prefix_rewrite).
	Upstream *url.URL
	// ContextExtensions are the route's check_settings.context_extensions,
	// merged over [Config.VhostContextExtensions] (docs/envoy.md#per-route-settings).
	ContextExtensions map[string]string
	// DisableExtAuthz is ExtAuthzPerRoute{disabled: true}: no check.
	DisableExtAuthz bool
}

// BodySettings is ext_authz's with_request_body (docs/envoy.md#request-body).
type BodySettings struct {
	// MaxRequestBytes is max_request_bytes; it must be > 0.
	MaxRequestBytes uint32
	// AllowPartialMessage sends the first MaxRequestBytes of a larger
	// body; without it such a request is answered 413 before any check.
	AllowPartialMessage bool
	// PackAsBytes puts the body into raw_body instead of body.
	PackAsBytes bool
}

// JWTAuthn is one jwt_authn provider with `requires: {allow_missing: {}}`
// on every path, and payload_in_metadata (docs/envoy.md#claims-from-jwt_authn).
type JWTAuthn struct {
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audiences, when set, must contain one of the token's aud values.
	Audiences []string
	// JWKS is the provider's local_jwks (a JSON Web Key Set). Either
	// JWKS or Keyfunc is required.
	JWKS []byte
	// Keyfunc, when set, is used instead of JWKS (e.g. a single public
	// key).
	Keyfunc jwt.Keyfunc
	// FromCookies are from_cookies: cookie names that carry the token.
	FromCookies []string
	// FromBearer reads "Authorization: Bearer <token>". When neither
	// FromCookies nor FromBearer is set, Envoy's default applies, which
	// is the Authorization header.
	FromBearer bool
	// Forward is jwt_authn's forward: when false (Envoy's default) a
	// verified token is removed from the Authorization header before the
	// request goes on. Envoy never removes cookies.
	Forward bool
	// PayloadInMetadata is the key of the payload in the
	// envoy.filters.http.jwt_authn metadata namespace; default
	// "jwt_payload".
	PayloadInMetadata string
	// ClockSkew is clock_skew_seconds; default 60 s.
	ClockSkew time.Duration
}

// Config configures a [Proxy]. Fields mirror the Envoy settings named in
// their comments.
type Config struct {
	// AuthzTarget is stepup's gRPC address (host:port), dialed with
	// grpc.NewClient without TLS. Required unless every route disables
	// ext_authz.
	AuthzTarget string
	// Routes is the virtual host's route table; the first route whose
	// Prefix matches :path wins. A request matching no route gets a 404
	// without a check (docs/envoy.md#per-route-settings).
	Routes []Route
	// VhostContextExtensions are the virtual host's context_extensions.
	VhostContextExtensions map[string]string
	// Timeout is ext_authz's grpc_service.timeout; default
	// [DefaultTimeout].
	Timeout time.Duration
	// FailureModeAllow lets a request through when the check fails
	// (docs/envoy.md#errors-and-failure_mode_allow).
	FailureModeAllow bool
	// StatusOnError is the HTTP status of the Error outcome; default 403.
	StatusOnError int
	// UseRemoteAddress and XFFNumTrustedHops are the HCM settings of the
	// same names (docs/envoy.md#client-address).
	UseRemoteAddress  bool
	XFFNumTrustedHops int
	// LocalAddress is Envoy's own address (the HCM's local address).
	// When it is set and the TCP peer is a loopback address, Envoy
	// appends LocalAddress to x-forwarded-for instead of the peer
	// (conn_manager_utility.cc). The zero value appends the peer, as
	// docs/envoy.md#client-address describes.
	LocalAddress netip.Addr
	// JWTAuthn, when set, runs jwt_authn before ext_authz and forwards its
	// payload in metadata_context (docs/envoy.md#claims-from-jwt_authn).
	JWTAuthn *JWTAuthn
	// WithRequestBody includes the request body in the check.
	WithRequestBody *BodySettings
	// LegacyAppend applies the older ext_authz_grpc_impl.cc rules of
	// docs/envoy.md#header-encoding-across-envoy-versions: append_action is ignored and an unset append means
	// "set". The default is the newer code.
	LegacyAppend bool
	// Now is the clock for request.time and token expiry; default
	// time.Now.
	Now func() time.Time
	// Logger receives one line per request (no headers, cookies, tokens
	// or query strings); nil discards.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with defaults applied, or an error
// wrapping ErrConfig that lists every problem.
func (c Config) withDefaults() (Config, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Timeout < 0 {
		bad("timeout must not be negative")
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.StatusOnError == 0 {
		c.StatusOnError = http.StatusForbidden
	}
	if c.StatusOnError < 200 || c.StatusOnError > 599 {
		bad("status_on_error %d is not an HTTP status in 200..599", c.StatusOnError)
	}
	if c.XFFNumTrustedHops < 0 {
		bad("xff_num_trusted_hops must not be negative")
	}
	if len(c.Routes) == 0 {
		bad("no routes")
	}
	needsAuthz := false
	for i, r := range c.Routes {
		if !strings.HasPrefix(r.Prefix, "/") {
			bad("routes[%d]: prefix %q must start with /", i, r.Prefix)
		}
		u := r.Upstream
		switch {
		case u == nil:
			bad("routes[%d]: no upstream", i)
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			bad("routes[%d]: upstream %q must be an http(s) URL with a host", i, u.Redacted())
		case u.Path != "" && u.Path != "/", u.RawQuery != "":
			bad("routes[%d]: upstream %q must have no path or query (Envoy forwards :path unchanged)", i, u.Redacted())
		}
		if !r.DisableExtAuthz {
			needsAuthz = true
		}
	}
	if needsAuthz && c.AuthzTarget == "" {
		bad("authz target required: a route has ext_authz enabled")
	}
	if b := c.WithRequestBody; b != nil && b.MaxRequestBytes == 0 {
		bad("with_request_body.max_request_bytes must be > 0")
	}
	if j := c.JWTAuthn; j != nil {
		if len(j.JWKS) == 0 && j.Keyfunc == nil {
			bad("jwt_authn: JWKS or Keyfunc required")
		}
		if j.ClockSkew < 0 {
			bad("jwt_authn: clock skew must not be negative")
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}
	return c, nil
}
