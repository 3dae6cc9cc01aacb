package envoy

// This file is the offline Envoy configuration checker of
// docs/envoy.md#checking-the-example-configurations and the tests that run it over the
// example files.
//
// The checker has three layers, each of which reports every problem it finds:
//
//  1. Strict decoding: YAML to JSON (sigs.k8s.io/yaml), then protojson into
//     bootstrapv3.Bootstrap with DiscardUnknown false. Misspelt fields, bad enum values
//     and typed_config types whose Go package is not linked into this test fail here.
//  2. protoc-gen-validate: ValidateAll on the bootstrap, and, because PGV does not
//     descend into google.protobuf.Any, on every message unpacked from an Any, at any
//     depth (HTTP filters inside the connection manager, per-route configs, transport
//     sockets, cluster protocol options, access loggers).
//  3. Load-time rules that Envoy enforces in C++ and PGV cannot express (step 4 of docs/envoy.md#checking-the-example-configurations),
//     plus stepup's own posture: fail closed (docs/envoy.md#errors-and-failure_mode_allow); the reserved /.stepup/ prefix
//     routed to stepup with ext_authz and jwt_authn kept on (docs/envoy.md#the-reserved-prefix); nothing
//     but that prefix routed to stepup, so its decision endpoints (/authz/,
//     /forward-auth), /metrics and health endpoints stay private; readiness health checks
//     on stepup's HTTP port; access logs that read only the metadata stepup writes; and,
//     in HTTP mode, the path prefix and header lists stepup's /authz/ endpoint needs.
//
// The Caddy and nginx examples are checked in proxies_test.go.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/stepup-dev/stepup/extauthz"

	// Every typed_config type the example files use must be linked into this test, or
	// protojson cannot resolve the Any and rejects the file (step 2 of docs/envoy.md#checking-the-example-configurations). Most of them
	// are also used by name below; the blank import is the one that is not. The CEL
	// formatter is not used by the examples; it is linked so that the formatter check
	// below can name its type.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtauthnv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	oauth2v3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/oauth2/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/cel/v3"
	reqwithoutqueryv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/formatter/req_without_query/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

const (
	// jwtAuthnNamespace is the dynamic-metadata namespace jwt_authn writes the verified
	// payload to; Envoy hard-codes it (docs/envoy.md#claims-from-jwt_authn).
	jwtAuthnNamespace = "envoy.filters.http.jwt_authn"
	// extAuthzNamespace is where Envoy stores CheckResponse.dynamic_metadata (docs/envoy.md#dynamic-metadata-and-access-logs).
	extAuthzNamespace = "envoy.filters.http.ext_authz"
	// authzHealthService is the grpc.health.v1 service name stepup reports on (docs/envoy.md#health-checks-and-draining).
	authzHealthService = "envoy.service.auth.v3.Authorization"
	// httpProtocolOptionsKey is the typed_extension_protocol_options key Envoy looks up
	// for upstream HTTP settings.
	httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	// minAuthzTimeout is Envoy's default ext_authz timeout (docs/envoy.md#filter-settings); stepup needs at
	// least that much, and the examples use 0.5 s.
	minAuthzTimeout = 200 * time.Millisecond
	// reservedPrefix is stepup's reserved path prefix (mfa.prefix): the MFA step, and the
	// only prefix a proxy may send to stepup's HTTP port.
	reservedPrefix = "/.stepup/"
	// reservedSample is a path under stepup's reserved prefix /.stepup/ (the MFA step).
	reservedSample = reservedPrefix + "mfa"
	// stepupHTTPCluster is the cluster the example files use for stepup's HTTP port.
	stepupHTTPCluster = "stepup_http"
	// stepupHTTPAddr is stepup's default HTTP listener, which Caddy and nginx dial.
	stepupHTTPAddr = "127.0.0.1:9192"
	// envoyHTTPPrefix is the path_prefix stepup serves Envoy's http_service mode under
	// (extauthz.EnvoyHTTPPath): the original path is appended to it.
	envoyHTTPPrefix = "/authz"
	// forwardAuthPath is stepup's endpoint for Caddy's forward_auth.
	forwardAuthPath = "/forward-auth"
	// forwardAuthNginxPath is stepup's endpoint for nginx's auth_request, which answers a
	// redirect with 401 and X-Stepup-Redirect.
	forwardAuthNginxPath = "/forward-auth/nginx"
	// readinessPath turns 503 while stepup drains; /healthz stays 200 until the end.
	readinessPath = "/readyz"
	// clientIDHeader carries the client id in Envoy's HTTP mode, where stepup believes it
	// from a trusted proxy (forward-auth mode ignores it): Envoy must never pass on the
	// client's own copy.
	clientIDHeader = "x-stepup-client-id"
	// assertionHeader is the signed identity assertion stepup hands the MFA step.
	assertionHeader = "x-stepup-assertion"
	// claimPrefix starts the headers that carry claims the rules pass on.
	claimPrefix = "x-stepup-claim-"
)

// stepupIdentityHeaders are the identity headers stepup sets on every allowed request in
// the forward-auth and HTTP ext_authz modes, in canonical form.
var stepupIdentityHeaders = []string{"X-Stepup-User", "X-Stepup-Email", "X-Stepup-Mfa", "X-Stepup-Network"}

// stepupPrivatePaths are paths on stepup's HTTP port that must never be reachable
// through a proxy's public routes: the decision endpoints, metrics and health.
var stepupPrivatePaths = []string{
	envoyHTTPPrefix + "/", envoyHTTPPrefix + "/payroll/report", forwardAuthPath,
	forwardAuthNginxPath, "/healthz", readinessPath, "/metrics",
}

// stepupMetadataKeys are the keys stepup writes into CheckResponse.dynamic_metadata
// (gRPC mode only), which Envoy stores under extAuthzNamespace (docs/envoy.md#dynamic-metadata-and-access-logs).
var stepupMetadataKeys = extauthz.MetadataKeys

// extAuthzDurationKey is the key Envoy itself adds to extAuthzNamespace on OK (docs/envoy.md#dynamic-metadata-and-access-logs).
const extAuthzDurationKey = "ext_authz_duration"

// extAuthzMetadataRE finds the keys an access-log format reads from extAuthzNamespace.
var extAuthzMetadataRE = regexp.MustCompile(`%DYNAMIC_METADATA\(` + regexp.QuoteMeta(extAuthzNamespace) + `:([^:)]*)`)

// Full protobuf names of the typed_config messages the semantic checks recognise.
var (
	routerType        = typeName(&routerv3.Router{})
	extAuthzType      = typeName(&extauthzv3.ExtAuthz{})
	jwtAuthnType      = typeName(&jwtauthnv3.JwtAuthentication{})
	filterConfigType  = typeName(&routev3.FilterConfig{})
	upstreamTLSType   = typeName(&tlsv3.UpstreamTlsContext{})
	httpProtocolsType = typeName(&upstreamhttpv3.HttpProtocolOptions{})

	// extensionCommands maps the access-log command operators that Envoy implements as
	// formatter extensions to the extension a format string must declare to use them.
	// Envoy rejects a format that uses one without declaring it.
	extensionCommands = map[string]protoreflect.FullName{
		"%REQ_WITHOUT_QUERY(": typeName(&reqwithoutqueryv3.ReqWithoutQuery{}),
		"%CEL(":               typeName(&celv3.Cel{}),
	}

	// perRouteTypes maps an HTTP filter's typed_config type to the only type Envoy
	// accepts for it under typed_per_filter_config. The router has none.
	perRouteTypes = map[protoreflect.FullName]protoreflect.FullName{
		extAuthzType: typeName(&extauthzv3.ExtAuthzPerRoute{}),
		jwtAuthnType: typeName(&jwtauthnv3.PerRouteConfig{}),
		routerType:   "",
	}
)

func typeName(m proto.Message) protoreflect.FullName { return m.ProtoReflect().Descriptor().FullName() }

// validateConfig decodes an Envoy bootstrap written in YAML (or JSON) strictly and
// checks it. The returned error joins every problem found; the bootstrap is nil only
// when decoding failed.
func validateConfig(doc []byte) (*bootstrapv3.Bootstrap, error) {
	b, err := parseBootstrap(doc)
	if err != nil {
		return nil, err
	}
	return b, validateBootstrap(b)
}

// parseBootstrap is steps 1 and 2 of docs/envoy.md#checking-the-example-configurations: YAML to JSON, then protojson with unknown fields
// rejected. Any types resolve through the global registry, which the imports above fill.
func parseBootstrap(doc []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("convert yaml to json: %w", err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("decode bootstrap: %w", err)
	}
	return b, nil
}

// validateBootstrap is steps 3 and 4 of docs/envoy.md#checking-the-example-configurations on an already decoded bootstrap.
func validateBootstrap(b *bootstrapv3.Bootstrap) error {
	var errs []error
	if err := b.ValidateAll(); err != nil {
		errs = append(errs, fmt.Errorf("bootstrap: %w", err))
	}
	errs = append(errs, validateNested(b.ProtoReflect(), "")...)
	errs = append(errs, checkSemantics(b)...)
	return errors.Join(errs...)
}

// validateNested walks every populated message field of m, in field-number order so
// that reports are stable, and validates each Any it meets (step 3 of docs/envoy.md#checking-the-example-configurations).
func validateNested(m protoreflect.Message, path string) []error {
	var errs []error
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) || (fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind) {
			continue
		}
		name := join(path, string(fd.Name()))
		v := m.Get(fd)
		switch {
		case fd.IsList():
			l := v.List()
			for j := range l.Len() {
				errs = append(errs, validateValue(l.Get(j).Message(), fmt.Sprintf("%s[%d]", name, j))...)
			}
		case fd.IsMap():
			if k := fd.MapValue().Kind(); k != protoreflect.MessageKind && k != protoreflect.GroupKind {
				continue
			}
			mp := v.Map()
			var keys []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
			for _, k := range keys {
				errs = append(errs, validateValue(mp.Get(k).Message(), fmt.Sprintf("%s[%q]", name, k.String()))...)
			}
		default:
			errs = append(errs, validateValue(v.Message(), name)...)
		}
	}
	return errs
}

