package mfa

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stepup-dev/stepup/mfa/duo"
	"github.com/stepup-dev/stepup/session"
)

// Duo fallback policies ([DuoOptions.Fallback]).
const (
	// DuoFallbackNone: when Duo is unreachable the user cannot go on
	// (fail closed). The default.
	DuoFallbackNone = "none"
	// DuoFallbackTOTP: when Duo is unreachable, a user who has an
	// authenticator app enrolled may verify with it (or a recovery code)
	// instead, for that transaction only.
	DuoFallbackTOTP = "totp"
)

// providerDuo is the requirement's provider for Duo.
const providerDuo = "duo"

// formDuo is the form of the "continue to Duo" page.
const formDuo = "duo"

// DuoOptions configures the Duo step. The Duo application (client id,
// secret, API host) comes from the rule, through the transaction state;
// these are the server's own settings.
type DuoOptions struct {
	// Fallback is [DuoFallbackNone] (default) or [DuoFallbackTOTP].
	Fallback string
	// UsernameClaims are the identity claims tried, in order, for the Duo
	// username when the rule gives none (context.multifactor.username).
	// Default: email, then nickname.
	UsernameClaims []string
	// RootCAs, when set, replaces the system roots for Duo's API (to pin
	// Duo's CAs, or to trust a test CA).
	RootCAs *x509.CertPool
	// Timeout bounds each call to Duo. Zero: [duo.DefaultTimeout].
	Timeout time.Duration
	// HTTPClient, when set, makes the calls to Duo instead of a client
	// built from RootCAs (tests). Not both.
	HTTPClient *http.Client
}

// duoSetup is the handler's Duo configuration.
type duoSetup struct {
	fallback       string
	usernameClaims []string
	http           *http.Client
	timeout        time.Duration
}

func newDuoSetup(o DuoOptions) (duoSetup, error) {
	d := duoSetup{fallback: o.Fallback, usernameClaims: o.UsernameClaims, http: o.HTTPClient, timeout: o.Timeout}
	var errs []error
	switch d.fallback {
	case "":
		d.fallback = DuoFallbackNone
	case DuoFallbackNone, DuoFallbackTOTP:
	default:
		errs = append(errs, fmt.Errorf("duo fallback %q: must be %q or %q", o.Fallback, DuoFallbackNone, DuoFallbackTOTP))
	}
	if len(d.usernameClaims) == 0 {
		d.usernameClaims = []string{"email", "nickname"}
	}
	for _, c := range d.usernameClaims {
		if c == "" {
			errs = append(errs, errors.New("duo username claims: empty claim name"))
		}
	}
	if d.timeout < 0 {
		errs = append(errs, fmt.Errorf("duo timeout %v: must not be negative", d.timeout))
	}
	if d.http != nil && o.RootCAs != nil {
		errs = append(errs, errors.New("duo: set HTTPClient or RootCAs, not both"))
	}
	if d.http == nil {
		// One client (one connection pool) for every Duo application.
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			tr = dt.Clone()
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: o.RootCAs}
		d.http = &http.Client{Transport: tr}
	}
	return d, errors.Join(errs...)
}

// duoTxn is what the handler keeps between the redirect to Duo and Duo's
// callback, under a key named by the Duo state: a fresh random value, so
// that our own state token never travels to Duo.
type duoTxn struct {
	// State is our transaction state token.
	State string `json:"st"`
	// User is the user who started it; the callback must be theirs.
	User string `json:"u"`
	// Username is the user as sent to Duo (duo_uname).
	Username string `json:"un"`
	// Nonce was sent to Duo and must come back in the id_token.
	Nonce string `json:"n"`
	// RedirectURI is the callback URL Duo was given; the code is redeemed
	// with the same.
	RedirectURI string `json:"ru"`
	// Remember: the user asked to be remembered (and the rule allowed it).
	Remember bool `json:"r,omitempty"`
}

