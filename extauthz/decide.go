package extauthz

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Kind is what a decision does with the request.
type Kind uint8

// The decisions.
const (
	// Deny is the zero value: a decision that was never filled in denies.
	Deny Kind = iota
	Allow
	// StepUp sends the user to the MFA step (302 for browsers, 401 for
	// API clients).
	StepUp
	// Login sends a request without identity to the login page (302) or
	// answers 401.
	Login
	// Redirect sends the browser to a rule's context.redirect URL.
	Redirect
)

func (k Kind) String() string {
	switch k {
	case Allow:
		return "allow"
	case StepUp:
		return "mfa_required"
	case Login:
		return "login_required"
	case Redirect:
		return "redirect"
	default:
		return "deny"
	}
}

// Decision is the outcome of a check, independent of the protocol that
// carries it. Reasons are short fixed strings fit for a metric label.
type Decision struct {
	Kind Kind
	// Status is the HTTP status the client gets for non-allow decisions.
	Status int
	// Reason is machine-readable: corporate_network, mfa_session,
	// remembered, no_mfa_required, mfa_required, no_identity,
	// invalid_identity, rule_error, bad_request, internal, store_unavailable,
	// stepup_prefix, redirect.
	Reason string
	// Message is a short human text for the denial body and the log.
	Message string
	// Location is the target of a 302.
	Location string
	// Browser is true when the client navigates (302s) rather than calls
	// an API (401s).
	Browser bool
	// Rule is the rule that decided, when one did.
	Rule string
	// Headers are set on the request to the upstream (allow), with
	// overwrite semantics.
	Headers []HeaderKV
	// RemoveHeaders are request headers stripped before the upstream.
	RemoveHeaders []string
	// SetCookies are Set-Cookie values for the client.
	SetCookies []string
	// User is the identified user ("" when none); Method is what satisfied
	// MFA ("" when nothing did).
	User    string
	Method  string
	Network string
	// ID correlates the decision with Envoy's access log (x-request-id).
	ID string
}

// HeaderKV is one header.
type HeaderKV struct{ Key, Value string }

// Requirement is what the policy asks of a request.
type Requirement struct {
	// Provider is "" or "none" for no MFA; otherwise any,
	// google-authenticator, duo, ...
	Provider string
	// AllowRemember: a remember-browser cookie may satisfy the requirement.
	AllowRemember bool
	// Options carries provider options (Duo keys etc.) for the MFA step.
	Options map[string]any
}

// NeedsMFA reports whether the requirement asks for a second factor.
func (q Requirement) NeedsMFA() bool { return q.Provider != "" && q.Provider != "none" }

// PolicyInput is what a policy sees.
type PolicyInput struct {
	Req      *Request
	Identity *Identity
	// Networks are the names of configured networks containing the
	// client IP, sorted.
	Networks []string
	// MFA is the MFA session proven by the request's cookie, if any.
	MFA *MFAProof
	// Protocol is "" for a normal request and "redirect-callback" when
	// resuming from a rule's redirect.
	Protocol string
	// Body is context.request.body: the form the custom MFA service posted
	// back when resuming from a redirect (see [Server.Resume]), else nil.
	Body map[string]any
}

// MFAProof says the browser passed MFA.
type MFAProof struct {
	Method    string
	At        time.Time
	SessionID string
}

// PolicyResult is a policy's answer.
type PolicyResult struct {
	// Err, when set, denies (403 with Err.Message for rule errors, 503 for
	// faults).
	Err *PolicyError
	// MFA is the requirement (zero: none).
	MFA Requirement
	// RedirectURL is a rule's context.redirect.
	RedirectURL string
	// Claims are custom claims the upstream receives as headers.
	Claims map[string]string
}

// PolicyError is a policy's denial.
type PolicyError struct {
	// Status is 403 for rule decisions, 5xx for faults.
	Status  int
	Reason  string
	Message string
	Rule    string
}

// Policy decides what a request needs. Implementations must be safe for
// concurrent use and must honour ctx's deadline.
type Policy interface {
	Evaluate(ctx context.Context, in *PolicyInput) PolicyResult
}

// NetworkPolicy is the built-in stand-in policy: MFA outside the exempt
// networks, nothing inside them.
type NetworkPolicy struct {
	Exempt        []string
	Provider      string
	AllowRemember bool
}