// validateValue validates one message value. An Any is unpacked, its content validated
// with PGV, and the content walked in turn, so an Any inside an Any is reached too.
func validateValue(m protoreflect.Message, path string) []error {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return validateNested(m, path)
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return []error{fmt.Errorf("%s: unpack %s: %w", path, a.GetTypeUrl(), err)}
	}
	path = fmt.Sprintf("%s<%s>", path, inner.ProtoReflect().Descriptor().Name())
	var errs []error
	if v, ok := inner.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
	}
	return append(errs, validateNested(inner.ProtoReflect(), path)...)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// checker holds the state of the semantic checks over one bootstrap.
type checker struct {
	clusters map[string]*clusterv3.Cluster
	ready    map[string]bool // clusters whose readiness check has been looked at
	secrets  map[string]bool // static_resources.secrets by name
	errs     []error
}

func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// unpack returns the content of a, or nil when it cannot be unpacked; the PGV walk has
// already reported that case.
func unpack(a *anypb.Any) proto.Message {
	if a == nil {
		return nil
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		return nil
	}
	return m
}

// checkSemantics is step 4 of docs/envoy.md#checking-the-example-configurations and stepup's posture rules over static resources.
func checkSemantics(b *bootstrapv3.Bootstrap) []error {
	c := &checker{clusters: map[string]*clusterv3.Cluster{}, ready: map[string]bool{}, secrets: map[string]bool{}}
	sr := b.GetStaticResources()
	for _, sec := range sr.GetSecrets() {
		c.secrets[sec.GetName()] = true
	}
	for i, cl := range sr.GetClusters() {
		p := fmt.Sprintf("static_resources.clusters[%d](%s)", i, cl.GetName())
		if _, dup := c.clusters[cl.GetName()]; dup {
			c.errorf(p, "duplicate cluster name %q", cl.GetName())
		}
		c.clusters[cl.GetName()] = cl
		c.checkClusterTLS(p, cl)
	}
	eachMessage(b.ProtoReflect(), func(m proto.Message) {
		if f, ok := m.(*corev3.SubstitutionFormatString); ok {
			c.checkFormatters(f)
		}
	})
	for i, l := range sr.GetListeners() {
		p := fmt.Sprintf("static_resources.listeners[%d](%s)", i, l.GetName())
		chains := l.GetFilterChains()
		if dc := l.GetDefaultFilterChain(); dc != nil {
			chains = append(slices.Clip(chains), dc)
		}
		for j, fc := range chains {
			for k, f := range fc.GetFilters() {
				if cm, ok := unpack(f.GetTypedConfig()).(*hcmv3.HttpConnectionManager); ok {
					c.checkHCM(fmt.Sprintf("%s.filter_chains[%d].filters[%d]", p, j, k), cm)
				}
			}
		}
	}
	return c.errs
}

// eachMessage calls fn for m and every message below it, including the content of
// every Any that unpacks.
func eachMessage(m protoreflect.Message, fn func(proto.Message)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		if inner := unpack(a); inner != nil {
			eachMessage(inner.ProtoReflect(), fn)
		}
		return
	}
	fn(m.Interface())
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			for i := range v.List().Len() {
				eachMessage(v.List().Get(i).Message(), fn)
			}
		case fd.IsMap():
			if k := fd.MapValue().Kind(); k == protoreflect.MessageKind || k == protoreflect.GroupKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					eachMessage(mv.Message(), fn)
					return true
				})
			}
		default:
			eachMessage(v.Message(), fn)
		}
		return true
	})
}

// checkFormatters requires every formatter extension a format string's commands need
// to be declared in its formatters list.
func (c *checker) checkFormatters(f *corev3.SubstitutionFormatString) {
	text, err := protojson.Marshal(f)
	if err != nil {
		return
	}
	declared := map[protoreflect.FullName]bool{}
	for _, fe := range f.GetFormatters() {
		declared[fe.GetTypedConfig().MessageName()] = true
	}
	for _, cmd := range sortedKeys(extensionCommands) {
		if want := extensionCommands[cmd]; strings.Contains(string(text), cmd) && !declared[want] {
			c.errorf("log_format", "uses %s...)%% without declaring the formatter extension %s", strings.TrimPrefix(cmd, "%"), want)
		}
	}
}

// checkClusterTLS insists that an upstream TLS context verifies the peer: without a
// validation context Envoy accepts any certificate, and without a SAN matcher any
// certificate from the trusted CA.
func (c *checker) checkClusterTLS(path string, cl *clusterv3.Cluster) {
	ts := cl.GetTransportSocket()
	if ts == nil || ts.GetTypedConfig().MessageName() != upstreamTLSType {
		return
	}
	tc, ok := unpack(ts.GetTypedConfig()).(*tlsv3.UpstreamTlsContext)
	if !ok {
		return
	}
	ctx := tc.GetCommonTlsContext()
	vc := ctx.GetValidationContext()
	if cvc := ctx.GetCombinedValidationContext(); cvc != nil {
		vc = cvc.GetDefaultValidationContext()
	}
	switch {
	case ctx.GetValidationContextSdsSecretConfig() != nil:
		// Delivered at run time: nothing to check offline.
	case vc == nil || vc.GetTrustedCa() == nil:
		c.errorf(path, "upstream TLS without validation_context.trusted_ca: Envoy would accept any server certificate")
	case len(vc.GetMatchTypedSubjectAltNames()) == 0:
		c.errorf(path, "upstream TLS without match_typed_subject_alt_names: any certificate from the CA would be accepted")
	}
}

// httpFilter is what the checks need to know about one entry of http_filters.
type httpFilter struct {
	index    int
	typ      protoreflect.FullName
	msg      proto.Message // nil when typed_config is missing or does not unpack
	disabled bool          // HttpFilter.disabled: off unless a route turns it on
}

// checkHCM applies the filter-chain and route rules to one HTTP connection manager.
func (c *checker) checkHCM(path string, cm *hcmv3.HttpConnectionManager) {
	fs := cm.GetHttpFilters()
	if len(fs) == 0 {
		c.errorf(path, "http_filters is empty: the router must be the last HTTP filter")
		return
	}
	filters := map[string]httpFilter{}
	var names []string
	produced := map[string]bool{} // dynamic-metadata namespaces written by earlier filters
	httpMode := false
	var authzClusters []string // the clusters ext_authz sends checks to
	var logins []oauth2Filter  // OAuth2 filters (sign-in at the edge)
	var identities []jwtFilter // jwt_authn filters
	authzAt := -1              // index of the first ext_authz filter
	for i, f := range fs {
		fp := fmt.Sprintf("%s.http_filters[%d](%s)", path, i, f.GetName())
		if _, dup := filters[f.GetName()]; dup {
			c.errorf(fp, "duplicate HTTP filter name: typed_per_filter_config keys would be ambiguous")
		}
		if f.GetTypedConfig() == nil {
			c.errorf(fp, "no typed_config (config_discovery is not checked offline)")
		}
		hf := httpFilter{index: i, typ: f.GetTypedConfig().MessageName(), msg: unpack(f.GetTypedConfig()), disabled: f.GetDisabled()}
		filters[f.GetName()] = hf
		names = append(names, f.GetName())
		if hf.typ == routerType && i != len(fs)-1 {
			c.errorf(fp, "the router must be the last HTTP filter (docs/envoy.md#filter-settings); filters after it never run")
		}
		switch m := hf.msg.(type) {
		case *oauth2v3.OAuth2:
			c.checkOAuth2(fp, m)
			logins = append(logins, oauth2Filter{index: i, path: fp, cfg: m.GetConfig(), disabled: f.GetDisabled()})
		case *jwtauthnv3.JwtAuthentication:
			c.checkJwtAuthn(fp, m)
			identities = append(identities, jwtFilter{index: i, cfg: m, disabled: f.GetDisabled()})
			if !f.GetDisabled() && writesPayload(m) {
				produced[jwtAuthnNamespace] = true
			}
		case *extauthzv3.ExtAuthz:
			if authzAt < 0 {
				authzAt = i
			}
			if f.GetDisabled() {
				c.errorf(fp, "ext_authz is disabled by default (disabled: true): requests skip stepup unless a route turns it on")
			}
			c.checkExtAuthz(fp, m, produced)
			produced[extAuthzNamespace] = true
			httpMode = httpMode || m.GetHttpService() != nil
			for _, cl := range []string{m.GetGrpcService().GetEnvoyGrpc().GetClusterName(), m.GetHttpService().GetServerUri().GetCluster()} {
				if cl != "" {
					authzClusters = append(authzClusters, cl)
				}
			}
		}
	}
	for _, l := range logins {
		c.checkLoginChain(l, identities, authzAt)
	}
	if last := fs[len(fs)-1]; last.GetTypedConfig().MessageName() != routerType {
		c.errorf(fmt.Sprintf("%s.http_filters[%d](%s)", path, len(fs)-1, last.GetName()),
			"the last HTTP filter must be the router (%s), not %s", routerType, last.GetTypedConfig().MessageName())
	}

	if cm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() == corev3.HttpProtocolOptions_ALLOW {
		c.errorf(path, "common_http_protocol_options.headers_with_underscores_action is ALLOW (the default): a client's x_stepup_user reaches applications that read \"_\" as \"-\"; set REJECT_REQUEST")
	}
	if httpMode && (!cm.GetNormalizePath().GetValue() || !cm.GetMergeSlashes()) {
		c.errorf(path, "HTTP mode without normalize_path and merge_slashes: the original path is appended to %s, and stepup's Go HTTP server answers a non-canonical path (\"//\", \"/../\") with a 301 instead of a decision", envoyHTTPPrefix)
	}
	c.checkAccessLogs(path, cm, httpMode)
	c.checkReadiness(stepupHTTPCluster)

	rc := cm.GetRouteConfig()
	if rc == nil {
		return // RDS: the routes are not part of this file.
	}
	stepup := c.stepupClusters(authzClusters)
	for vi, vh := range rc.GetVirtualHosts() {
		vp := fmt.Sprintf("%s.route_config.virtual_hosts[%d](%s)", path, vi, vh.GetName())
		c.checkPerFilter(vp, vh.GetTypedPerFilterConfig(), filters, names, httpMode)
		for ri, r := range vh.GetRoutes() {
			rp := fmt.Sprintf("%s.routes[%d](%s)", vp, ri, describeMatch(r.GetMatch()))
			c.checkPerFilter(rp, r.GetTypedPerFilterConfig(), filters, names, httpMode)
			ra := r.GetRoute()
			if ra == nil {
				continue // direct_response, redirect: nothing is forwarded.
			}
			if cl := ra.GetCluster(); cl != "" {
				c.requireCluster(rp, "route", cl)
			}
			c.checkStepupRoute(rp, r, stepup)
			for wi, wc := range ra.GetWeightedClusters().GetClusters() {
				wp := fmt.Sprintf("%s.weighted_clusters[%d](%s)", rp, wi, wc.GetName())
				c.requireCluster(wp, "weighted cluster", wc.GetName())
				c.checkPerFilter(wp, wc.GetTypedPerFilterConfig(), filters, names, httpMode)
			}
			// A forwarding route without a stepup check is an unprotected application
			// (or, under /.stepup/, an MFA step without identity).
			for _, name := range names {
				if filters[name].typ == extAuthzType && disabledOn(name, filters[name], vh, r) {
					c.errorf(rp, "ext_authz %q is disabled on this route: requests reach %s without a stepup check", name, routeTarget(ra))
				}
			}
		}
		c.checkReservedPrefix(vp, vh, filters, names)
	}
}