func duoTxnKey(duoState string) string {
	sum := sha256.Sum256([]byte("stepup mfa duo state\x00" + duoState))
	return "mfa:duo:" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// duoFallbackKey marks a transaction whose Duo health check failed, when
// the fallback policy lets the authenticator app stand in.
func duoFallbackKey(bind string) string { return "mfa:duofb:" + bind }

// Duo metric labels.
const (
	duoOpHealth = "health_check"
	duoOpToken  = "token"

	duoResultOK           = "ok"
	duoResultUnavailable  = "unavailable"
	duoResultRejected     = "rejected"
	duoResultInvalidToken = "invalid_token"
	duoResultDenied       = "denied"
	duoResultError        = "error"
)

func duoResult(err error) string {
	switch {
	case err == nil:
		return duoResultOK
	case errors.Is(err, duo.ErrDenied):
		return duoResultDenied
	case errors.Is(err, duo.ErrInvalidToken):
		return duoResultInvalidToken
	case errors.Is(err, duo.ErrRejected):
		return duoResultRejected
	case errors.Is(err, duo.ErrUnavailable):
		return duoResultUnavailable
	default:
		return duoResultError
	}
}

// duoApp is the Duo application a transaction asks for.
type duoApp struct {
	clientID, secret, host string
}

// duoApplication reads the rule's Duo settings from the state: ikey and
// host in plain, the secret sealed for the state's user.
func (h *Handler) duoApplication(st session.State) (duoApp, error) {
	a := duoApp{clientID: st.Requirement.Options[session.OptionDuoClientID], host: st.Requirement.Options[session.OptionDuoHost]}
	if a.clientID == "" || a.host == "" {
		return duoApp{}, errors.New("the state has no duo ikey or host")
	}
	if _, ok := canonicalHost(a.host, "https"); !ok {
		return duoApp{}, errors.New("the duo host is not a host name")
	}
	secret, err := h.sealer.OpenOption(st.Requirement, st.User, session.OptionDuoSecret)
	if err != nil {
		return duoApp{}, fmt.Errorf("duo skey: %w", err)
	}
	a.secret = secret
	return a, nil
}

// duoClient returns a client for the transaction's Duo application and
// the redirect URI.
func (h *Handler) duoClient(st session.State, redirectURI string) (*duo.Client, duoApp, error) {
	app, err := h.duoApplication(st)
	if err != nil {
		return nil, duoApp{}, err
	}
	c, err := duo.NewClient(duo.Config{
		ClientID:     app.clientID,
		ClientSecret: app.secret,
		APIHost:      app.host,
		RedirectURI:  redirectURI,
		HTTPClient:   h.duo.http,
		Timeout:      h.duo.timeout,
		Now:          h.now,
	})
	if err != nil {
		return nil, duoApp{}, err
	}
	return c, app, nil
}

// duoUsername is the user as Duo knows them: the rule's username, else the
// first configured claim of the identity that is a non-empty string.
func (h *Handler) duoUsername(tx transaction) (string, bool) {
	if u := tx.st.Requirement.Options[session.OptionDuoUsername]; u != "" {
		return u, true
	}
	for _, c := range h.duo.usernameClaims {
		if v := claimString(tx.id.Claims, c); v != "" {
			return v, true
		}
	}
	return "", false
}

// claimString finds a string claim of the identity in the assertion: in
// the whole claim set when the assertion carried it, else among the few
// claims it always carries.
func claimString(claims map[string]any, name string) string {
	if all, ok := claims[session.AssertionUserClaim].(map[string]any); ok {
		if v, ok := all[name].(string); ok {
			return v
		}
		return ""
	}
	if name == session.AssertionClientIP || name == session.AssertionNetworks || name == session.AssertionUserClaim {
		return ""
	}
	v, _ := claims[name].(string)
	return v
}

// duoGet serves GET {prefix}mfa for a Duo requirement: the authenticator
// app when Duo was down and the fallback is open, else the "continue to
// Duo" page when the rule allows remembering (so that the user can ask to
// be), else straight to Duo.
func (h *Handler) duoGet(w http.ResponseWriter, r *http.Request, tx transaction) {
	if m := r.URL.Query().Get("method"); m == formTOTP || m == formRecovery {
		if h.duoFallbackOpen(w, r, tx) {
			h.showStep(w, r, tx, m, "", http.StatusOK)
		}
		return
	}
	if !tx.st.Requirement.AllowRemember {
		h.duoStart(w, r, tx, false)
		return
	}
	app, err := h.duoApplication(tx.st)
	if err != nil {
		h.duoMisconfigured(w, r, tx, err)
		return
	}
	v := h.formView(tx, formDuo)
	if v.CSRF == "" {
		h.internalError(w, r, "csrf token", errors.New("cannot sign a csrf token"))
		return
	}
	v.Title = h.tr(r).get("duo_title")
	// The form's answer redirects to Duo: form-action must allow it.
	host, _ := canonicalHost(app.host, "https")
	w.Header().Set("Content-Security-Policy", strings.Replace(h.pages.csp, "form-action 'self'", "form-action 'self' https://"+host, 1))
	h.render(w, r, http.StatusOK, "duo", v)
}

// duoPost serves the "continue to Duo" form.
func (h *Handler) duoPost(w http.ResponseWriter, r *http.Request, tx transaction) {
	h.duoStart(w, r, tx, tx.st.Requirement.AllowRemember && r.PostForm.Get("remember") == "1")
}

// duoStart checks Duo's health, keeps what the callback needs, and sends
// the browser to Duo's prompt.
func (h *Handler) duoStart(w http.ResponseWriter, r *http.Request, tx transaction, remember bool) {
	ctx := r.Context()
	redirectURI, ok := h.selfURL(r, "duo/callback")
	if !ok {
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
		return
	}
	client, _, err := h.duoClient(tx.st, redirectURI)
	if err != nil {
		h.duoMisconfigured(w, r, tx, err)
		return
	}
	username, ok := h.duoUsername(tx)
	if !ok {
		h.duoMisconfigured(w, r, tx, fmt.Errorf("no duo username: the rule sets none and the identity has none of the claims %q", h.duo.usernameClaims))
		return
	}
	// stepup's own check, bounded by its own deadline: the browser going
	// away must not pass for Duo being down (that would open the fallback).
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.duoHealthTimeout())
	err = client.HealthCheck(hctx)
	cancel()
	h.metrics.duoRequests.WithLabelValues(duoOpHealth, duoResult(err)).Inc()
	if err != nil {
		if ctx.Err() != nil {
			// Nobody is waiting for the answer; nothing changes.
			return
		}
		h.duoDown(w, r, tx, err)
		return
	}
	duoState, err1 := duo.NewNonce()
	nonce, err2 := duo.NewNonce()
	if err := errors.Join(err1, err2); err != nil {
		h.internalError(w, r, "duo state", err)
		return
	}
	authURL, err := client.AuthURL(username, duoState, nonce)
	if err != nil {
		h.duoMisconfigured(w, r, tx, err)
		return
	}
	ttl := tx.st.ExpiresAt.Sub(h.now())
	if ttl < time.Second {
		h.message(w, r, http.StatusGone, "expired_title", "expired_body", h.returnURL(r, tx.st.ReturnURL), "start_again")
		return
	}
	rec, err := json.Marshal(duoTxn{State: tx.token, User: tx.id.User, Username: username, Nonce: nonce, RedirectURI: redirectURI, Remember: remember})
	if err != nil {
		h.internalError(w, r, "duo transaction", err)
		return
	}
	if err := h.store.Put(contextWithoutCancel(r), duoTxnKey(duoState), rec, ttl); err != nil {
		h.storeDown(w, r, "store duo transaction", err)
		return
	}
	h.log.LogAttrs(ctx, slog.LevelInfo, "mfa step: sending the user to duo",
		slog.String("user", tx.id.User), slog.String("client_ip", tx.id.ClientIP), requestID(r))
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// duoDown renders the "Duo is not available" page, with the way to the
// authenticator app when the fallback policy allows it and the user has
// one.
func (h *Handler) duoDown(w http.ResponseWriter, r *http.Request, tx transaction, err error) {
	ctx := r.Context()
	h.log.LogAttrs(ctx, slog.LevelWarn, "mfa step: duo unavailable, failing closed",
		slog.String("user", tx.id.User), slog.String("error", err.Error()), slog.String("fallback", h.duo.fallback), requestID(r))
	if h.duo.fallback == DuoFallbackTOTP && duoOutage(err) && h.openDuoFallback(r, tx) {
		h.message(w, r, http.StatusServiceUnavailable, "duo_down_title", "duo_down_fallback_body",
			h.prefix+"mfa?state="+url.QueryEscape(tx.token)+"&method="+formTOTP, "use_authenticator")
		return
	}
	h.message(w, r, http.StatusServiceUnavailable, "duo_down_title", "duo_down_body", h.returnURL(r, tx.st.ReturnURL), "try_again")
}

// duoHealthTimeout bounds stepup's health check of Duo: the configured
// timeout of a call to Duo, or duo.DefaultTimeout.
func (h *Handler) duoHealthTimeout() time.Duration {
	if h.duo.timeout > 0 {
		return h.duo.timeout
	}
	return duo.DefaultTimeout
}

// duoOutage reports whether a failed health check means Duo is down (no
// answer, or a 5xx) rather than refusing (a 4xx: wrong client id or
// secret, or rate limiting, which anyone who can make stepup call Duo
// could provoke), which no fallback should paper over.
func duoOutage(err error) bool {
	if !errors.Is(err, duo.ErrUnavailable) {
		return false
	}
	var api *duo.APIError
	if errors.As(err, &api) {
		return api.HTTPStatus >= 500
	}
	return true
}

// openDuoFallback lets the authenticator app stand in for Duo in this
// transaction, when the user has one; it reports whether it did.
func (h *Handler) openDuoFallback(r *http.Request, tx transaction) bool {
	if _, err := h.loadTOTP(r.Context(), tx.id.User); err != nil {
		return false
	}
	ttl := tx.st.ExpiresAt.Sub(h.now())
	if ttl < time.Second {
		return false
	}
	if err := h.store.Put(contextWithoutCancel(r), duoFallbackKey(tx.bind), []byte("1"), ttl); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: cannot open the duo fallback",
			slog.String("error", err.Error()), requestID(r))
		return false
	}
	return true
}

