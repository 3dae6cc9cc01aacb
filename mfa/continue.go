package mfa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stepup-dev/stepup/session"
)

// Continuer re-runs the rules when a browser comes back from a custom MFA
// service: the whole pipeline with context.protocol "redirect-callback"
// and context.request.query / .body holding what came back. cmd/stepup
// implements it on the decision core; the step cannot import it.
type Continuer interface {
	// Continue runs the pipeline for in. It returns an error when the
	// pipeline could not decide (a timeout, a fault): the step then fails
	// closed with a "try again later" page.
	Continue(ctx context.Context, in ContinueInput) (ContinueResult, error)
}

// ContinueInput is a browser back at {prefix}continue with a state of its
// user.
type ContinueInput struct {
	// User and SID are the identity the step verified.
	User, SID string
	// Claims are the identity's claims: the whole set when Check could put
	// it in the assertion, else email, name and nickname.
	Claims map[string]any
	// ClientID and ReturnURL come from the transaction state.
	ClientID, ReturnURL string
	// Hostname is the request's Host.
	Hostname string
	// ClientIP is the client address as Check saw it.
	ClientIP string
	// Networks are the networks containing ClientIP, as Check saw them.
	Networks []string
	// UserAgent is the browser's User-Agent.
	UserAgent string
	// Query is the request's query; Body its form for a POST, else nil.
	Query, Body url.Values
}

// ContinueResult is what the rules said on the callback pass.
type ContinueResult struct {
	// Denied is true when a rule stopped the pipeline with an error.
	Denied bool
	// Message is the rule's message for the user (its error's message),
	// shown on the denial page; may be empty.
	Message string
	// Rule names the rule that denied, for the log.
	Rule string
}

// RedirectOptions configures {prefix}continue, where a custom MFA service
// sends the browser back.
type RedirectOptions struct {
	// Continuer re-runs the rules. Nil: rules are not in use, and the
	// endpoint refuses every callback.
	Continuer Continuer
	// Verify, when set, makes every callback carry a signed token (query
	// or form parameter "token" or "id_token") that the step checks before
	// the rules run. Nil: the rules decide alone (a rule may verify the
	// token itself with require('jsonwebtoken')).
	Verify *TokenVerification
	// Services are the declared custom MFA services by name, with their
	// own token verification, or nil when the rules verify the return. A
	// callback whose state completes "redirect:<name>" must carry a token
	// that the service's own verification accepts (Verify does not stand
	// in: another page holding its key could mint it); for a service not
	// listed here it is refused.
	Services map[string]*TokenVerification
}

// TokenVerification is the built-in check of the token a custom MFA
// service returns: signature (only the listed algorithms, never "none"),
// exp (required), iss and aud when configured, sub equal to the user,
// a "state" claim equal to the transaction state, and a jti used once.
type TokenVerification struct {
	// Keyfunc returns the verification key for a token: a []byte secret
	// for HS256, an *rsa.PublicKey for RS256. Required.
	Keyfunc jwt.Keyfunc
	// Algorithms are the accepted "alg" values, such as ["HS256"].
	// Required.
	Algorithms []string
	// Issuer and Audience, when set, must match iss and aud.
	Issuer, Audience string
	// Leeway is the clock skew allowed on exp, nbf and iat. Default 30 s.
	Leeway time.Duration
}

// DefaultTokenLeeway is [TokenVerification.Leeway]'s default.
const DefaultTokenLeeway = 30 * time.Second

// redirectSetup is the handler's redirect-protocol configuration.
type redirectSetup struct {
	continuer Continuer
	verify    *TokenVerification
	services  map[string]*TokenVerification
}

func newRedirectSetup(o RedirectOptions) (redirectSetup, error) {
	rs := redirectSetup{continuer: o.Continuer, services: make(map[string]*TokenVerification, len(o.Services))}
	var errs []error
	if o.Verify != nil {
		v, err := checkVerification(o.Verify)
		errs = append(errs, err)
		rs.verify = v
	}
	for name, sv := range o.Services {
		if sv == nil {
			rs.services[name] = nil
			continue
		}
		v, err := checkVerification(sv)
		if err != nil {
			err = fmt.Errorf("service %q: %w", name, err)
		}
		errs = append(errs, err)
		rs.services[name] = v
	}
	return rs, errors.Join(errs...)
}