// Evaluate implements Policy.
func (p *NetworkPolicy) Evaluate(_ context.Context, in *PolicyInput) PolicyResult {
	for _, n := range in.Networks {
		for _, e := range p.Exempt {
			if n == e {
				return PolicyResult{}
			}
		}
	}
	return PolicyResult{MFA: Requirement{Provider: p.Provider, AllowRemember: p.AllowRemember}}
}

// Sessions is what the core needs from the session layer. ok=false with a
// nil error means the cookie counts for nothing (forged, expired, other
// user...); a non-nil error means the store could not answer, and the
// check fails closed.
type Sessions interface {
	MFACookieName() string
	RememberCookieName() string
	CheckMFA(ctx context.Context, value, user, sid string) (MFAProof, bool, error)
	CheckRemember(ctx context.Context, value, user string) (bool, error)
	// NewState makes a single-use transaction for the MFA step or a
	// redirect and returns its token (encrypted and signed; the store is
	// written only when the transaction is used).
	NewState(ctx context.Context, st StepUpState) (string, error)
	// Assertion signs a short-lived statement of who the user is, for the
	// MFA step, with the client's address and the networks containing it
	// (the step's enrolment policy uses them).
	Assertion(id *Identity, clientIP netip.Addr, networks []string) (string, error)
}

// StepUpState is the transaction a step-up starts.
type StepUpState struct {
	ReturnURL   string
	User        string
	ClientID    string
	Requirement Requirement
	// RedirectURL is set for a rule redirect (the custom MFA service).
	RedirectURL string
}

// errStore marks a session-store failure.
var errStore = errors.New("session store unavailable")

// decide runs the whole decision for a normalized request.
func (s *Server) decide(ctx context.Context, r *Request) Decision {
	d := Decision{Browser: r.WantsHTML()}
	id, err := s.ident.identify(ctx, r)
	if err != nil {
		return s.loginRequired(r, d, err)
	}
	d.User = id.User

	if strings.HasPrefix(r.Path, s.prefix) {
		// The MFA step itself: never stepped up (that would loop); it gets
		// a signed assertion of who the user is.
		d.Kind, d.Reason = Allow, "stepup_prefix"
		s.identityHeaders(&d, r, id, nil)
		if s.sessions != nil {
			a, err := s.sessions.Assertion(id, r.ClientIP, s.nets.Load().Lookup(r.ClientIP))
			if err != nil {
				return s.fault(d, "internal", "cannot sign identity assertion", err)
			}
			d.setHeader(AssertionHeader, a)
		}
		return d
	}

	set := s.nets.Load()
	in := PolicyInput{Req: r, Identity: id, Networks: set.Lookup(r.ClientIP)}
	if s.sessions != nil {
		if v, ok := r.Cookie(s.sessions.MFACookieName()); ok {
			proof, valid, err := s.sessions.CheckMFA(ctx, v, id.User, id.SID)
			if err != nil {
				return s.storeDown(d, err)
			}
			if valid {
				in.MFA = &proof
			}
		}
	}

	res := s.policy.Evaluate(ctx, &in)
	if res.Err != nil {
		d.Kind, d.Status, d.Reason, d.Message, d.Rule = Deny, res.Err.Status, res.Err.Reason, res.Err.Message, res.Err.Rule
		if d.Status == 0 {
			d.Status = 403
		}
		return d
	}
	if res.RedirectURL != "" && in.Protocol != "redirect-callback" {
		if in.MFA == nil || in.MFA.Method != RedirectMethod {
			return s.redirect(ctx, r, id, d, res)
		}
		// The browser came back from the custom MFA service and the
		// rules accepted it: its MFA session satisfies the redirect
		// (rules run on every request, not once per login as in Auth0).
		d.Kind, d.Reason, d.Method = Allow, "mfa_session", in.MFA.Method
		s.identityHeaders(&d, r, id, &in)
		s.claimHeaders(&d, res.Claims)
		return d
	}
	if !res.MFA.NeedsMFA() {
		d.Kind = Allow
		d.Reason = "no_mfa_required"
		if len(in.Networks) > 0 {
			d.Reason = "network"
		}
		s.identityHeaders(&d, r, id, &in)
		s.claimHeaders(&d, res.Claims)
		return d
	}
	if in.MFA != nil {
		d.Kind, d.Reason, d.Method = Allow, "mfa_session", in.MFA.Method
		s.identityHeaders(&d, r, id, &in)
		s.claimHeaders(&d, res.Claims)
		return d
	}
	if res.MFA.AllowRemember && s.sessions != nil {
		if v, ok := r.Cookie(s.sessions.RememberCookieName()); ok {
			valid, err := s.sessions.CheckRemember(ctx, v, id.User)
			if err != nil {
				return s.storeDown(d, err)
			}
			if valid {
				d.Kind, d.Reason, d.Method = Allow, "remembered", "remembered"
				s.identityHeaders(&d, r, id, &in)
				s.claimHeaders(&d, res.Claims)
				return d
			}
		}
	}
	return s.stepUp(ctx, r, id, d, res.MFA)
}

