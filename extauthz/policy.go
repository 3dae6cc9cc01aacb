package extauthz

import (
	"context"
	"net/netip"
	"time"
)

// Requirement is what the policy asks of a request.
type Requirement struct {
	// Provider is "" or "none" for no MFA; otherwise any,
	// google-authenticator, duo, ...
	Provider string
	// AllowRemember: a remember-browser cookie may satisfy the requirement.
	AllowRemember bool
	// Options carries provider options (Duo keys etc.) for the MFA step.
	Options map[string]any
	// Factors, when not empty, are the only factors that meet the
	// requirement (on top of the provider's table, [FactorMeets]).
	Factors []string
	// MaxAge, when positive, is how long ago the factor may have been
	// proven at most; an older proof steps up again.
	MaxAge time.Duration
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
	Reason  Reason
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
	CheckRemember(ctx context.Context, value, user string) (RememberProof, bool, error)
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
	ReturnURL string
	User      string
	ClientID  string
	// Host is the canonical host of the request: the state completes
	// there only.
	Host        string
	Requirement Requirement
	// RedirectURL is set for a rule redirect (the custom MFA service).
	RedirectURL string
	// Completes is what completing the redirect proves (a declared
	// service's factor, or the redirect's completion).
	Completes string
}