// verification returns the token verification a callback of st needs:
// its declared service's own (nil: the rules verify it), else the one for
// every callback (nil: the rules decide alone). ok is false for the state
// of a service the step does not know: it proves nothing.
func (rs redirectSetup) verification(st session.State) (v *TokenVerification, ok bool) {
	if name, isService := strings.CutPrefix(st.Completes, session.RedirectFactorPrefix); isService {
		v, ok = rs.services[name]
		return v, ok
	}
	return rs.verify, true
}

// checkVerification checks v and fills in its defaults.
func checkVerification(v *TokenVerification) (*TokenVerification, error) {
	var errs []error
	if v.Keyfunc == nil {
		errs = append(errs, errors.New("redirect token verification: no key"))
	}
	if len(v.Algorithms) == 0 {
		errs = append(errs, errors.New("redirect token verification: no algorithms"))
	}
	for _, a := range v.Algorithms {
		if a == "" || a == "none" || jwt.GetSigningMethod(a) == nil {
			errs = append(errs, fmt.Errorf("redirect token verification: algorithm %q is not accepted", a))
		}
	}
	if v.Leeway < 0 {
		errs = append(errs, fmt.Errorf("redirect token verification: leeway %v must not be negative", v.Leeway))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	vc := *v
	if vc.Leeway == 0 {
		vc.Leeway = DefaultTokenLeeway
	}
	return &vc, nil
}

// continueRedirect serves GET and POST {prefix}continue?state=…: a
// browser back from a rule's redirect. The state must be its user's and
// made by a redirect; it is used up (exactly once) before anything else
// happens, then the returned token is checked (when configured) and the
// rules run again. Success adds to the browser's MFA session what the
// state says its completion proves (the redirect's completion, or the
// factor of a declared MFA service; never more) and is a 303 to the
// original URL.
func (h *Handler) continueRedirect(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identify(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	var body url.Values
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
			return
		}
		body = r.PostForm
	}
	query := r.URL.Query()
	token, ok := singleParam(query, body, "state")
	if !ok || token == "" {
		h.redirectRefused(r, id, "no_state")
		h.message(w, r, http.StatusBadRequest, "invalid_title", "invalid_body", "/", "start_again")
		return
	}
	if h.redirect.continuer == nil {
		h.redirectRefused(r, id, "not_configured")
		h.message(w, r, http.StatusNotImplemented, "redirect_off_title", "redirect_off_body", "", "")
		return
	}
	// Loaded first: a state of another user is refused and left for its
	// owner; a state of the MFA page is not a redirect's.
	st, err := h.m.LoadState(ctx, token, id.User)
	if err != nil {
		h.metrics.redirects.WithLabelValues(redirectResultState).Inc()
		h.stateError(w, r, id, err, "")
		return
	}
	if !h.stateHere(w, r, id, st) {
		h.metrics.redirects.WithLabelValues(redirectResultState).Inc()
		return
	}
	if st.RedirectURL == "" || st.Completes == "" {
		h.metrics.redirects.WithLabelValues(redirectResultState).Inc()
		h.redirectRefused(r, id, "not_a_redirect_state")
		h.message(w, r, http.StatusBadRequest, "invalid_title", "invalid_body", "/", "start_again")
		return
	}
	if _, err := h.m.ConsumeState(contextWithoutCancel(r), token, id.User); err != nil {
		h.metrics.redirects.WithLabelValues(redirectResultState).Inc()
		h.stateError(w, r, id, err, st.ReturnURL)
		return
	}
	again := h.returnURL(r, st.ReturnURL)
	v, known := h.redirect.verification(st)
	if !known {
		h.metrics.redirects.WithLabelValues(redirectResultState).Inc()
		h.redirectRefused(r, id, "unknown_service")
		h.message(w, r, http.StatusForbidden, "redirect_failed_title", "redirect_failed_body", again, "start_again")
		return
	}
	if v != nil {
		if reason, err := h.checkReturnToken(contextWithoutCancel(r), v, query, body, id.User, token); err != nil {
			if errors.Is(err, session.ErrStoreUnavailable) {
				h.storeDown(w, r, "claim token id", err)
				return
			}
			h.metrics.redirects.WithLabelValues(redirectResultToken).Inc()
			h.redirectRefused(r, id, "token_"+reason)
			h.message(w, r, http.StatusForbidden, "redirect_failed_title", "redirect_failed_body", again, "start_again")
			return
		}
	}
	res, err := h.redirect.continuer.Continue(ctx, ContinueInput{
		User: id.User, SID: id.SID, Claims: identityClaims(id.Claims),
		ClientID: st.ClientID, ReturnURL: st.ReturnURL, Hostname: r.Host,
		ClientIP: id.ClientIP, Networks: id.Networks, UserAgent: r.UserAgent(),
		Query: query, Body: body,
	})
	if err != nil {
		h.metrics.redirects.WithLabelValues(redirectResultError).Inc()
		h.log.LogAttrs(ctx, slog.LevelError, "mfa step: the rules could not decide a redirect callback",
			slog.String("user", id.User), slog.String("error", err.Error()), requestID(r))
		h.message(w, r, http.StatusServiceUnavailable, "store_down_title", "store_down_body", again, "start_again")
		return
	}
	if res.Denied {
		h.metrics.redirects.WithLabelValues(redirectResultDenied).Inc()
		h.log.LogAttrs(ctx, slog.LevelInfo, "mfa step: the rules denied a redirect callback",
			slog.String("user", id.User), slog.String("rule", res.Rule), slog.String("client_ip", id.ClientIP), requestID(r))
		v := &view{Title: h.tr(r).get("denied_title"), Body: res.Message}
		if v.Body == "" {
			v.Body = h.tr(r).get("denied_body")
		}
		h.render(w, r, http.StatusForbidden, "message", v)
		return
	}
	h.metrics.redirects.WithLabelValues(redirectResultSuccess).Inc()
	h.log.LogAttrs(ctx, slog.LevelInfo, "mfa verification succeeded",
		slog.String("user", id.User), slog.String("client_ip", id.ClientIP), slog.String("proves", st.Completes), requestID(r))
	h.audit(r, AuditEvent{Name: AuditVerified, User: id.User, ClientIP: id.ClientIP, Factor: st.Completes})
	h.complete(w, r, transaction{id: id, token: token, bind: bindState(token), st: st}, []string{st.Completes}, false, nil)
}