// oauth2Filter is an OAuth2 filter of http_filters: users sign in at Envoy.
type oauth2Filter struct {
	index    int
	path     string
	cfg      *oauth2v3.OAuth2Config
	disabled bool
}

// jwtFilter is a jwt_authn filter of http_filters.
type jwtFilter struct {
	index    int
	cfg      *jwtauthnv3.JwtAuthentication
	disabled bool
}

// defaultIDTokenCookie is the OAuth2 filter's cookie for the ID token when
// credentials.cookie_names.id_token is unset.
const defaultIDTokenCookie = "IdToken"

// checkOAuth2 applies the rules for one OAuth2 filter on its own: the token endpoint's
// cluster and the secrets exist, and the filter's own paths stay out of stepup's prefix.
func (c *checker) checkOAuth2(path string, m *oauth2v3.OAuth2) {
	cfg := m.GetConfig()
	if cfg == nil {
		c.errorf(path, "no config: the OAuth2 filter signs nobody in")
		return
	}
	if cl := cfg.GetTokenEndpoint().GetCluster(); cl != "" {
		c.requireCluster(path+".config.token_endpoint", "token_endpoint", cl)
	}
	cr := cfg.GetCredentials()
	for field, sec := range map[string]interface {
		GetName() string
		GetSdsConfig() *corev3.ConfigSource
	}{"token_secret": cr.GetTokenSecret(), "hmac_secret": cr.GetHmacSecret()} {
		if sec.GetSdsConfig() == nil && sec.GetName() != "" && !c.secrets[sec.GetName()] {
			c.errorf(path+".config.credentials."+field, "secret %q is not defined under static_resources.secrets (and no sds_config says where else it comes from)", sec.GetName())
		}
	}
	for field, pm := range map[string]*matcherv3.PathMatcher{"redirect_path_matcher": cfg.GetRedirectPathMatcher(), "signout_path": cfg.GetSignoutPath()} {
		for _, p := range []string{reservedPrefix, reservedSample, reservedPrefix + "oauth2/callback"} {
			if pm.GetPath() != nil && matchString(pm.GetPath(), p) {
				c.errorf(path+".config."+field, "matches %s under stepup's reserved prefix %s: the OAuth2 filter would take requests meant for the MFA step", p, reservedPrefix)
				break
			}
		}
	}
}

// checkLoginChain requires what makes a sign-in at Envoy reach stepup: the OAuth2 filter
// runs before jwt_authn and ext_authz, it sets the ID token cookie, unencrypted, and an
// enabled jwt_authn provider verifies that cookie and writes the claims that ext_authz
// passes to stepup.
func (c *checker) checkLoginChain(l oauth2Filter, identities []jwtFilter, authzAt int) {
	if l.disabled || l.cfg == nil {
		return
	}
	if authzAt >= 0 && authzAt < l.index {
		c.errorf(l.path, "the OAuth2 filter runs after ext_authz: stepup is asked before the user has signed in")
	}
	cookie := l.cfg.GetCredentials().GetCookieNames().GetIdToken()
	if cookie == "" {
		cookie = defaultIDTokenCookie
	}
	reads := false
	for _, j := range identities {
		if j.disabled {
			continue
		}
		for _, p := range j.cfg.GetProviders() {
			if slices.Contains(p.GetFromCookies(), cookie) && (p.GetPayloadInMetadata() != "" || p.GetHeaderInMetadata() != "") {
				reads = true
				if j.index < l.index {
					c.errorf(l.path, "the OAuth2 filter runs after the jwt_authn filter that reads its %s cookie: a fresh sign-in reaches stepup without an identity", cookie)
				}
			}
		}
	}
	switch {
	case !reads:
		c.errorf(l.path, "no enabled jwt_authn provider reads the ID token from the %s cookie into metadata: stepup never learns who signed in", cookie)
	case l.cfg.GetDisableIdTokenSetCookie():
		c.errorf(l.path, "disable_id_token_set_cookie is true: the %s cookie that jwt_authn reads is never set", cookie)
	case !l.cfg.GetDisableTokenEncryption():
		c.errorf(l.path, "the tokens in the OAuth2 cookies are encrypted (Envoy's default since 1.35): jwt_authn cannot verify the %s cookie; set disable_token_encryption: true", cookie)
	}
}

// writesPayload reports whether some provider puts the verified JWT into dynamic
// metadata, which is what ext_authz forwards (docs/envoy.md#claims-from-jwt_authn).
func writesPayload(j *jwtauthnv3.JwtAuthentication) bool {
	for _, p := range j.GetProviders() {
		if p.GetPayloadInMetadata() != "" || p.GetHeaderInMetadata() != "" {
			return true
		}
	}
	return false
}

func (c *checker) checkJwtAuthn(path string, j *jwtauthnv3.JwtAuthentication) {
	for _, name := range sortedKeys(j.GetProviders()) {
		if cl := j.GetProviders()[name].GetRemoteJwks().GetHttpUri().GetCluster(); cl != "" {
			c.requireCluster(fmt.Sprintf("%s.providers[%q]", path, name), "remote_jwks", cl)
		}
	}
}

// checkExtAuthz applies the rules of docs/envoy.md#filter-settings to one ext_authz filter config.
// produced holds the metadata namespaces written by the filters before it.
func (c *checker) checkExtAuthz(path string, a *extauthzv3.ExtAuthz, produced map[string]bool) {
	if a.GetFailureModeAllow() {
		c.errorf(path, "failure_mode_allow is true: a stepup outage or RPC error would let requests through (docs/envoy.md#errors-and-failure_mode_allow)")
	}
	if a.GetStatusOnError() == nil {
		c.errorf(path, "status_on_error is unset: an error would look like a 403 denial; set 503 (docs/envoy.md#errors-and-failure_mode_allow)")
	}
	if a.GetShadowMode() {
		c.errorf(path, "shadow_mode is true: decisions would be recorded but never enforced (docs/envoy.md#filter-settings)")
	}
	switch {
	case a.GetGrpcService() != nil:
		if a.GetTransportApiVersion() != corev3.ApiVersion_V3 {
			c.errorf(path, "gRPC mode needs transport_api_version: V3, got %s; Envoy rejects the configuration (docs/envoy.md#filter-settings)", a.GetTransportApiVersion())
		}
		c.checkGRPCService(path+".grpc_service", a.GetGrpcService())
	case a.GetHttpService() != nil:
		hs := a.GetHttpService()
		c.requireCluster(path+".http_service.server_uri", "http_service", hs.GetServerUri().GetCluster())
		c.checkTimeout(path+".http_service.server_uri.timeout", hs.GetServerUri().GetTimeout().AsDuration(), hs.GetServerUri().GetTimeout() != nil)
		if len(a.GetMetadataContextNamespaces())+len(a.GetTypedMetadataContextNamespaces()) > 0 {
			c.errorf(path, "metadata_context_namespaces are ignored in HTTP mode (docs/envoy.md#http-mode): stepup must read the token from the request")
		}
		c.checkHTTPService(path, a)
		c.checkReadiness(hs.GetServerUri().GetCluster())
	default:
		c.errorf(path, "neither grpc_service nor http_service is set")
	}
	for _, ns := range slices.Concat(a.GetMetadataContextNamespaces(), a.GetTypedMetadataContextNamespaces()) {
		if !produced[ns] {
			c.errorf(path, "metadata namespace %q is not produced by an earlier HTTP filter (jwt_authn with payload_in_metadata must come before ext_authz, docs/envoy.md#claims-from-jwt_authn)", ns)
		}
	}
}

