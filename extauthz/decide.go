package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stepup-dev/stepup/rules"
	"github.com/stepup-dev/stepup/session"
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
// carries it.
type Decision struct {
	Kind Kind
	// Status is the HTTP status the client gets for non-allow decisions.
	Status int
	// Reason says why, from the fixed list [Reasons].
	Reason Reason
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
	// ID is the request's x-request-id; DecisionID names this decision,
	// unique per process run, in the decision log and Envoy's dynamic
	// metadata (so that access logs can join on it).
	ID, DecisionID string
	// DryRun is set when the decision was turned into an allow because
	// the route runs in dry-run mode; Would is what would have been done.
	DryRun bool
	Would  Kind
}

// HeaderKV is one header.
type HeaderKV struct{ Key, Value string }

// errStore marks a session-store failure.
var errStore = errors.New("session store unavailable")

// AssertionHeader carries the signed identity assertion to the MFA step.
const AssertionHeader = session.AssertionHeader

// decide runs the whole decision for a normalized request: identity, the
// MFA step's own prefix, the policy, then the policy's redirect and its
// MFA requirement, in that order (docs/security-model.md).
func (s *Server) decide(ctx context.Context, r *Request) Decision {
	d := Decision{Browser: r.WantsHTML()}
	id, err := s.ident.identify(ctx, r)
	if err != nil {
		return s.loginRequired(r, d, err)
	}
	d.User = id.User
	if strings.HasPrefix(r.Path, s.prefix) {
		return s.allowStep(r, id, d)
	}

	in := PolicyInput{Req: r, Identity: id, Networks: s.nets.Load().Lookup(r.ClientIP)}
	realm := s.realms.Of(r.Host)
	if err := s.readMFASession(ctx, r, id, realm, &in); err != nil {
		return s.storeDown(d, err)
	}
	res := s.policy.Evaluate(ctx, &in)
	if res.Err != nil {
		return s.policyDenied(d, res.Err)
	}

	maxAge, err := s.routeMaxAge(r)
	if err != nil {
		return s.fault(d, ReasonInternal, "invalid mfa_max_age for this route", err)
	}
	now := s.now()

	// A rule's redirect comes first (as in Auth0: redirect, then MFA). It
	// is satisfied by its completion in this session; a redirect to a
	// declared MFA service by that service's factor, recently enough for
	// the route.
	method := ""
	if res.RedirectURL != "" && in.Protocol != rules.RedirectCallbackProtocol {
		u, err := url.Parse(res.RedirectURL)
		if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
			return s.fault(d, ReasonRuleError, "rule set an invalid context.redirect URL", err)
		}
		completes := s.redirectCompletion(u)
		p, done := in.MFA.proof(completes)
		factor := done && session.IsFactor(p.Factor)
		if factor && maxAge > 0 && now.Sub(p.At) > maxAge {
			done = false
		}
		if !done {
			return s.redirect(ctx, r, id, d, u, completes, res)
		}
		if factor {
			method = p.Factor
		}
	}

	// Then the MFA requirement.
	q := res.MFA
	if !q.NeedsMFA() {
		reason := ReasonNoMFARequired
		if len(in.Networks) > 0 {
			reason = ReasonNetwork
		}
		return s.allow(d, r, id, &in, res, reason, method)
	}
	q.MaxAge = tighten(q.MaxAge, maxAge)
	if in.MFA != nil {
		if p, ok := s.metBy(q, in.MFA.Proofs, now); ok {
			return s.allow(d, r, id, &in, res, ReasonMFASession, p.Factor)
		}
	}
	if q.AllowRemember {
		ok, err := s.remembered(ctx, r, id, realm, q, now)
		if err != nil {
			return s.storeDown(d, err)
		}
		if ok {
			return s.allow(d, r, id, &in, res, ReasonRemembered, "remembered")
		}
	}
	return s.stepUp(ctx, r, id, d, q)
}

// allow fills an allow decision: identity headers for the upstream and the
// rules' custom claims. method is what satisfied MFA ("" for nothing).
func (s *Server) allow(d Decision, r *Request, id *Identity, in *PolicyInput, res PolicyResult, reason Reason, method string) Decision {
	d.Kind, d.Reason, d.Method = Allow, reason, method
	s.identityHeaders(&d, r, id, in)
	s.claimHeaders(&d, res.Claims)
	return d
}

// allowStep allows a request for the MFA step itself: never stepped up
// (that would loop); it gets a signed assertion of who the user is.
func (s *Server) allowStep(r *Request, id *Identity, d Decision) Decision {
	d.Kind, d.Reason = Allow, ReasonStepUpPrefix
	s.identityHeaders(&d, r, id, nil)
	if s.sessions != nil {
		a, err := s.sessions.Assertion(id, r.ClientIP, s.nets.Load().Lookup(r.ClientIP))
		if err != nil {
			return s.fault(d, ReasonInternal, "cannot sign identity assertion", err)
		}
		d.setHeader(AssertionHeader, a)
	}
	return d
}

