package extauthz

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"

	"github.com/stepup-dev/stepup/rules"
)

// maxResumeValues bounds the query and body parameters handed to the rules.
const maxResumeValues = 1000

// ResumeInput is a browser coming back from a custom MFA service to the
// MFA step's continue endpoint, with the transaction state it left with.
type ResumeInput struct {
	// User and SID identify the user, from the step's identity assertion;
	// the state was checked to be User's.
	User, SID string
	// Claims are the identity's claims as the assertion carried them (the
	// whole set under [AssertionUserClaim] when it fitted, else email,
	// name, nickname).
	Claims map[string]any
	// ClientID is the application of the original request (from the
	// state); ReturnURL its URL.
	ClientID, ReturnURL string
	// Hostname is the host the browser came back to (context.request.hostname).
	Hostname string
	// ClientIP is the client address as Check saw it; the networks are
	// looked up again in the current set.
	ClientIP netip.Addr
	// UserAgent is the browser's User-Agent.
	UserAgent string
	// Query and Body are what came back: the continue request's query and,
	// for a POST, its form (context.request.query and .body).
	Query, Body url.Values
}

// ResumeResult is the outcome of the re-run pipeline.
type ResumeResult struct {
	// Err is nil when every rule called back without error: the custom
	// MFA step counts as passed. Otherwise the browser is denied: Status
	// 403 with the rule's Message, or 5xx for a fault.
	Err *PolicyError
}

// Resume runs the whole policy again for a browser back from a rule's
// redirect, with context.protocol "redirect-callback" and
// context.request.query / .body holding what came back (Auth0's redirect
// protocol). A context.redirect set on this pass is ignored (one redirect
// per transaction), and so is a context.multifactor: a successful return
// proves only what the state says its completion proves (the redirect's
// completion, or a declared MFA service's factor), and the next Check runs
// the rules again and asks for any factor they require.
func (s *Server) Resume(ctx context.Context, in ResumeInput) ResumeResult {
	if in.User == "" || !in.ClientIP.IsValid() {
		return ResumeResult{Err: &PolicyError{Status: http.StatusBadRequest, Reason: ReasonBadRequest, Message: "incomplete redirect callback"}}
	}
	id := &Identity{User: in.User, SID: in.SID, Source: "assertion", claims: make(map[string]any, len(in.Claims)+1)}
	for k, v := range in.Claims {
		id.claims[k] = v
	}
	if e, ok := id.claims["email"].(string); ok {
		id.Email = e
	}
	r := &Request{
		Mode:     ModeEnvoyHTTP,
		Method:   http.MethodGet,
		Scheme:   "https",
		Host:     stripPort(in.Hostname),
		HostPort: in.Hostname,
		RawQuery: capValues(in.Query).Encode(),
		Headers:  map[string]string{"user-agent": in.UserAgent, "accept": "text/html"},
		ClientIP: in.ClientIP.Unmap(),
		PeerIP:   in.ClientIP.Unmap(),
		ClientID: in.ClientID,
	}
	if u, err := url.Parse(in.ReturnURL); err == nil && u.Host != "" {
		r.Scheme, r.Path = u.Scheme, u.EscapedPath()
	}
	pin := PolicyInput{
		Req:      r,
		Identity: id,
		Networks: s.nets.Load().Lookup(r.ClientIP),
		Protocol: rules.RedirectCallbackProtocol,
		Body:     formObject(capValues(in.Body)),
	}
	res := s.policy.Evaluate(ctx, &pin)
	if res.Err != nil && res.Err.Status == 0 {
		res.Err.Status = http.StatusForbidden
	}
	level, outcome := slog.LevelInfo, "continue"
	if res.Err != nil {
		level, outcome = slog.LevelWarn, string(res.Err.Reason)
	}
	attrs := []slog.Attr{slog.String("outcome", outcome), slog.String("user", in.User),
		slog.String("client_id", in.ClientID), slog.String("client_ip", r.ClientIP.String())}
	if res.Err != nil && res.Err.Rule != "" {
		attrs = append(attrs, slog.String("rule", res.Err.Rule))
	}
	s.log.LogAttrs(ctx, level, "redirect callback: rules re-run", attrs...)
	return ResumeResult{Err: res.Err}
}

// capValues keeps at most maxResumeValues parameters: the rules get what
// a browser can plausibly send, not an unbounded map.
func capValues(v url.Values) url.Values {
	if len(v) <= maxResumeValues {
		return v
	}
	out := make(url.Values, maxResumeValues)
	for k, vs := range v {
		if len(out) == maxResumeValues {
			break
		}
		out[k] = vs
	}
	return out
}

// formObject turns a form into context.request.body the way Auth0 gave
// it to rules: one value as a string, repeated values as an array. Nil
// stays nil (context.request.body is then an empty object).
func formObject(v url.Values) map[string]any {
	if v == nil {
		return nil
	}
	out := make(map[string]any, len(v))
	for k, vs := range v {
		switch len(vs) {
		case 0:
		case 1:
			out[k] = vs[0]
		default:
			list := make([]any, len(vs))
			for i, s := range vs {
				list[i] = s
			}
			out[k] = list
		}
	}
	return out
}