// checkGRPCService checks the target of a gRPC ext_authz service: the deadline, and that
// an envoy_grpc cluster exists, speaks HTTP/2 and is health-checked the way docs/envoy.md#health-checks-and-draining says.
func (c *checker) checkGRPCService(path string, gs *corev3.GrpcService) {
	c.checkTimeout(path+".timeout", gs.GetTimeout().AsDuration(), gs.GetTimeout() != nil)
	eg := gs.GetEnvoyGrpc()
	if eg == nil {
		return // google_grpc dials target_uri itself: no cluster to check.
	}
	name := eg.GetClusterName()
	if !c.requireCluster(path+".envoy_grpc", "envoy_grpc", name) {
		return
	}
	cl := c.clusters[name]
	cp := fmt.Sprintf("cluster %q", name)
	if !speaksHTTP2(cl) {
		c.errorf(cp, "the ext_authz gRPC cluster does not speak HTTP/2: set typed_extension_protocol_options[%s].explicit_http_config.http2_protocol_options (docs/envoy.md#filter-settings)", httpProtocolOptionsKey)
	}
	if !slices.ContainsFunc(cl.GetHealthChecks(), func(h *corev3.HealthCheck) bool {
		return h.GetGrpcHealthCheck().GetServiceName() == authzHealthService
	}) {
		c.errorf(cp, "no gRPC health check with service_name %s on the ext_authz cluster (docs/envoy.md#health-checks-and-draining)", authzHealthService)
	}
	if tc, ok := unpack(cl.GetTransportSocket().GetTypedConfig()).(*tlsv3.UpstreamTlsContext); ok &&
		!slices.Contains(tc.GetCommonTlsContext().GetAlpnProtocols(), "h2") {
		c.errorf(cp, "TLS to the gRPC server without alpn_protocols [h2]: grpc-go refuses connections that do not negotiate h2 (docs/envoy.md#tls-and-alpn)")
	}
}

func (c *checker) checkTimeout(path string, d time.Duration, set bool) {
	switch {
	case !set:
		c.errorf(path, "timeout is unset: the 200 ms default is too tight for rules plus a store lookup; set 0.5 to 1 s (docs/envoy.md#filter-settings)")
	case d < minAuthzTimeout:
		c.errorf(path, "timeout %s is below %s (docs/envoy.md#filter-settings)", d, minAuthzTimeout)
	}
}

// upstreamReasons says, for each header that Envoy must copy from stepup's 200 onto the
// upstream request in HTTP mode, what goes wrong when allowed_upstream_headers misses it.
var upstreamReasons = map[string]string{
	"x-stepup-user":    "the application would get the client's own copy instead of stepup's",
	"x-stepup-email":   "the application would get the client's own copy instead of stepup's",
	"x-stepup-mfa":     "the application would get the client's own copy instead of stepup's",
	"x-stepup-network": "the application would get the client's own copy instead of stepup's",
	assertionHeader:    "the MFA step would not get the signed identity, and a forged copy would reach it",
	"cookie":           "stepup's own cookies (the MFA session, remember-browser) would reach the application",
}

// checkHTTPService checks what stepup's /authz/ endpoint needs from an http_service
// ext_authz filter (docs/envoy.md#http-mode): the path it serves, the headers it sets upstream, and the
// request headers it must (and must not) see.
func (c *checker) checkHTTPService(path string, a *extauthzv3.ExtAuthz) {
	hs := a.GetHttpService()
	hp := path + ".http_service"
	if p := hs.GetPathPrefix(); p != envoyHTTPPrefix {
		c.errorf(hp, "path_prefix %q: stepup serves Envoy's HTTP mode at %s/ only (outside the reserved prefix), so every check would be answered 404, a denial", p, envoyHTTPPrefix)
	}
	if p := hs.GetPathOverride(); p != "" {
		c.errorf(hp, "path_override %q replaces the original path: stepup would decide every request as if it were that path", p)
	}
	resp := hs.GetAuthorizationResponse()
	for _, h := range sortedKeys(upstreamReasons) {
		if !listMatches(resp.GetAllowedUpstreamHeaders(), h) {
			c.errorf(hp, "authorization_response.allowed_upstream_headers does not pass %s: %s", h, upstreamReasons[h])
		}
	}
	for _, h := range stepupIdentityHeaders {
		if h = strings.ToLower(h); listMatches(resp.GetAllowedUpstreamHeadersToAppend(), h) {
			c.errorf(hp, "authorization_response.allowed_upstream_headers_to_append matches %s: a client-sent copy would survive next to stepup's", h)
		}
	}
	// The request headers that reach stepup: the filter-wide lists, or the deprecated
	// per-service one.
	passes := func(h string) bool {
		allowed := listMatches(a.GetAllowedHeaders(), h) || listMatches(hs.GetAuthorizationRequest().GetAllowedHeaders(), h)
		return allowed && !listMatches(a.GetDisallowedHeaders(), h)
	}
	if passes(clientIDHeader) {
		c.errorf(path, "allowed_headers pass the client's %s to stepup, which believes it from Envoy: a client could choose the client id (and so the rules) its request is judged by", clientIDHeader)
	}
	for _, h := range []string{assertionHeader, claimPrefix + "role"} {
		if !passes(h) {
			name := strings.TrimSuffix(h, "role")
			if name != h {
				name += "*"
			}
			c.errorf(path, "allowed_headers do not pass %s: stepup never sees a client-sent copy, so it cannot have Envoy strip it (x-envoy-auth-headers-to-remove) before the application gets it", name)
		}
	}
}

// checkReadiness requires a health check on stepup's /readyz for a cluster that reaches
// stepup's HTTP port. /healthz answers 200 until the process exits; /readyz turns 503
// when stepup starts draining, which is what Envoy needs to stop sending (docs/envoy.md#health-checks-and-draining).
func (c *checker) checkReadiness(name string) {
	cl, ok := c.clusters[name]
	if !ok || c.ready[name] {
		return
	}
	c.ready[name] = true
	if !slices.ContainsFunc(cl.GetHealthChecks(), func(h *corev3.HealthCheck) bool {
		return h.GetHttpHealthCheck().GetPath() == readinessPath
	}) {
		c.errorf(fmt.Sprintf("cluster %q", name), "no HTTP health check on %s for stepup's HTTP port: Envoy would keep sending to a draining stepup (/healthz stays 200 until it exits) (docs/envoy.md#health-checks-and-draining)", readinessPath)
	}
}

// checkAccessLogs requires the access logs of a connection manager to read only the
// ext_authz metadata that exists: stepup's keys in gRPC mode, and in either mode the
// duration Envoy adds itself. HTTP mode has no CheckResponse.dynamic_metadata (docs/envoy.md#http-mode).
func (c *checker) checkAccessLogs(path string, cm *hcmv3.HttpConnectionManager, httpMode bool) {
	for i, al := range cm.GetAccessLog() {
		ap := fmt.Sprintf("%s.access_log[%d]", path, i)
		eachMessage(al.ProtoReflect(), func(m proto.Message) {
			f, ok := m.(*corev3.SubstitutionFormatString)
			if !ok {
				return
			}
			text, err := protojson.Marshal(f)
			if err != nil {
				return
			}
			seen := map[string]bool{}
			for _, sm := range extAuthzMetadataRE.FindAllStringSubmatch(string(text), -1) {
				key := sm[1]
				if seen[key] {
					continue
				}
				seen[key] = true
				switch {
				case key == extAuthzDurationKey:
				case !slices.Contains(stepupMetadataKeys, key):
					c.errorf(ap, "reads %s:%s, which neither stepup (%s) nor Envoy (%s) writes", extAuthzNamespace, key, strings.Join(stepupMetadataKeys, ", "), extAuthzDurationKey)
				case httpMode:
					c.errorf(ap, "reads stepup's %s:%s, but HTTP mode has no CheckResponse.dynamic_metadata (docs/envoy.md#http-mode): the field is always empty", extAuthzNamespace, key)
				}
			}
		})
	}
}

// stepupClusters returns the clusters that reach stepup: stepup_http, the clusters
// ext_authz sends checks to, and any other cluster with an endpoint at one of their
// addresses (a second name for stepup's HTTP port is still stepup's HTTP port).
func (c *checker) stepupClusters(authz []string) map[string]bool {
	out := map[string]bool{}
	addrs := map[string]bool{}
	for _, name := range append([]string{stepupHTTPCluster}, authz...) {
		if cl, ok := c.clusters[name]; ok {
			out[name] = true
			for _, a := range endpointAddrs(cl) {
				addrs[a] = true
			}
		}
	}
	for name, cl := range c.clusters {
		if slices.ContainsFunc(endpointAddrs(cl), func(a string) bool { return addrs[a] }) {
			out[name] = true
		}
	}
	return out
}

// endpointAddrs lists the socket addresses (host:port) of a cluster's static endpoints.
func endpointAddrs(cl *clusterv3.Cluster) []string {
	var out []string
	for _, le := range cl.GetLoadAssignment().GetEndpoints() {
		for _, ep := range le.GetLbEndpoints() {
			if sa := ep.GetEndpoint().GetAddress().GetSocketAddress(); sa != nil {
				out = append(out, net.JoinHostPort(strings.ToLower(sa.GetAddress()), fmt.Sprint(sa.GetPortValue())))
			}
		}
	}
	return out
}

