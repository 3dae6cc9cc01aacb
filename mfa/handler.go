package mfa

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-dev/stepup/session"
)

// AssertionHeader is the request header in which Check hands the step the
// signed identity assertion of the user.
const AssertionHeader = session.AssertionHeader

// Defaults for the zero values of [Options].
const (
	DefaultPrefix      = "/.stepup/"
	DefaultIssuer      = "stepup"
	DefaultRememberFor = 30 * 24 * time.Hour
	DefaultReauthAfter = 15 * time.Minute
)

// Options configures a [Handler].
type Options struct {
	// Prefix is the reserved path prefix the handler is mounted at; it
	// must start and end with "/". Default [DefaultPrefix].
	Prefix string
	// Sessions verifies assertions, loads and consumes states, and issues
	// the MFA session and remember-browser cookies. Required.
	Sessions *session.Manager
	// Store keeps the factors, pending enrolments and counters; normally
	// the store of Sessions. Required.
	Store session.Store
	// Sealer encrypts TOTP secrets at rest. Required.
	Sealer *session.Sealer
	// Issuer is the name authenticator apps show next to the account.
	// Default [DefaultIssuer].
	Issuer string
	// EnrollNetworks, when not empty, lets a user enrol a first factor
	// only from a client address in one of these named networks (as Check
	// reported them in the assertion's "networks" claim). Empty: anywhere.
	EnrollNetworks []string
	// Limits regulate wrong codes; zero fields take the defaults.
	Limits RateLimits
	// RememberFor is the remember-browser lifetime, for the label of the
	// box only (the cookie's lifetime is the session manager's). Default
	// [DefaultRememberFor].
	RememberFor time.Duration
	// ReauthAfter is how recent the MFA session must be for the factors
	// page to reset anything; older sessions verify again first. Default
	// [DefaultReauthAfter].
	ReauthAfter time.Duration
	// Identify tells who makes the request. Nil means: verify the
	// assertion in [AssertionHeader] with Sessions. A proxy mode that
	// cannot carry the header passes its own (it must be as strong as
	// Check's identification).
	Identify func(r *http.Request) (session.Assertion, error)
	// Messages replaces English texts by message id (see
	// [DefaultMessages]); an unknown id is an error.
	Messages map[string]string
	// Translations replaces texts of other languages, or adds languages:
	// language tag → message id → text. English and German are built in;
	// a language's ids left out are English. The language of a page is
	// chosen from the request's Accept-Language.
	Translations map[string]map[string]string
	// Brand is the organisation's name, logo and accent colour.
	Brand Branding
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per verification, lockout, enrolment and
	// reset, never a code, secret, state or cookie; nil discards.
	Logger *slog.Logger
	// Audit, when set, receives the MFA events of the audit trail.
	Audit Auditor
	// Metrics registers the step's counters; nil means unregistered.
	Metrics prometheus.Registerer
	// Development accepts http return URLs and origins (the cookies follow
	// the session manager's own Development setting).
	Development bool
	// Duo configures the Duo Universal Prompt step (provider "duo").
	Duo DuoOptions
	// Redirect configures the continue endpoint of Auth0's redirect
	// protocol (a rule's context.redirect).
	Redirect RedirectOptions
	// Realms groups hosts that share sessions; it must be the one Check
	// uses. Nil: every host is its own realm.
	Realms *session.Realms
	// WebAuthn configures passkeys and security keys.
	WebAuthn WebAuthnOptions
}

// Handler serves the MFA step under its prefix. It is safe for concurrent
// use.
type Handler struct {
	prefix      string
	m           *session.Manager
	kr          *session.Keyring
	store       session.Store
	sealer      *session.Sealer
	sealKID     string
	issuer      string
	enrollNets  map[string]bool
	limits      limiter
	rememberFor time.Duration
	reauth      time.Duration
	identifyFn  func(*http.Request) (session.Assertion, error)
	msgs        catalog // English, for logs and the limiter
	pages       *pages  // English: its CSP is every language's
	langs       *languages
	now         func() time.Time
	log         *slog.Logger
	auditor     Auditor
	metrics     *metrics
	dev         bool
	duo         duoSetup
	redirect    redirectSetup
	realms      *session.Realms
	wa          webAuthnSetup
}