// readMFASession puts what the request's MFA session proves on realm into
// in.MFA; a session proven elsewhere, or none that verifies, leaves it
// nil. Only a store that cannot answer is an error.
func (s *Server) readMFASession(ctx context.Context, r *Request, id *Identity, realm string, in *PolicyInput) error {
	if s.sessions == nil {
		return nil
	}
	v, ok := r.Cookie(s.sessions.MFACookieName())
	if !ok {
		return nil
	}
	proof, valid, err := s.sessions.CheckMFA(ctx, v, id.User, id.SID)
	if err != nil {
		return err
	}
	if valid && proof.Realm == realm {
		// The factor of a service no longer declared proves nothing, not
		// even to the rules (context.authentication.methods).
		proof.Proofs = slices.DeleteFunc(proof.Proofs, s.undeclaredService)
		in.MFA = &proof
	}
	return nil
}

// remembered reports whether the request's remembered browser, on realm,
// stands in for a factor that meets q.
func (s *Server) remembered(ctx context.Context, r *Request, id *Identity, realm string, q Requirement, now time.Time) (bool, error) {
	if s.sessions == nil {
		return false, nil
	}
	v, ok := r.Cookie(s.sessions.RememberCookieName())
	if !ok {
		return false, nil
	}
	rp, valid, err := s.sessions.CheckRemember(ctx, v, id.User)
	if err != nil || !valid || rp.Realm != realm {
		return false, err
	}
	_, ok = s.metBy(q, rp.Proofs, now)
	return ok, nil
}

// policyDenied is the decision for a policy's denial.
func (s *Server) policyDenied(d Decision, e *PolicyError) Decision {
	d.Kind, d.Status, d.Reason, d.Message, d.Rule = Deny, e.Status, e.Reason, e.Message, e.Rule
	if d.Status == 0 {
		d.Status = 403
	}
	return d
}

// routeMaxAge is the MFA freshness the route asks for: the shorter of the
// client's configured mfa_max_age and the route's context extension
// "mfa_max_age" (a Go duration). Zero: none.
func (s *Server) routeMaxAge(r *Request) (time.Duration, error) {
	age := s.clientMaxAge[r.ClientID]
	if v, ok := r.ContextExtensions["mfa_max_age"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("context extension mfa_max_age %.32q: must be a positive duration", v)
		}
		age = tighten(age, d)
	}
	return age, nil
}

func (s *Server) stepUp(ctx context.Context, r *Request, id *Identity, d Decision, req Requirement) Decision {
	d.Kind, d.Reason = StepUp, ReasonMFARequired
	d.Message = "multi-factor authentication required"
	if s.sessions != nil {
		tok, err := s.sessions.NewState(ctx, StepUpState{ReturnURL: r.URL(), User: id.User, ClientID: r.ClientID, Host: r.Host, Requirement: req})
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

// redirect sends the browser to a rule's redirect u with a state whose
// completion proves completes.
func (s *Server) redirect(ctx context.Context, r *Request, id *Identity, d Decision, u *url.URL, completes string, res PolicyResult) Decision {
	d.Kind, d.Reason, d.Status = Redirect, ReasonRedirect, 302
	if s.sessions != nil {
		tok, err := s.sessions.NewState(ctx, StepUpState{ReturnURL: r.URL(), User: id.User, ClientID: r.ClientID, Host: r.Host,
			Requirement: res.MFA, RedirectURL: res.RedirectURL, Completes: completes})
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
	d.Reason, d.Message = ReasonNoIdentity, "authentication required"
	if errors.Is(err, errInvalidToken) {
		d.Reason, d.Message = ReasonInvalidIdentity, "invalid identity token"
	}
	if d.Browser && s.loginURL != "" {
		d.Status = 302
		d.Location = strings.ReplaceAll(s.loginURL, "{url}", url.QueryEscape(r.URL()))
	}
	return d
}

func (s *Server) storeDown(d Decision, err error) Decision {
	return s.fault(d, ReasonStoreUnavailable, "session store unavailable", err)
}

// fault denies with 503 (or 403 for rule errors) and keeps the cause for
// the log only.
func (s *Server) fault(d Decision, reason Reason, msg string, err error) Decision {
	d.Kind, d.Status, d.Reason, d.Message = Deny, 503, reason, msg
	if reason == ReasonRuleError {
		d.Status = 403
	}
	d.Location = ""
	if err != nil {
		s.log.Warn("check failed closed", "reason", string(reason), "error", err.Error())
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