// checkStepupRoute enforces that a public route reaches stepup only for the reserved
// prefix, with the path unchanged. stepup's decision endpoints (/authz/, /forward-auth),
// /metrics and its health endpoints are deliberately outside /.stepup/: routing any
// other path, or rewriting /.stepup/x into one, would publish them.
func (c *checker) checkStepupRoute(path string, r *routev3.Route, stepup map[string]bool) {
	ra := r.GetRoute()
	targets := []string{ra.GetCluster()}
	for _, wc := range ra.GetWeightedClusters().GetClusters() {
		targets = append(targets, wc.GetName())
	}
	i := slices.IndexFunc(targets, func(t string) bool { return stepup[t] })
	if i < 0 {
		return
	}
	if !confinedToReserved(r.GetMatch()) {
		c.errorf(path, "sends %s to stepup's cluster %q: only the reserved prefix %s may be routed to stepup, or its decision endpoints (%s/, %s), /metrics and health endpoints become public",
			describeMatch(r.GetMatch()), targets[i], reservedPrefix, envoyHTTPPrefix, forwardAuthPath)
	}
	if ra.GetPrefixRewrite() != "" || ra.GetRegexRewrite() != nil || ra.GetPathRewritePolicy() != nil {
		c.errorf(path, "rewrites the path of requests it sends to stepup's cluster %q: a %s path could then reach stepup's decision endpoints", targets[i], reservedPrefix)
	}
}

// confinedToReserved reports whether every path the route can match lies under the
// reserved prefix. A regex is tried against stepup's private paths; matchers it cannot
// reason about are not confined.
func confinedToReserved(m *routev3.RouteMatch) bool {
	under := func(p string) bool { return strings.HasPrefix(strings.ToLower(p), reservedPrefix) }
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return under(ps.Prefix)
	case *routev3.RouteMatch_Path:
		return under(ps.Path)
	case *routev3.RouteMatch_PathSeparatedPrefix:
		return under(ps.PathSeparatedPrefix + "/")
	case *routev3.RouteMatch_SafeRegex:
		return !slices.ContainsFunc(stepupPrivatePaths, func(p string) bool {
			match, _ := matchesPath(m, p)
			return match
		})
	}
	return false
}

// listMatches reports whether any pattern of an Envoy ListStringMatcher matches s.
func listMatches(l *matcherv3.ListStringMatcher, s string) bool {
	return slices.ContainsFunc(l.GetPatterns(), func(m *matcherv3.StringMatcher) bool { return matchString(m, s) })
}