// redirectRefused logs a refused callback; reason is a fixed word.
func (h *Handler) redirectRefused(r *http.Request, id identity, reason string) {
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: redirect callback refused",
		slog.String("reason", reason), slog.String("user", id.User), slog.String("client_ip", id.ClientIP), requestID(r))
}

// singleParam returns the one value of name in the query or the form: a
// parameter given twice, or differently in both, is refused.
func singleParam(query, form url.Values, name string) (string, bool) {
	var vals []string
	vals = append(vals, query[name]...)
	vals = append(vals, form[name]...)
	switch {
	case len(vals) == 0:
		return "", true
	case len(vals) == 1:
		return vals[0], true
	}
	for _, v := range vals[1:] {
		if v != vals[0] {
			return "", false
		}
	}
	return vals[0], true
}

// identityClaims returns the identity's claims from the assertion's: the
// whole set when Check put it there, else the assertion's own user claims.
func identityClaims(a map[string]any) map[string]any {
	if all, ok := a[session.AssertionUserClaim].(map[string]any); ok {
		return all
	}
	out := make(map[string]any, len(a))
	for k, v := range a {
		switch k {
		case session.AssertionClientIP, session.AssertionNetworks, session.AssertionUserClaim:
		default:
			out[k] = v
		}
	}
	return out
}