// New checks o, fills in defaults and returns a Handler. Every problem is
// reported at once.
func New(o Options) (*Handler, error) {
	var errs []error
	h := &Handler{
		prefix:      o.Prefix,
		m:           o.Sessions,
		store:       o.Store,
		sealer:      o.Sealer,
		issuer:      o.Issuer,
		rememberFor: o.RememberFor,
		reauth:      o.ReauthAfter,
		identifyFn:  o.Identify,
		now:         o.Now,
		log:         o.Logger,
		auditor:     o.Audit,
		dev:         o.Development,
		realms:      o.Realms,
	}
	if h.prefix == "" {
		h.prefix = DefaultPrefix
	}
	if !strings.HasPrefix(h.prefix, "/") || !strings.HasSuffix(h.prefix, "/") || len(h.prefix) < 3 || strings.Contains(h.prefix, "//") || !printableASCII(h.prefix) {
		errs = append(errs, fmt.Errorf("prefix %q: must start and end with / and name a directory", h.prefix))
	}
	if h.m == nil {
		errs = append(errs, errors.New("no session manager"))
	} else {
		h.kr = h.m.Keyring()
	}
	if h.store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if h.sealer == nil {
		errs = append(errs, errors.New("no sealer"))
	} else if probe, err := h.sealer.Seal(nil, "probe"); err != nil {
		errs = append(errs, fmt.Errorf("sealer: %w", err))
	} else {
		h.sealKID = sealedKeyID(probe)
	}
	if h.issuer == "" {
		h.issuer = DefaultIssuer
	}
	if len(h.issuer) > 64 || strings.ContainsAny(h.issuer, ":") || !printableText(h.issuer) {
		errs = append(errs, fmt.Errorf("issuer %q: must be 1-64 printable characters without ':'", h.issuer))
	}
	if len(o.EnrollNetworks) > 0 {
		h.enrollNets = make(map[string]bool, len(o.EnrollNetworks))
		for _, n := range o.EnrollNetworks {
			if n == "" {
				errs = append(errs, errors.New("enroll networks: empty network name"))
			}
			h.enrollNets[n] = true
		}
	}
	if h.rememberFor == 0 {
		h.rememberFor = DefaultRememberFor
	}
	if h.rememberFor < 24*time.Hour {
		errs = append(errs, fmt.Errorf("remember for %v: must be at least a day", h.rememberFor))
	}
	if h.reauth == 0 {
		h.reauth = DefaultReauthAfter
	}
	if h.reauth < time.Minute || h.reauth > 24*time.Hour {
		errs = append(errs, fmt.Errorf("reauth after %v: must be between 1m and 24h", h.reauth))
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.identifyFn == nil {
		h.identifyFn = h.assertionFromHeader
	}
	lim, err := o.Limits.withDefaults()
	if err != nil {
		errs = append(errs, err)
	}
	brand, err := newBrandSetup(o.Brand)
	if err != nil {
		errs = append(errs, err)
	}
	css, err := styleCSS(brand)
	if err != nil {
		errs = append(errs, err)
	}
	if h.langs, err = newLanguages(o.Messages, o.Translations, css, brand); err != nil {
		errs = append(errs, err)
	} else {
		h.msgs, h.pages = h.langs.byIndex[0].msgs, h.langs.byIndex[0].pages
	}
	if h.metrics, err = newMetrics(o.Metrics); err != nil {
		errs = append(errs, err)
	}
	if h.duo, err = newDuoSetup(o.Duo); err != nil {
		errs = append(errs, err)
	}
	if h.redirect, err = newRedirectSetup(o.Redirect); err != nil {
		errs = append(errs, err)
	}
	if h.wa, err = newWebAuthnSetup(o.WebAuthn, h.issuer); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	h.limits = limiter{RateLimits: lim, store: h.store, now: h.now, log: h.log, metrics: h.metrics, msgs: h.msgs}
	return h, nil
}

// ServeHTTP serves every path under the prefix; anything else is a 404.
// Every response carries the security headers described in the package
// documentation.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.securityHeaders(w)
	rest, ok := strings.CutPrefix(r.URL.Path, h.prefix)
	if !ok {
		h.message(w, r, http.StatusNotFound, "not_found_title", "not_found_body", "", "")
		return
	}
	switch rest {
	case "mfa":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.stepGet(w, r)
		case http.MethodPost:
			h.stepPost(w, r)
		default:
			h.methodNotAllowed(w, r)
		}
	case "factors":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.factorsGet(w, r)
		case http.MethodPost:
			h.factorsPost(w, r)
		default:
			h.methodNotAllowed(w, r)
		}
	case "stepup.js":
		h.serveScript(w, r)
	case "duo/callback":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			h.message(w, r, http.StatusMethodNotAllowed, "method_title", "method_body", "", "")
			return
		}
		h.duoCallback(w, r)
	case "continue":
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			h.message(w, r, http.StatusMethodNotAllowed, "method_title", "method_body", "", "")
			return
		}
		h.continueRedirect(w, r)
	default:
		h.message(w, r, http.StatusNotFound, "not_found_title", "not_found_body", "", "")
	}
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD, POST")
	h.message(w, r, http.StatusMethodNotAllowed, "method_title", "method_body", "", "")
}

// securityHeaders sets the headers every response carries.
func (h *Handler) securityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.pages.csp)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// identity is who makes a request, from the assertion.
type identity struct {
	User     string
	SID      string
	Account  string // what the authenticator app shows: email, else user
	ClientIP string
	Networks []string
	// Claims are the assertion's claims (email, name, client_ip, …, and
	// the identity's whole claim set under "user" when it fitted).
	Claims map[string]any
}