// duoFallbackOpen reports whether the authenticator app may stand in for
// Duo in this transaction (Duo's health check failed for it and the
// policy allows it); otherwise it renders the refusal.
func (h *Handler) duoFallbackOpen(w http.ResponseWriter, r *http.Request, tx transaction) bool {
	if h.duo.fallback == DuoFallbackTOTP {
		_, err := h.store.Get(r.Context(), duoFallbackKey(tx.bind))
		switch {
		case err == nil:
			return true
		case !errors.Is(err, session.ErrNotFound):
			h.storeDown(w, r, "read duo fallback", err)
			return false
		}
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: another factor refused for a duo requirement",
		slog.String("user", tx.id.User), slog.String("fallback", h.duo.fallback), requestID(r))
	h.message(w, r, http.StatusForbidden, "duo_only_title", "duo_only_body", h.prefix+"mfa?state="+url.QueryEscape(tx.token), "use_duo")
	return false
}

// duoMisconfigured renders the page for Duo settings that cannot work (a
// rule with a wrong ikey or skey length, no username, a state sealed with
// a dropped key). The error never holds the secret.
func (h *Handler) duoMisconfigured(w http.ResponseWriter, r *http.Request, tx transaction, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelError, "mfa step: duo cannot be used with these settings",
		slog.String("user", tx.id.User), slog.String("error", err.Error()), requestID(r))
	h.message(w, r, http.StatusInternalServerError, "duo_config_title", "duo_config_body", "", "")
}

