// Package extauthz is stepup's Envoy contract: it turns an ext_authz
// CheckRequest (gRPC), an Envoy HTTP-mode check or a forward-auth request
// (Caddy, nginx) into a normalized [Request], decides allow, deny or
// step-up, and maps the decision back onto the protocol.
//
// # The contract with Envoy (docs/envoy.md)
//
//   - A decision is never a gRPC error: deny and step-up are successful
//     RPCs with a non-zero status and a denied_response (docs/envoy.md#errors-and-failure_mode_allow).
//   - Every response sets its status explicitly; an internal fault denies
//     with 503, so the outcome never depends on failure_mode_allow (docs/envoy.md#errors-and-failure_mode_allow).
//   - The client IP is derived from x-envoy-external-address or the
//     x-forwarded-for chain walked through trusted proxies, never from the
//     left-most entry (docs/envoy.md#client-address).
//   - Upstream identity headers overwrite client copies
//     (OVERWRITE_IF_EXISTS_OR_ADD) and stepup's own cookies never reach the
//     application (docs/envoy.md#header-encoding-across-envoy-versions).
//
// The decision logic ([Server.decide]) is plain Go with no protos in it.
package extauthz

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"

	"github.com/stepup-dev/stepup/cidr"
	"github.com/stepup-dev/stepup/session"
)