// errNoAssertion is returned by the default Identify when the request
// carries no assertion header.
var errNoAssertion = errors.New("no identity assertion")

func (h *Handler) assertionFromHeader(r *http.Request) (session.Assertion, error) {
	v := r.Header.Get(AssertionHeader)
	if v == "" {
		return session.Assertion{}, errNoAssertion
	}
	return h.m.VerifyAssertion(v)
}

// identify returns who makes the request, or renders the "sign in again"
// page and returns false.
func (h *Handler) identify(w http.ResponseWriter, r *http.Request) (identity, bool) {
	a, err := h.identifyFn(r)
	if err != nil || a.User == "" {
		level := slog.LevelInfo
		if errors.Is(err, errNoAssertion) {
			// Check always adds it: the route to the step bypasses ext_authz.
			level = slog.LevelWarn
		}
		h.log.LogAttrs(r.Context(), level, "mfa step: request without a valid identity",
			slog.String("reason", identifyReason(err)), requestID(r))
		h.message(w, r, http.StatusUnauthorized, "signin_title", "signin_body", "/", "go_to_app")
		return identity{}, false
	}
	id := identity{User: a.User, SID: a.SID, Account: a.User, Claims: a.Claims}
	if e, ok := a.Claims["email"].(string); ok && e != "" {
		id.Account = e
	}
	if ip, ok := a.Claims[session.AssertionClientIP].(string); ok {
		if addr, err := netip.ParseAddr(ip); err == nil {
			id.ClientIP = addr.Unmap().String()
		}
	}
	if id.ClientIP == "" {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			id.ClientIP = host
		} else {
			id.ClientIP = "unknown"
		}
	}
	if nets, ok := a.Claims[session.AssertionNetworks].([]any); ok {
		for _, n := range nets {
			if s, ok := n.(string); ok {
				id.Networks = append(id.Networks, s)
			}
		}
	}
	return id, true
}

func identifyReason(err error) string {
	switch {
	case errors.Is(err, errNoAssertion):
		return "no_assertion"
	case err == nil:
		return "empty_user"
	default:
		return session.Reason(err)
	}
}

// enrolAllowed applies the EnrollNetworks policy.
func (h *Handler) enrolAllowed(id identity) bool {
	if len(h.enrollNets) == 0 {
		return true
	}
	for _, n := range id.Networks {
		if h.enrollNets[n] {
			return true
		}
	}
	return false
}

// returnURL is the state's return URL when it is safe for this request's
// host, else "/".
func (h *Handler) returnURL(r *http.Request, raw string) string {
	if raw == "" {
		return "/"
	}
	if u, ok := safeReturnURL(raw, r.Host, h.dev); ok {
		return u
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: return url refused, sending the browser to /",
		slog.String("host", r.Host), requestID(r))
	return "/"
}

// userKey names a user in plain store keys: a hash, so that any user id
// fits the key syntax and length.
func userKey(user string) string {
	sum := sha256.Sum256([]byte("stepup mfa user\x00" + user))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// bindState names a state token in keys and CSRF tokens.
func bindState(token string) string {
	sum := sha256.Sum256([]byte("stepup mfa state\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

func requestID(r *http.Request) slog.Attr {
	id := r.Header.Get("X-Request-Id")
	if len(id) > 128 || !printableASCII(id) {
		id = ""
	}
	return slog.String("request_id", id)
}

// storeDown renders the "temporarily unavailable" page and logs err.
func (h *Handler) storeDown(w http.ResponseWriter, r *http.Request, op string, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelError, "mfa step: store unavailable",
		slog.String("op", op), slog.String("error", err.Error()), requestID(r))
	h.message(w, r, http.StatusServiceUnavailable, "store_down_title", "store_down_body", "", "")
}

// internalError renders the generic error page and logs err.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, op string, err error) {
	if errors.Is(err, session.ErrStoreUnavailable) {
		h.storeDown(w, r, op, err)
		return
	}
	h.log.LogAttrs(r.Context(), slog.LevelError, "mfa step: internal error",
		slog.String("op", op), slog.String("error", err.Error()), requestID(r))
	h.message(w, r, http.StatusInternalServerError, "internal_title", "internal_body", "", "")
}

func printableText(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return false
		}
	}
	return true
}

// contextWithoutCancel keeps store writes that must happen together (a
// consumed state and the cookies it pays for) from being cut half way by
// a client that goes away.
func contextWithoutCancel(r *http.Request) context.Context {
	return context.WithoutCancel(r.Context())
}

// identifyForm identifies the user of a posted form, reads the form
// (bounded to maxFormBytes) and refuses a cross-origin post. On a refusal
// it answers the request and reports false.
func (h *Handler) identifyForm(w http.ResponseWriter, r *http.Request) (identity, bool) {
	id, ok := h.identify(w, r)
	if !ok {
		return id, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
		return id, false
	}
	if !h.sameOrigin(r) {
		h.csrfRefused(w, r, id, "cross_origin")
		return id, false
	}
	return id, true
}