// duoCallback serves GET {prefix}duo/callback?state=…&duo_code=…: the
// Duo state must name a transaction of this user; the transaction and our
// state are used up (exactly once) before the code is redeemed.
func (h *Handler) duoCallback(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identify(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	cb, perr := duo.ParseCallback(r.URL.Query())
	if perr != nil && cb.State == "" {
		h.log.LogAttrs(ctx, slog.LevelInfo, "mfa step: malformed duo callback",
			slog.String("user", id.User), slog.String("error", perr.Error()), requestID(r))
		h.message(w, r, http.StatusBadRequest, "invalid_title", "invalid_body", "/", "start_again")
		return
	}
	key := duoTxnKey(cb.State)
	raw, err := h.store.Get(ctx, key)
	if errors.Is(err, session.ErrNotFound) {
		h.log.LogAttrs(ctx, slog.LevelInfo, "mfa step: duo callback for an unknown or used transaction",
			slog.String("user", id.User), slog.String("client_ip", id.ClientIP), requestID(r))
		h.message(w, r, http.StatusGone, "expired_title", "expired_body", "/", "start_again")
		return
	} else if err != nil {
		h.storeDown(w, r, "load duo transaction", err)
		return
	}
	var txn duoTxn
	if err := json.Unmarshal(raw, &txn); err != nil || txn.State == "" || txn.User == "" {
		h.internalError(w, r, "duo transaction", fmt.Errorf("%w: duo transaction record", session.ErrMalformed))
		return
	}
	if txn.User != id.User {
		// Not consumed: the rightful user's callback still works.
		h.log.LogAttrs(ctx, slog.LevelWarn, "mfa step: duo callback of another user",
			slog.String("user", id.User), slog.String("client_ip", id.ClientIP), requestID(r))
		h.message(w, r, http.StatusForbidden, "wrong_user_title", "wrong_user_body", "/", "go_to_app")
		return
	}
	if _, err := h.store.Consume(contextWithoutCancel(r), key); errors.Is(err, session.ErrNotFound) {
		h.message(w, r, http.StatusGone, "expired_title", "expired_body", "/", "start_again")
		return
	} else if err != nil {
		h.storeDown(w, r, "consume duo transaction", err)
		return
	}
	st, err := h.m.ConsumeState(contextWithoutCancel(r), txn.State, id.User)
	if err != nil {
		h.stateError(w, r, id, err, "")
		return
	}
	if !h.stateHere(w, r, id, st) {
		return
	}
	tx := transaction{id: id, token: txn.State, bind: bindState(txn.State), st: st}
	again := h.returnURL(r, st.ReturnURL)
	if perr != nil {
		// Duo came back with an error instead of a code.
		h.metrics.duoRequests.WithLabelValues(duoOpToken, duoResult(perr)).Inc()
		h.log.LogAttrs(ctx, slog.LevelWarn, "mfa step: duo returned an error",
			slog.String("user", id.User), slog.String("error", perr.Error()), requestID(r))
		h.message(w, r, http.StatusForbidden, "duo_failed_title", "duo_failed_body", again, "start_again")
		return
	}
	client, _, err := h.duoClient(st, txn.RedirectURI)
	if err != nil {
		h.duoMisconfigured(w, r, tx, err)
		return
	}
	res, err := client.Exchange(ctx, cb.Code, txn.Username, txn.Nonce)
	h.metrics.duoRequests.WithLabelValues(duoOpToken, duoResult(err)).Inc()
	if err != nil {
		h.duoFailed(w, r, tx, res, err, again)
		return
	}
	h.metrics.verifications.WithLabelValues(factorLabelDuo, resultSuccess).Inc()
	h.log.LogAttrs(ctx, slog.LevelInfo, "mfa verification succeeded",
		slog.String("user", id.User), slog.String("client_ip", id.ClientIP), slog.String("factor", factorLabelDuo),
		slog.String("duo_factor", res.Factor), slog.String("duo_txid", res.TxID), requestID(r))
	h.audit(r, AuditEvent{Name: AuditVerified, User: id.User, ClientIP: id.ClientIP, Factor: session.FactorDuo})
	h.complete(w, r, tx, []string{session.FactorDuo}, txn.Remember, nil)
}

// duoFailed renders what went wrong with a Duo answer.
func (h *Handler) duoFailed(w http.ResponseWriter, r *http.Request, tx transaction, res *duo.Result, err error, again string) {
	attrs := []slog.Attr{slog.String("user", tx.id.User), slog.String("client_ip", tx.id.ClientIP),
		slog.String("result", duoResult(err)), slog.String("error", err.Error()), requestID(r)}
	if res != nil {
		attrs = append(attrs, slog.String("duo_status", res.Status), slog.String("duo_txid", res.TxID))
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: duo verification failed", attrs...)
	h.audit(r, AuditEvent{Name: AuditFailed, User: tx.id.User, ClientIP: tx.id.ClientIP, Factor: session.FactorDuo, Result: duoResult(err)})
	switch {
	case errors.Is(err, duo.ErrDenied):
		h.metrics.verifications.WithLabelValues(factorLabelDuo, resultFailure).Inc()
		h.message(w, r, http.StatusForbidden, "duo_denied_title", "duo_denied_body", again, "start_again")
	case errors.Is(err, duo.ErrUnavailable):
		h.message(w, r, http.StatusServiceUnavailable, "duo_down_title", "duo_down_body", again, "try_again")
	default:
		h.metrics.verifications.WithLabelValues(factorLabelDuo, resultFailure).Inc()
		h.message(w, r, http.StatusForbidden, "duo_failed_title", "duo_failed_body", again, "start_again")
	}
}