// Options configure a Server. Zero values get the defaults documented on
// each field.
type Options struct {
	// Networks is the current network set (required).
	Networks *cidr.Matcher
	// Policy decides what requests need (required).
	Policy Policy
	// Sessions checks cookies and issues step-up state. Nil: no sessions
	// (every MFA requirement steps up, with no state).
	Sessions Sessions
	Identity IdentityOptions
	// JWTNamespace and JWTKey locate jwt_authn's payload in
	// metadata_context (defaults envoy.filters.http.jwt_authn, jwt_payload).
	JWTNamespace string
	JWTKey       string
	// TrustEnvoyExternalAddress: believe x-envoy-external-address in gRPC
	// and Envoy HTTP mode. Only for Envoy at the edge: it cannot be
	// combined with TrustedHops.
	TrustEnvoyExternalAddress bool
	TrustedProxies            []netip.Prefix
	TrustedHops               int
	// ClientHosts maps hosts to client ids; DefaultClient is the fallback.
	ClientHosts   map[string]string
	DefaultClient string
	// Prefix is the MFA step's reserved path prefix (default /.stepup/).
	Prefix string
	// LoginURL receives browsers without identity ("{url}" = return URL).
	LoginURL string
	// Header names for the upstream (defaults x-stepup-user, -email, -mfa,
	// -network; claim prefix x-stepup-claim-).
	UserHeader, EmailHeader, MFAHeader, NetworkHeader, ClaimPrefix string
	RemoveHeaders                                                  []string
	Limits                                                         Limits
	// MaxInFlight bounds the Checks being decided at once, over gRPC and
	// HTTP together; past it a Check is denied at once with 503 and reason
	// "overloaded". 0 means DefaultMaxInFlight.
	MaxInFlight int
	// LogDecisions: "all", "non_allow" (default) or "none".
	LogDecisions string
	// Audit, when set, receives every decision, whatever LogDecisions
	// says (the audit trail).
	Audit   Auditor
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Realms groups hosts that share sessions (nil: each host is its own
	// realm). The MFA step must use the same groups.
	Realms *session.Realms
	// RedirectServices are the custom MFA services rules may redirect to;
	// a redirect elsewhere proves no factor.
	RedirectServices []RedirectService
	// DuoFallback: the MFA step lets the authenticator app stand in for
	// Duo while Duo is down, so such a step meets a Duo requirement.
	DuoFallback bool
	// ClientMaxAge is the longest time since MFA that each client (by
	// id) accepts; missing or zero: the session's lifetime.
	ClientMaxAge map[string]time.Duration
	// DryRun decides every request as usual but lets it through, noting
	// what would have happened (policy.mode: dry-run); a route's
	// context extension stepup_mode overrides it either way.
	DryRun bool
}

// Server answers checks. It is safe for concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	nets     *cidr.Matcher
	policy   Policy
	sessions Sessions
	ident    *identifier
	clientIP clientIPResolver
	clients  struct {
		hosts map[string]string
		def   string
	}
	jwtNamespace, jwtKey string
	prefix               string
	loginURL             string
	headers              struct {
		user, email, mfa, network, claimPrefix string
		remove                                 []string
		// spellings: the canonical names and prefixes whose other
		// spellings (case, "_" for "-") are removed on allow.
		spellingNames, spellingPrefixes []string
	}
	realms           *session.Realms
	redirectServices []redirectService
	duoFallback      bool
	clientMaxAge     map[string]time.Duration
	dryRunAll        bool
	ids              *decisionIDs
	limits           Limits
	admit            admission
	logAll           bool
	logNone          bool
	log              *slog.Logger
	auditor          Auditor
	metrics          *Metrics
	now              func() time.Time
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// New builds a Server.
func New(o Options) (*Server, error) {
	if o.Networks == nil || o.Networks.Load() == nil {
		return nil, fmt.Errorf("extauthz: networks are required")
	}
	if o.Policy == nil {
		return nil, fmt.Errorf("extauthz: a policy is required")
	}
	if o.TrustEnvoyExternalAddress && o.TrustedHops > 0 {
		return nil, fmt.Errorf("extauthz: x-envoy-external-address cannot be trusted with trusted hops: Envoy behind another proxy is not the edge")
	}
	s := &Server{nets: o.Networks, policy: o.Policy, sessions: o.Sessions}
	s.log = o.Logger
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	s.metrics, s.auditor = o.Metrics, o.Audit
	s.now = o.Now
	if s.now == nil {
		s.now = time.Now
	}
	if o.Identity.Now == nil {
		o.Identity.Now = s.now
	}
	s.ident = newIdentifier(o.Identity)
	s.realms, s.duoFallback, s.clientMaxAge = o.Realms, o.DuoFallback, o.ClientMaxAge
	s.dryRunAll, s.ids = o.DryRun, newDecisionIDs()
	var err error
	if s.redirectServices, err = newRedirectServices(o.RedirectServices); err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	s.clientIP = clientIPResolver{trustEnvoyHeader: o.TrustEnvoyExternalAddress, trusted: o.TrustedProxies, hops: o.TrustedHops}
	s.clients.hosts = make(map[string]string, len(o.ClientHosts))
	for h, c := range o.ClientHosts {
		s.clients.hosts[session.CanonicalHost(h)] = c
	}
	s.clients.def = def(o.DefaultClient, "default")
	s.jwtNamespace = def(o.JWTNamespace, "envoy.filters.http.jwt_authn")
	s.jwtKey = def(o.JWTKey, "jwt_payload")
	s.prefix = def(o.Prefix, "/.stepup/")
	s.loginURL = o.LoginURL
	s.headers.user = def(o.UserHeader, "x-stepup-user")
	s.headers.email = def(o.EmailHeader, "x-stepup-email")
	s.headers.mfa = def(o.MFAHeader, "x-stepup-mfa")
	s.headers.network = def(o.NetworkHeader, "x-stepup-network")
	s.headers.claimPrefix = def(o.ClaimPrefix, "x-stepup-claim-")
	// A client's own dry-run header never reaches the application; a
	// dry-run allow sets it (setHeader takes it off this list).
	s.headers.remove = append(append([]string(nil), o.RemoveHeaders...), DryRunHeader)
	for _, n := range append([]string{s.headers.user, s.headers.email, s.headers.mfa, s.headers.network, AssertionHeader, DryRunHeader}, o.RemoveHeaders...) {
		s.headers.spellingNames = append(s.headers.spellingNames, canonicalHeaderSpelling(n))
	}
	s.headers.spellingPrefixes = []string{canonicalHeaderSpelling(s.headers.claimPrefix)}
	s.limits = o.Limits.orDefault()
	s.admit.max = int64(o.MaxInFlight)
	if s.admit.max <= 0 {
		s.admit.max = int64(DefaultMaxInFlight())
	}
	s.admit.metrics = s.metrics
	switch o.LogDecisions {
	case "all":
		s.logAll = true
	case "none":
		s.logNone = true
	}
	return s, nil
}

func def(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// Register adds the Authorization service to a gRPC server.
func (s *Server) Register(g grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(g, s) }

// NewKeyfunc adapts a golang-jwt Keyfunc for IdentityOptions (re-exported
// so callers need not import jwt for the type).
type Keyfunc = jwt.Keyfunc

// endCheck, deferred by every check, fails a check that panicked closed
// (a 503 deny, which answer sends) and then observes the decision.
func (s *Server) endCheck(ctx context.Context, mode Mode, r *Request, d *Decision, start time.Time, answer func()) {
	if p := recover(); p != nil {
		s.log.Error("check panicked: failing closed", "panic", fmt.Sprint(p), "request_id", r.ID)
		*d = Decision{Kind: Deny, Status: 503, Reason: ReasonInternal, Message: "internal error"}
		answer()
	}
	s.observe(ctx, mode, r, d, start)
}

// Check implements envoy.service.auth.v3.Authorization/Check. It always
// returns a response with an explicit status; it returns a gRPC error only
// when the call's own context is already over (Envoy has given up).
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	start := s.now()
	var r Request
	var d Decision
	defer s.endCheck(ctx, ModeGRPC, &r, &d, start, func() { resp, err = toCheckResponse(&d), nil })
	if err := ctx.Err(); err != nil {
		// The deadline passed before we started: nobody is waiting, and
		// the status tells grpc-go's caller what happened.
		d = Decision{Kind: Deny, Status: 504, Reason: ReasonDeadline, Message: "deadline exceeded"}
		return toCheckResponse(&d), nil
	}
	if !s.admit.enter(ModeGRPC) {
		d = overloadedDecision()
		return toCheckResponse(&d), nil
	}
	defer s.admit.leave()
	if why := malformed(req); why != "" {
		_ = s.fromCheckRequest(req, &r) // what could be decoded, for the log line
		d = malformedDecision(why)
	} else if e := s.fromCheckRequest(req, &r); e != nil {
		d = badRequestDecision(e)
	} else {
		d = s.decideMode(ctx, &r)
	}
	d.ID, d.DecisionID = r.ID, s.ids.next()
	return toCheckResponse(&d), nil
}

func badRequestDecision(err error) Decision {
	return Decision{Kind: Deny, Status: 400, Reason: ReasonBadRequest, Message: err.Error()}
}

// observe records metrics, the audit record and the decision log line.
func (s *Server) observe(ctx context.Context, mode Mode, r *Request, d *Decision, start time.Time) {
	elapsed := s.now().Sub(start)
	if s.metrics != nil {
		s.metrics.observe(mode, d, elapsed)
	}
	s.audit(mode, r, d, elapsed)
	// Overloaded denials are counted, not logged one by one: a line each
	// would add to the load that caused them.
	if s.logNone || (d.Kind == Allow && !s.logAll) || (d.Reason == ReasonOverloaded && !s.logAll) {
		return
	}
	level := slog.LevelInfo
	if d.Reason == ReasonInternal || d.Reason == ReasonStoreUnavailable {
		level = slog.LevelError
	}
	attrs := make([]slog.Attr, 0, 20)
	attrs = append(attrs,
		slog.String("decision_id", d.DecisionID),
		slog.String("request_id", r.ID),
		slog.String("mode", string(mode)),
		slog.String("host", r.Host),
		slog.String("method", r.Method),
		// The path only: a query may carry codes, tokens or states.
		slog.String("path", r.Path),
		slog.String("user", d.User),
		slog.String("client_id", r.ClientID),
		slog.String("network", d.Network),
		slog.String("decision", d.Kind.String()),
		slog.String("reason", string(d.Reason)),
		slog.Int("status", d.Status),
		slog.String("factor", d.Method),
		slog.Float64("latency_ms", float64(elapsed.Microseconds())/1000),
		slog.String("stream_id", r.StreamID),
	)
	if r.ClientIP.IsValid() {
		attrs = append(attrs, slog.String("client_ip", r.ClientIP.String()))
	}
	if d.Rule != "" {
		attrs = append(attrs, slog.String("rule", d.Rule))
	}
	if d.DryRun {
		attrs = append(attrs, slog.Bool("dry_run", true), slog.String("would", d.Would.String()))
	}
	if d.Kind == Deny && d.Message != "" {
		attrs = append(attrs, slog.String("message", d.Message))
	}
	s.log.LogAttrs(context.WithoutCancel(ctx), level, "check", attrs...)
}