// matchString evaluates an Envoy StringMatcher the way Envoy does: safe_regex must match
// the whole string, ignore_case folds exact, prefix, suffix and contains. A custom
// matcher or a regex that does not compile matches nothing.
func matchString(m *matcherv3.StringMatcher, s string) bool {
	fold := func(v string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(v)
		}
		return v
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return fold(s) == fold(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(fold(s), fold(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(fold(s), fold(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(fold(s), fold(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		return err == nil && re.MatchString(s)
	}
	return false
}

// speaksHTTP2 reports whether Envoy will use HTTP/2 towards the cluster: explicitly
// through the upstream HTTP protocol options, or through the deprecated top-level
// http2_protocol_options that Envoy still accepts (docs/envoy.md#filter-settings).
func speaksHTTP2(cl *clusterv3.Cluster) bool {
	if cl.GetHttp2ProtocolOptions() != nil {
		return true
	}
	a := cl.GetTypedExtensionProtocolOptions()[httpProtocolOptionsKey]
	if a.MessageName() != httpProtocolsType {
		return false
	}
	po, ok := unpack(a).(*upstreamhttpv3.HttpProtocolOptions)
	return ok && po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

// requireCluster reports whether name is a defined cluster, recording an error if not.
func (c *checker) requireCluster(path, what, name string) bool {
	if _, ok := c.clusters[name]; ok {
		return true
	}
	c.errorf(path, "%s refers to cluster %q, which is not defined", what, name)
	return false
}

// checkPerFilter checks one typed_per_filter_config map: every key must be the name of
// an HTTP filter of this connection manager (docs/envoy.md#per-route-settings, docs/envoy.md#filter-settings), and the value must be the
// per-route type that filter accepts.
func (c *checker) checkPerFilter(path string, cfg map[string]*anypb.Any, filters map[string]httpFilter, names []string, httpMode bool) {
	for _, key := range sortedKeys(cfg) {
		kp := fmt.Sprintf("%s.typed_per_filter_config[%q]", path, key)
		f, ok := filters[key]
		if !ok {
			c.errorf(kp, "key names no HTTP filter of this connection manager (filters: %s)", strings.Join(names, ", "))
			continue
		}
		a := cfg[key]
		if a.MessageName() == filterConfigType {
			fc, ok := unpack(a).(*routev3.FilterConfig)
			if !ok || fc.GetConfig() == nil {
				continue
			}
			a = fc.GetConfig()
		}
		want, known := perRouteTypes[f.typ]
		switch {
		case !known:
			continue
		case want == "":
			c.errorf(kp, "%s takes no per-route configuration", f.typ)
			continue
		case a.MessageName() != want:
			c.errorf(kp, "per-route type %s does not match filter type %s (want %s)", a.MessageName(), f.typ, want)
			continue
		}
		pr, ok := unpack(a).(*extauthzv3.ExtAuthzPerRoute)
		if !ok {
			continue
		}
		cs := pr.GetCheckSettings()
		if httpMode && len(cs.GetContextExtensions()) > 0 {
			c.errorf(kp, "context_extensions are ignored in HTTP mode (docs/envoy.md#per-route-settings); pass per-route data in a header instead")
		}
		if gs := cs.GetGrpcService(); gs != nil {
			c.checkGRPCService(kp+".check_settings.grpc_service", gs)
		}
		if hs := cs.GetHttpService(); hs != nil {
			c.requireCluster(kp+".check_settings.http_service.server_uri", "http_service", hs.GetServerUri().GetCluster())
		}
	}
}

// disabledOn reports whether the filter is off for requests matching route r of vh. The
// most specific per-route setting wins; the filter's own disabled flag is the default.
func disabledOn(name string, f httpFilter, vh *routev3.VirtualHost, r *routev3.Route) bool {
	disabled := f.disabled
	for _, level := range []map[string]*anypb.Any{vh.GetTypedPerFilterConfig(), r.GetTypedPerFilterConfig()} {
		if d, ok := perRouteDisabled(level[name]); ok {
			disabled = d
		}
	}
	return disabled
}

// perRouteDisabled interprets one per-route value; ok is false when it says nothing
// about whether the filter runs.
func perRouteDisabled(a *anypb.Any) (disabled, ok bool) {
	switch m := unpack(a).(type) {
	case *routev3.FilterConfig:
		if m.GetDisabled() {
			return true, true
		}
		if m.GetConfig() == nil {
			return false, true
		}
		if d, ok := perRouteDisabled(m.GetConfig()); ok {
			return d, true
		}
		return false, true
	case *extauthzv3.ExtAuthzPerRoute:
		return m.GetDisabled(), true
	case *jwtauthnv3.PerRouteConfig:
		return m.GetDisabled(), true
	}
	return false, false
}

// checkReservedPrefix enforces docs/envoy.md#the-reserved-prefix on one virtual host: Check allows
// /.stepup/, so every route that can take a /.stepup/ request must send it to stepup's
// HTTP port (if it reached the application, MFA would be skipped), and ext_authz and
// jwt_authn stay on there so the MFA step receives the signed identity assertion.
func (c *checker) checkReservedPrefix(path string, vh *routev3.VirtualHost, filters map[string]httpFilter, names []string) {
	for ri, r := range vh.GetRoutes() {
		match, conditional := matchesPath(r.GetMatch(), reservedSample)
		if !match {
			continue
		}
		rp := fmt.Sprintf("%s.routes[%d](%s)", path, ri, describeMatch(r.GetMatch()))
		if r.GetRoute().GetCluster() != stepupHTTPCluster {
			c.errorf(rp, "the reserved prefix: %s is routed to %s, not to stepup's HTTP cluster %q (a route for /.stepup/ must come before any catch-all)",
				reservedSample, routeTarget(r.GetRoute()), stepupHTTPCluster)
		}
		for _, name := range names {
			if filters[name].typ == jwtAuthnType && disabledOn(name, filters[name], vh, r) {
				c.errorf(rp, "jwt_authn %q is disabled on the reserved prefix: the MFA step needs the caller's identity (docs/envoy.md#the-reserved-prefix)", name)
			}
		}
		if !conditional {
			return
		}
	}
	c.errorf(path, "no route takes %s: the MFA step is unreachable on this host", reservedSample)
}

// matchesPath reports whether the path part of m matches p, and whether the route has
// further conditions (headers, query, runtime, ...) so that a later route may still
// take some of those requests. Unknown path matchers count as matching.
func matchesPath(m *routev3.RouteMatch, p string) (match, conditional bool) {
	rm := m.ProtoReflect()
	fields := rm.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if rm.Has(fd) && fd.ContainingOneof() == nil && fd.Name() != "case_sensitive" {
			conditional = true
		}
	}
	hasPrefix := strings.HasPrefix
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		hasPrefix = func(s, prefix string) bool {
			return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
		}
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return hasPrefix(p, ps.Prefix), conditional
	case *routev3.RouteMatch_Path:
		return p == ps.Path, conditional
	case *routev3.RouteMatch_PathSeparatedPrefix:
		return p == ps.PathSeparatedPrefix || hasPrefix(p, ps.PathSeparatedPrefix+"/"), conditional
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile(`^(?:` + ps.SafeRegex.GetRegex() + `)$`)
		return err != nil || re.MatchString(p), conditional
	case *routev3.RouteMatch_ConnectMatcher_:
		return false, conditional
	}
	return true, conditional
}

func describeMatch(m *routev3.RouteMatch) string {
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return "prefix " + ps.Prefix
	case *routev3.RouteMatch_Path:
		return "path " + ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		return "path_separated_prefix " + ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		return "safe_regex " + ps.SafeRegex.GetRegex()
	}
	return "match"
}

func routeTarget(ra *routev3.RouteAction) string {
	switch {
	case ra == nil:
		return "no cluster"
	case ra.GetCluster() != "":
		return fmt.Sprintf("cluster %q", ra.GetCluster())
	case ra.GetWeightedClusters() != nil:
		return "weighted clusters"
	}
	return "a dynamically chosen cluster"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// summary names the static listeners and clusters of a bootstrap, in file order.
type summary struct {
	Listeners []string
	Clusters  []string
}

func summarize(b *bootstrapv3.Bootstrap) summary {
	var s summary
	for _, l := range b.GetStaticResources().GetListeners() {
		s.Listeners = append(s.Listeners, l.GetName())
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		s.Clusters = append(s.Clusters, c.GetName())
	}
	return s
}

// TestExampleConfigs decodes and checks every Envoy file of the directory (docs/envoy.md#checking-the-example-configurations) and
// pins the listeners and clusters each one defines.
func TestExampleConfigs(t *testing.T) {
	stepupClusters := []string{"stepup_authz", "stepup_http", "app_backend", "idp_jwks"}
	want := map[string]summary{
		"envoy.yaml":      {Listeners: []string{"ingress_https"}, Clusters: stepupClusters},
		"envoy-http.yaml": {Listeners: []string{"ingress_https"}, Clusters: stepupClusters},
		"envoy-mtls.yaml": {Listeners: []string{"ingress_https"}, Clusters: stepupClusters},
		"envoy-oauth2.yaml": {
			Listeners: []string{"ingress_https"},
			Clusters:  []string{"stepup_authz", "stepup_http", "app_backend", "idp"},
		},
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sortedKeys(want), files); diff != "" {
		t.Errorf("Envoy files in envoy/ (-want +got); add new files to this table:\n%s", diff)
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b, err := validateConfig(data)
			if err != nil {
				t.Fatalf("%s is not a valid stepup Envoy configuration:\n%v", file, err)
			}
			got := summarize(b)
			t.Logf("%s: %d listeners %v, %d clusters %v", file, len(got.Listeners), got.Listeners, len(got.Clusters), got.Clusters)
			if diff := cmp.Diff(want[file], got); diff != "" {
				t.Errorf("listeners and clusters (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidatorRejects proves that the checker fails on the mistakes docs/envoy.md#checking-the-example-configurations lists, and on
// the fail-open and bypass mistakes stepup cares about. Each case mutates a decoded copy
// of an example file; want is a fragment of the expected error. The first cases, with no
// mutation, show that the round trip through the generic tree is itself valid.
func TestValidatorRejects(t *testing.T) {
	const (
		authzName  = "envoy.filters.http.ext_authz"
		jwtName    = "envoy.filters.http.jwt_authn"
		oauth2Name = "envoy.filters.http.oauth2"
		perRoute   = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
		jwtRoute   = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
	)
	tests := []struct {
		name   string
		file   string
		mutate func(t *testing.T, doc tree)
		want   string // "" means the mutated file must pass
	}{
		{name: "grpc baseline", file: "envoy.yaml", mutate: func(*testing.T, tree) {}},
		{name: "http baseline", file: "envoy-http.yaml", mutate: func(*testing.T, tree) {}},
		{name: "mtls baseline", file: "envoy-mtls.yaml", mutate: func(*testing.T, tree) {}},
		{name: "oauth2 baseline", file: "envoy-oauth2.yaml", mutate: func(*testing.T, tree) {}},

		// Sign-in at Envoy: the OAuth2 filter's ID token must reach stepup.
		{
			name: "oauth2 after jwt_authn", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				fs := list(t, hcm(t, doc), "http_filters")
				fs[0], fs[1] = fs[1], fs[0]
			},
			want: "the OAuth2 filter runs after the jwt_authn filter that reads its IdToken cookie",
		},
		{
			name: "oauth2 after ext_authz", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				fs := list(t, hcm(t, doc), "http_filters")
				fs[0], fs[1], fs[2] = fs[1], fs[2], fs[0]
			},
			want: "the OAuth2 filter runs after ext_authz",
		},
		{
			name: "jwt_authn reads another cookie", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, jwtName), "providers", "corp_idp")["from_cookies"] = []any{"id_token"}
			},
			want: "no enabled jwt_authn provider reads the ID token from the IdToken cookie",
		},
		{
			name: "renamed ID token cookie not followed by jwt_authn", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, oauth2Name), "config", "credentials", "cookie_names")["id_token"] = "OidcIdToken"
			},
			want: "reads the ID token from the OidcIdToken cookie",
		},
		{
			name: "ID token cookie not set", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, oauth2Name), "config")["disable_id_token_set_cookie"] = true
			},
			want: "disable_id_token_set_cookie is true",
		},
		{
			name: "encrypted tokens", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, filterConfig(t, doc, oauth2Name), "config"), "disable_token_encryption")
			},
			want: "jwt_authn cannot verify the IdToken cookie; set disable_token_encryption: true",
		},
		{
			name: "callback under the reserved prefix", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, oauth2Name), "config", "redirect_path_matcher", "path")["exact"] = "/.stepup/oauth2/callback"
			},
			want: "redirect_path_matcher: matches /.stepup/oauth2/callback under stepup's reserved prefix",
		},
		{
			name: "sign-out under the reserved prefix", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, oauth2Name), "config", "signout_path")["path"] = tree{"prefix": "/"}
			},
			want: "signout_path: matches /.stepup/ under stepup's reserved prefix",
		},
		{
			name: "token endpoint cluster not defined", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, oauth2Name), "config", "token_endpoint")["cluster"] = "nosuch"
			},
			want: `token_endpoint refers to cluster "nosuch", which is not defined`,
		},
		{
			name: "hmac secret not defined", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, oauth2Name), "config", "credentials", "hmac_secret")["name"] = "nosuch"
			},
			want: `hmac_secret: secret "nosuch" is not defined under static_resources.secrets`,
		},
		{
			name: "oauth2 without a client id", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, filterConfig(t, doc, oauth2Name), "config", "credentials"), "client_id")
			},
			want: "ClientId",
		},
		{
			name: "oauth2 keeps the reserved prefix checked", file: "envoy-oauth2.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/.stepup/"), "typed_per_filter_config")[jwtName] = tree{"@type": jwtRoute, "disabled": true}
			},
			want: "jwt_authn",
		},

		// Step 2 of docs/envoy.md#checking-the-example-configurations: strict decoding.
		{
			name: "misspelt field inside an Any", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { rename(t, hcm(t, doc), "use_remote_address", "use_remote_adress") },
			want:   `unknown field "use_remote_adress"`,
		},
		{
			name: "misspelt top-level field", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { rename(t, doc, "static_resources", "static_resource") },
			want:   `unknown field "static_resource"`,
		},
		{
			name: "misspelt field in a per-route Any", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				rename(t, obj(t, route(t, doc, "/"), "typed_per_filter_config", authzName, "check_settings"), "context_extensions", "contxt_extensions")
			},
			want: `unknown field "contxt_extensions"`,
		},
		{
			name: "enum value V4", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { filterConfig(t, doc, authzName)["transport_api_version"] = "V4" },
			want:   `invalid value for enum field transportApiVersion: "V4"`,
		},
		{
			name: "unregistered typed_config type", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				filterConfig(t, doc, "envoy.filters.http.router")["@type"] = "type.googleapis.com/envoy.extensions.filters.http.nosuch.v3.NoSuch"
			},
			want: "unable to resolve",
		},

		// Step 3 of docs/envoy.md#checking-the-example-configurations: PGV inside Any values, which the bootstrap's ValidateAll skips.
		{
			name: "max_request_bytes 0 inside the ext_authz Any", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "with_request_body")["max_request_bytes"] = 0
			},
			want: "MaxRequestBytes",
		},
		{
			name: "PGV rule inside a per-route Any in a map", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/"), "typed_per_filter_config")[authzName] = tree{"@type": perRoute}
			},
			want: "invalid ExtAuthzPerRoute.Override: value is required",
		},

		// Step 4 of docs/envoy.md#checking-the-example-configurations, and failing closed: load-time rules.
		{
			name: "missing transport_api_version V3", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { delete(filterConfig(t, doc, authzName), "transport_api_version") },
			want:   "transport_api_version: V3",
		},
		{
			name: "jwt_authn after ext_authz", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				fs := list(t, hcm(t, doc), "http_filters")
				fs[0], fs[1] = fs[1], fs[0]
			},
			want: `metadata namespace "envoy.filters.http.jwt_authn" is not produced by an earlier HTTP filter`,
		},
		{
			name: "jwt_authn without payload_in_metadata", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, filterConfig(t, doc, jwtName), "providers", "corp_idp"), "payload_in_metadata")
			},
			want: "is not produced by an earlier HTTP filter",
		},
		{
			name: "HTTP/1 authz cluster", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(cluster(t, doc, "stepup_authz"), "typed_extension_protocol_options")
			},
			want: "does not speak HTTP/2",
		},
		{
			name: "deprecated http2_protocol_options is accepted", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				cl := cluster(t, doc, "stepup_authz")
				delete(cl, "typed_extension_protocol_options")
				cl["http2_protocol_options"] = tree{}
			},
		},
		{
			name: "authz cluster not defined", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "grpc_service", "envoy_grpc")["cluster_name"] = "stepup-authz"
			},
			want: `envoy_grpc refers to cluster "stepup-authz", which is not defined`,
		},
		{
			name: "router not last", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				h := hcm(t, doc)
				fs := list(t, h, "http_filters")
				h["http_filters"] = append([]any{fs[len(fs)-1]}, fs[:len(fs)-1]...)
			},
			want: "the router must be the last HTTP filter",
		},
		{
			name: "per-route key matching no filter", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				rename(t, obj(t, route(t, doc, "/"), "typed_per_filter_config"), authzName, "envoy.filters.http.extauthz")
			},
			want: "key names no HTTP filter",
		},
		{
			name: "per-route value of another filter's type", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/"), "typed_per_filter_config")[authzName] = tree{"@type": jwtRoute, "disabled": true}
			},
			want: "does not match filter type",
		},
		{
			name: "failure_mode_allow true", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { filterConfig(t, doc, authzName)["failure_mode_allow"] = true },
			want:   "failure_mode_allow is true",
		},
		{
			name: "status_on_error unset", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { delete(filterConfig(t, doc, authzName), "status_on_error") },
			want:   "status_on_error is unset",
		},
		{
			name: "shadow_mode true", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { filterConfig(t, doc, authzName)["shadow_mode"] = true },
			want:   "shadow_mode is true",
		},
		{
			name: "grpc timeout below 200ms", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "grpc_service")["timeout"] = "0.1s"
			},
			want: "timeout 100ms is below 200ms",
		},
		{
			name: "grpc timeout unset", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, filterConfig(t, doc, authzName), "grpc_service"), "timeout")
			},
			want: "timeout is unset",
		},
		{
			name: "health check on the wrong service", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, cluster(t, doc, "stepup_authz"), "health_checks", 0, "grpc_health_check")["service_name"] = "stepup"
			},
			want: "no gRPC health check with service_name envoy.service.auth.v3.Authorization",
		},
		{
			name: "duplicate cluster", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				sr := obj(t, doc, "static_resources")
				sr["clusters"] = append(list(t, sr, "clusters"), cluster(t, doc, "app_backend"))
			},
			want: `duplicate cluster name "app_backend"`,
		},
		{
			name: "route to an undefined cluster", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { obj(t, route(t, doc, "/"), "route")["cluster"] = "app" },
			want:   `route refers to cluster "app"`,
		},
		{
			name: "jwks cluster not defined", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, jwtName), "providers", "corp_idp", "remote_jwks", "http_uri")["cluster"] = "jwks"
			},
			want: `remote_jwks refers to cluster "jwks"`,
		},
		{
			name: "ext_authz disabled by default", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { filterNode(t, doc, authzName)["disabled"] = true },
			want:   "ext_authz is disabled by default",
		},

		// The reserved prefix (docs/envoy.md#the-reserved-prefix).
		{
			name: "reserved prefix after the catch-all", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				vh := obj(t, hcm(t, doc), "route_config", "virtual_hosts", 0)
				var rest []any
				var stepup any
				for _, r := range list(t, vh, "routes") {
					if obj(t, r, "match")["prefix"] == "/.stepup/" {
						stepup = r
						continue
					}
					rest = append(rest, r)
				}
				vh["routes"] = append(rest, stepup)
			},
			want: `the reserved prefix: /.stepup/mfa is routed to cluster "app_backend"`,
		},
		{
			name: "reserved prefix missing", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				vh := obj(t, hcm(t, doc), "route_config", "virtual_hosts", 0)
				vh["routes"] = []any{tree{"match": tree{"prefix": "/payroll/"}, "route": tree{"cluster": "app_backend"}}}
			},
			want: "the MFA step is unreachable",
		},
		{
			name: "reserved prefix as path_separated_prefix is accepted", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				route(t, doc, "/.stepup/")["match"] = tree{"path_separated_prefix": "/.stepup"}
			},
		},

		// Only /.stepup/ reaches stepup: its decision endpoints, /metrics and health stay
		// private.
		{
			name: "decision endpoint routed to stepup", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				prependRoute(t, doc, tree{"match": tree{"prefix": "/authz"}, "route": tree{"cluster": "stepup_http"}})
			},
			want: `sends prefix /authz to stepup's cluster "stepup_http": only the reserved prefix /.stepup/ may be routed to stepup`,
		},
		{
			name: "forward-auth routed to the HTTP authz cluster", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				prependRoute(t, doc, tree{"match": tree{"path": "/forward-auth"}, "route": tree{"cluster": "stepup_authz"}})
			},
			want: `sends path /forward-auth to stepup's cluster "stepup_authz"`,
		},
		{
			name: "metrics through a weighted cluster", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				prependRoute(t, doc, tree{"match": tree{"prefix": "/metrics"}, "route": tree{"weighted_clusters": tree{"clusters": []any{
					tree{"name": "app_backend", "weight": 1}, tree{"name": "stepup_http", "weight": 1},
				}}}})
			},
			want: `sends prefix /metrics to stepup's cluster "stepup_http"`,
		},
		{
			name: "second cluster name for stepup's HTTP port", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				alias := clone(t, cluster(t, doc, "stepup_http"))
				alias["name"] = "stepup_debug"
				obj(t, alias, "load_assignment")["cluster_name"] = "stepup_debug"
				sr := obj(t, doc, "static_resources")
				sr["clusters"] = append(list(t, sr, "clusters"), alias)
				prependRoute(t, doc, tree{"match": tree{"prefix": "/debug/"}, "route": tree{"cluster": "stepup_debug"}})
			},
			want: `sends prefix /debug/ to stepup's cluster "stepup_debug"`,
		},
		{
			name: "regex route that takes decision endpoints", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				prependRoute(t, doc, tree{"match": tree{"safe_regex": tree{"regex": `/(\.stepup|authz)/.*`}}, "route": tree{"cluster": "stepup_http"}})
			},
			want: `sends safe_regex /(\.stepup|authz)/.* to stepup's cluster "stepup_http"`,
		},
		{
			name: "regex route confined to the reserved prefix is accepted", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				prependRoute(t, doc, tree{"match": tree{"safe_regex": tree{"regex": `/\.stepup/(mfa|enroll)`}}, "route": tree{"cluster": "stepup_http"}})
			},
		},
		{
			name: "prefix_rewrite on the reserved prefix", file: "envoy-mtls.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/.stepup/"), "route")["prefix_rewrite"] = "/"
			},
			want: `rewrites the path of requests it sends to stepup's cluster "stepup_http"`,
		},

		// Readiness checks on stepup's HTTP port (docs/envoy.md#health-checks-and-draining).
		{
			name: "MFA step cluster without a readiness check", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { delete(cluster(t, doc, "stepup_http"), "health_checks") },
			want:   `cluster "stepup_http": no HTTP health check on /readyz`,
		},
		{
			name: "HTTP authz cluster checked on /healthz", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, cluster(t, doc, "stepup_authz"), "health_checks", 0, "http_health_check")["path"] = "/healthz"
			},
			want: `cluster "stepup_authz": no HTTP health check on /readyz`,
		},
		{
			name: "ext_authz disabled on the reserved prefix", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/.stepup/"), "typed_per_filter_config")[authzName] = tree{"@type": perRoute, "disabled": true}
			},
			want: `ext_authz "envoy.filters.http.ext_authz" is disabled on this route: requests reach cluster "stepup_http"`,
		},
		{
			name: "jwt_authn disabled on the reserved prefix", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/.stepup/"), "typed_per_filter_config")[jwtName] = tree{"@type": jwtRoute, "disabled": true}
			},
			want: "jwt_authn \"envoy.filters.http.jwt_authn\" is disabled on the reserved prefix",
		},
		{
			name: "ext_authz disabled for the whole virtual host", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				vh := obj(t, hcm(t, doc), "route_config", "virtual_hosts", 0)
				obj(t, vh, "typed_per_filter_config")[authzName] = tree{"@type": perRoute, "disabled": true}
				delete(route(t, doc, "/"), "typed_per_filter_config")
			},
			want: `is disabled on this route: requests reach cluster "app_backend"`,
		},
		{
			name: "ext_authz disabled through FilterConfig", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/"), "typed_per_filter_config")[authzName] = tree{
					"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": true,
				}
			},
			want: `is disabled on this route: requests reach cluster "app_backend"`,
		},

		// HTTP mode (docs/envoy.md#http-mode, docs/envoy.md#per-route-settings).
		{
			name: "context_extensions in HTTP mode", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, route(t, doc, "/"))["typed_per_filter_config"] = tree{
					authzName: tree{"@type": perRoute, "check_settings": tree{"context_extensions": tree{"client_id": "payroll"}}},
				}
			},
			want: "context_extensions are ignored in HTTP mode",
		},
		{
			name: "metadata namespaces in HTTP mode", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				filterConfig(t, doc, authzName)["metadata_context_namespaces"] = []any{jwtAuthnNamespace}
			},
			want: "metadata_context_namespaces are ignored in HTTP mode",
		},
		{
			name: "http_service cluster not defined", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "http_service", "server_uri")["cluster"] = "stepup"
			},
			want: `http_service refers to cluster "stepup"`,
		},
		{
			name: "path_prefix under the reserved prefix", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "http_service")["path_prefix"] = "/.stepup/authz"
			},
			want: `path_prefix "/.stepup/authz": stepup serves Envoy's HTTP mode at /authz/ only`,
		},
		{
			name: "path_override", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "http_service")["path_override"] = "/authz/"
			},
			want: `path_override "/authz/" replaces the original path`,
		},
		{
			name: "network header not passed upstream", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				removePattern(t, obj(t, filterConfig(t, doc, authzName), "http_service", "authorization_response", "allowed_upstream_headers"), "exact", "x-stepup-network")
			},
			want: "allowed_upstream_headers does not pass x-stepup-network",
		},
		{
			name: "identity header appended upstream", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "http_service", "authorization_response")["allowed_upstream_headers_to_append"] = tree{
					"patterns": []any{tree{"prefix": "X-Stepup-", "ignore_case": true}},
				}
			},
			want: "allowed_upstream_headers_to_append matches x-stepup-user",
		},
		{
			name: "filtered cookie not passed upstream", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				removePattern(t, obj(t, filterConfig(t, doc, authzName), "http_service", "authorization_response", "allowed_upstream_headers"), "exact", "cookie")
			},
			want: "allowed_upstream_headers does not pass cookie",
		},
		{
			name: "assertion not passed to the MFA step", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				removePattern(t, obj(t, filterConfig(t, doc, authzName), "http_service", "authorization_response", "allowed_upstream_headers"), "exact", "x-stepup-assertion")
			},
			want: "allowed_upstream_headers does not pass x-stepup-assertion",
		},
		{
			name: "client may name its own client id", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				ah := obj(t, filterConfig(t, doc, authzName), "allowed_headers")
				ah["patterns"] = append(list(t, ah, "patterns"), tree{"safe_regex": tree{"regex": "x-stepup-.*"}})
			},
			want: "allowed_headers pass the client's x-stepup-client-id to stepup",
		},
		{
			name: "client id allowed but disallowed again is accepted", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				ah := obj(t, filterConfig(t, doc, authzName), "allowed_headers")
				ah["patterns"] = append(list(t, ah, "patterns"), tree{"prefix": "X-STEPUP-", "ignore_case": true})
				filterConfig(t, doc, authzName)["disallowed_headers"] = tree{"patterns": []any{tree{"exact": "x-stepup-client-id"}}}
			},
		},
		{
			name: "forged claims hidden from stepup", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				removePattern(t, obj(t, filterConfig(t, doc, authzName), "allowed_headers"), "prefix", "x-stepup-claim-")
			},
			want: "allowed_headers do not pass x-stepup-claim-*",
		},
		{
			name: "headers with underscores allowed", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) { delete(hcm(t, doc), "common_http_protocol_options") },
			want:   "headers_with_underscores_action",
		},
		{
			name: "headers with underscores allowed explicitly", file: "envoy-mtls.yaml",
			mutate: func(t *testing.T, doc tree) {
				hcm(t, doc)["common_http_protocol_options"] = tree{"headers_with_underscores_action": "ALLOW"}
			},
			want: "headers_with_underscores_action",
		},
		{
			name: "HTTP mode without normalize_path", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) { delete(hcm(t, doc), "normalize_path") },
			want:   "HTTP mode without normalize_path and merge_slashes",
		},
		{
			name: "access log reads stepup's decision in HTTP mode", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				jsonFormat(t, doc)["decision"] = "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:decision)%"
			},
			want: "reads stepup's envoy.filters.http.ext_authz:decision, but HTTP mode has no CheckResponse.dynamic_metadata",
		},
		{
			name: "http_service timeout below 200ms", file: "envoy-http.yaml",
			mutate: func(t *testing.T, doc tree) {
				obj(t, filterConfig(t, doc, authzName), "http_service", "server_uri")["timeout"] = "0.05s"
			},
			want: "timeout 50ms is below 200ms",
		},

		// Access logs.
		{
			name: "REQ_WITHOUT_QUERY without its formatter", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, hcm(t, doc), "access_log", 0, "typed_config", "log_format"), "formatters")
			},
			want: "uses REQ_WITHOUT_QUERY(...)% without declaring the formatter extension envoy.extensions.formatter.req_without_query.v3.ReqWithoutQuery",
		},

		{
			name: "access log reads a key stepup does not write", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				jsonFormat(t, doc)["mfa"] = "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:mfa_decision)%"
			},
			want: "reads envoy.filters.http.ext_authz:mfa_decision, which neither stepup (decision, reason, rule, decision_id, request_id, dry_run, would) nor Envoy (ext_authz_duration) writes",
		},
		{
			name: "access log with every stepup key is accepted", file: "envoy-mtls.yaml",
			mutate: func(t *testing.T, doc tree) {
				jf := jsonFormat(t, doc)
				for _, k := range stepupMetadataKeys {
					jf["x_"+k] = "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:" + k + ")%"
				}
			},
		},

		// TLS (docs/envoy.md#tls-and-alpn).
		{
			name: "mTLS without ALPN h2", file: "envoy-mtls.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, cluster(t, doc, "stepup_authz"), "transport_socket", "typed_config", "common_tls_context"), "alpn_protocols")
			},
			want: "without alpn_protocols [h2]",
		},
		{
			name: "mTLS without SAN match", file: "envoy-mtls.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, cluster(t, doc, "stepup_authz"), "transport_socket", "typed_config", "common_tls_context", "validation_context"), "match_typed_subject_alt_names")
			},
			want: "without match_typed_subject_alt_names",
		},
		{
			name: "upstream TLS that verifies nothing", file: "envoy.yaml",
			mutate: func(t *testing.T, doc tree) {
				delete(obj(t, cluster(t, doc, "idp_jwks"), "transport_socket", "typed_config"), "common_tls_context")
			},
			want: "without validation_context.trusted_ca",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := loadTree(t, tt.file)
			tt.mutate(t, doc)
			data, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = validateConfig(data)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("mutated %s was rejected:\n%v", tt.file, err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("mutated %s was accepted; want an error containing %q", tt.file, tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error does not contain %q:\n%v", tt.want, err)
			}
		})
	}
}