// AssertionHeader carries the signed identity assertion to the MFA step.
const AssertionHeader = "x-stepup-assertion"

func (s *Server) stepUp(ctx context.Context, r *Request, id *Identity, d Decision, req Requirement) Decision {
	d.Kind, d.Reason = StepUp, "mfa_required"
	d.Message = "multi-factor authentication required"
	if s.sessions != nil {
		tok, err := s.sessions.NewState(ctx, StepUpState{ReturnURL: r.URL(), User: id.User, ClientID: r.ClientID, Requirement: req})
		if err != nil {
			return s.storeDown(d, err)
		}
		// One string for prefixURL(r, "mfa") + "?state=" + the token.
		d.Location = s.prefixURLQuery(r, "mfa", "?state=", url.QueryEscape(tok))
	} else {
		d.Location = s.prefixURL(r, "mfa")
	}
	if d.Browser {
		d.Status = 302
	} else {
		d.Status = 401
	}
	return d
}

func (s *Server) redirect(ctx context.Context, r *Request, id *Identity, d Decision, res PolicyResult) Decision {
	u, err := url.Parse(res.RedirectURL)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return s.fault(d, "rule_error", "rule set an invalid context.redirect URL", err)
	}
	d.Kind, d.Reason, d.Status = Redirect, "redirect", 302
	if s.sessions != nil {
		tok, err := s.sessions.NewState(ctx, StepUpState{ReturnURL: r.URL(), User: id.User, ClientID: r.ClientID, Requirement: res.MFA, RedirectURL: res.RedirectURL})
		if err != nil {
			return s.storeDown(d, err)
		}
		q := u.Query()
		q.Set("state", tok)
		u.RawQuery = q.Encode()
	}
	d.Location = u.String()
	if !d.Browser {
		d.Status = 401
	}
	return d
}

func (s *Server) loginRequired(r *Request, d Decision, err error) Decision {
	d.Kind, d.Status = Login, 401
	d.Reason, d.Message = "no_identity", "authentication required"
	if errors.Is(err, errInvalidToken) {
		d.Reason, d.Message = "invalid_identity", "invalid identity token"
	}
	if d.Browser && s.loginURL != "" {
		d.Status = 302
		d.Location = strings.ReplaceAll(s.loginURL, "{url}", url.QueryEscape(r.URL()))
	}
	return d
}

func (s *Server) storeDown(d Decision, err error) Decision {
	return s.fault(d, "store_unavailable", "session store unavailable", err)
}

// fault denies with 503 (or 403 for rule errors) and keeps the cause for
// the log only.
func (s *Server) fault(d Decision, reason, msg string, err error) Decision {
	d.Kind, d.Status, d.Reason, d.Message = Deny, 503, reason, msg
	if reason == "rule_error" {
		d.Status = 403
	}
	d.Location = ""
	if err != nil {
		s.log.Warn("check failed closed", "reason", reason, "error", err.Error())
	}
	return d
}

func (s *Server) prefixURL(r *Request, page string) string {
	return s.prefixURLQuery(r, page, "", "")
}