// tree is a configuration file decoded into generic JSON values, for mutation.
type tree = map[string]any

func loadTree(t *testing.T, file string) tree {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc tree
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return doc
}

// dig follows path (map keys and list indexes) from node.
func dig(t *testing.T, node any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := node.(tree)
			if !ok {
				t.Fatalf("at %q: not an object", k)
			}
			if node, ok = m[k]; !ok {
				t.Fatalf("no key %q", k)
			}
		case int:
			l, ok := node.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at [%d]: not a list of that length", k)
			}
			node = l[k]
		}
	}
	return node
}

func obj(t *testing.T, node any, path ...any) tree {
	t.Helper()
	m, ok := dig(t, node, path...).(tree)
	if !ok {
		t.Fatalf("%v: not an object", path)
	}
	return m
}

func list(t *testing.T, node any, path ...any) []any {
	t.Helper()
	l, ok := dig(t, node, path...).([]any)
	if !ok {
		t.Fatalf("%v: not a list", path)
	}
	return l
}

func rename(t *testing.T, m tree, from, to string) {
	t.Helper()
	v, ok := m[from]
	if !ok {
		t.Fatalf("no key %q to rename", from)
	}
	delete(m, from)
	m[to] = v
}

// hcm returns the typed_config of the first listener's connection manager.
func hcm(t *testing.T, doc tree) tree {
	t.Helper()
	return obj(t, doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config")
}

func filterNode(t *testing.T, doc tree, name string) tree {
	t.Helper()
	for _, f := range list(t, hcm(t, doc), "http_filters") {
		if m := obj(t, f); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no HTTP filter %q", name)
	return nil
}

func filterConfig(t *testing.T, doc tree, name string) tree {
	t.Helper()
	return obj(t, filterNode(t, doc, name), "typed_config")
}

func cluster(t *testing.T, doc tree, name string) tree {
	t.Helper()
	for _, c := range list(t, doc, "static_resources", "clusters") {
		if m := obj(t, c); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

// clone deep-copies a decoded subtree, so that a copy can be changed on its own.
func clone(t *testing.T, m tree) tree {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out tree
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// prependRoute puts r first in the first virtual host's routes, where it wins.
func prependRoute(t *testing.T, doc tree, r tree) {
	t.Helper()
	vh := obj(t, hcm(t, doc), "route_config", "virtual_hosts", 0)
	vh["routes"] = append([]any{r}, list(t, vh, "routes")...)
}

// removePattern deletes the pattern {kind: value} from a ListStringMatcher.
func removePattern(t *testing.T, lm tree, kind, value string) {
	t.Helper()
	ps := list(t, lm, "patterns")
	i := slices.IndexFunc(ps, func(p any) bool { return obj(t, p)[kind] == value })
	if i < 0 {
		t.Fatalf("no pattern {%s: %s}", kind, value)
	}
	lm["patterns"] = slices.Delete(ps, i, i+1)
}

// jsonFormat returns the json_format of the first access log of the first listener.
func jsonFormat(t *testing.T, doc tree) tree {
	t.Helper()
	return obj(t, hcm(t, doc), "access_log", 0, "typed_config", "log_format", "json_format")
}

// route returns the route of the first virtual host whose match is the given prefix.
func route(t *testing.T, doc tree, prefix string) tree {
	t.Helper()
	for _, r := range list(t, hcm(t, doc), "route_config", "virtual_hosts", 0, "routes") {
		if m := obj(t, r); obj(t, m, "match")["prefix"] == prefix {
			return m
		}
	}
	t.Fatalf("no route with prefix %q", prefix)
	return nil
}

// FuzzValidateConfig feeds arbitrary documents to the checker: it must return errors,
// never panic, whatever the file says (a nil Any, an empty route table, a bad regex).
func FuzzValidateConfig(f *testing.F) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`static_resources: {listeners: [{name: l, filter_chains: [{filters: [{name: h, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, route_config: {virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {safe_regex: {regex: "("}}, route: {cluster: x}}]}]}}}]}]}]}`))
	f.Add([]byte(`static_resources: {clusters: [{name: c, transport_socket: {name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = validateConfig(data)
	})
}