// prefixURLQuery is prefixURL(r, page) + sep + query, built at once.
func (s *Server) prefixURLQuery(r *Request, page, sep, query string) string {
	var b strings.Builder
	b.Grow(len(r.Scheme) + 3 + len(r.HostPort) + len(s.prefix) + len(page) + len(sep) + len(query))
	b.WriteString(r.Scheme)
	b.WriteString("://")
	b.WriteString(r.HostPort)
	b.WriteString(s.prefix)
	b.WriteString(page)
	b.WriteString(sep)
	b.WriteString(query)
	return b.String()
}

// identityHeaders fills the upstream identity headers of an allow.
func (s *Server) identityHeaders(d *Decision, r *Request, id *Identity, in *PolicyInput) {
	h := &s.headers
	method := d.Method
	if method == "" {
		method = "none"
	}
	network := ""
	if in != nil && len(in.Networks) > 0 {
		network = strings.Join(in.Networks, ",")
	}
	d.Network = network
	if d.Headers == nil {
		// Room for the four below and a filtered cookie header.
		d.Headers = make([]HeaderKV, 0, 5)
	}
	d.Headers = append(d.Headers,
		HeaderKV{h.user, id.User},
		HeaderKV{h.email, id.Email},
		HeaderKV{h.mfa, method},
		HeaderKV{h.network, network},
	)
	// Client-supplied copies of stepup's headers that stepup does not set
	// this time are removed; the ones it sets are overwritten.
	for k := range r.Headers {
		if strings.HasPrefix(k, h.claimPrefix) || k == AssertionHeader {
			d.RemoveHeaders = append(d.RemoveHeaders, k)
		}
	}
	d.RemoveHeaders = append(d.RemoveHeaders, h.remove...)
	d.RemoveHeaders = append(d.RemoveHeaders, identityHeaderSpellings(r.Headers, h.spellingNames, h.spellingPrefixes)...)
	// stepup's cookies never reach the application. Under the reserved
	// prefix the "upstream" is stepup's own MFA step, which needs the MFA
	// session cookie (the factors page asks for a recent verification):
	// stripping it there would send the browser round the step forever.
	if s.sessions != nil && !strings.HasPrefix(r.Path, s.prefix) {
		if c := r.Headers["cookie"]; c != "" {
			if filtered, changed := stripCookies(c, s.sessions.MFACookieName(), s.sessions.RememberCookieName()); changed {
				if filtered == "" {
					d.RemoveHeaders = append(d.RemoveHeaders, "cookie")
				} else {
					d.Headers = append(d.Headers, HeaderKV{"cookie", filtered})
				}
			}
		}
	}
}

func (s *Server) claimHeaders(d *Decision, claims map[string]string) {
	for k, v := range claims {
		d.setHeader(s.headers.claimPrefix+k, v)
	}
}

// setHeader sets an upstream header and makes sure it is not also in the
// removal list: Envoy applies removals last, so a header both set and
// removed would vanish (ENVOY.md §4.1).
func (d *Decision) setHeader(name, value string) {
	d.Headers = append(d.Headers, HeaderKV{name, value})
	for i, rm := range d.RemoveHeaders {
		if rm == name {
			d.RemoveHeaders = append(d.RemoveHeaders[:i], d.RemoveHeaders[i+1:]...)
			break
		}
	}
}

// stripCookies removes stepup's own cookies from a Cookie header so that
// the upstream never sees them. Pairs are split on ';' and ',' (as
// Request.Cookie reads them) and the kept ones joined with "; ".
func stripCookies(h string, names ...string) (string, bool) {
	if !containsAny(h, names) {
		return h, false
	}
	var b strings.Builder
	b.Grow(len(h))
	changed := false
	for rest := h; rest != ""; {
		i := strings.IndexAny(rest, ";,")
		part := rest
		if i >= 0 {
			part, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		p := strings.TrimSpace(part)
		if p == "" {
			continue
		}
		if isNamedCookie(p, names) {
			changed = true
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	}
	return b.String(), changed
}

// isNamedCookie reports whether the pair p ("name=value") has one of names.
func isNamedCookie(p string, names []string) bool {
	for _, n := range names {
		if n != "" && len(p) > len(n) && p[len(n)] == '=' && p[:len(n)] == n {
			return true
		}
	}
	return false
}

func containsAny(h string, names []string) bool {
	for _, n := range names {
		if n != "" && strings.Contains(h, n) {
			return true
		}
	}
	return false
}
