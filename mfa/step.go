package mfa

import (
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// Form methods of POST {prefix}mfa; they are also the CSRF forms.
const (
	formEnrol    = "enrol"
	formTOTP     = "totp"
	formRecovery = "recovery"
)

// maxFormBytes bounds a POST body.
const maxFormBytes = 16 << 10

// transaction is one step in progress: who, which state, what it asks.
type transaction struct {
	id    identity
	token string // the state token
	bind  string // bindState(token)
	st    session.State
}

// stepGet shows the enrolment, verification or recovery-code page.
func (h *Handler) stepGet(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identify(w, r)
	if !ok {
		return
	}
	tx, ok := h.loadTransaction(w, r, id, r.URL.Query().Get("state"), "")
	if !ok {
		return
	}
	if tx.st.Requirement.Provider == providerDuo {
		h.duoGet(w, r, tx)
		return
	}
	mode := formTOTP
	if r.URL.Query().Get("method") == formRecovery {
		mode = formRecovery
	}
	h.showStep(w, r, tx, mode, "", http.StatusOK)
}

// stepPost checks a submitted form and completes the step.
func (h *Handler) stepPost(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identifyForm(w, r)
	if !ok {
		return
	}
	token, form := r.PostForm.Get("state"), r.PostForm.Get("method")
	ret, ok := h.checkCSRF(r.PostForm.Get("csrf"), id.User, bindState(token), form)
	if !ok {
		h.csrfRefused(w, r, id, "bad_token")
		return
	}
	tx, ok := h.loadTransaction(w, r, id, token, ret)
	if !ok {
		return
	}
	if tx.st.Requirement.Provider == providerDuo {
		switch form {
		case formDuo:
			h.duoPost(w, r, tx)
			return
		case formTOTP, formRecovery:
			// Only as the fallback of a Duo outage.
			if !h.duoFallbackOpen(w, r, tx) {
				return
			}
		default:
			h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
			return
		}
	}
	switch form {
	case formEnrol:
		h.enrolPost(w, r, tx)
	case formWebAuthnEnrol:
		h.passkeyEnrolPost(w, r, tx)
	case formWebAuthn:
		h.passkeyPost(w, r, tx)
	case formTOTP:
		h.totpPost(w, r, tx)
	case formRecovery:
		h.recoveryPost(w, r, tx)
	default:
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
	}
}

func (h *Handler) csrfRefused(w http.ResponseWriter, r *http.Request, id identity, reason string) {
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: form refused",
		slog.String("reason", reason), slog.String("user", id.User), slog.String("client_ip", id.ClientIP), requestID(r))
	h.message(w, r, http.StatusForbidden, "csrf_title", "csrf_body", "", "")
}

// loadTransaction reads the state named by token for the user without
// consuming it, and checks that the step can serve it. On failure it
// renders the page that says what to do and returns false. ret is the
// return URL remembered by a posted form, for the "start again" link when
// the state is gone.
func (h *Handler) loadTransaction(w http.ResponseWriter, r *http.Request, id identity, token, ret string) (transaction, bool) {
	if token == "" {
		h.message(w, r, http.StatusBadRequest, "invalid_title", "invalid_body", "/", "start_again")
		return transaction{}, false
	}
	st, err := h.m.LoadState(r.Context(), token, id.User)
	if err != nil {
		h.stateError(w, r, id, err, ret)
		return transaction{}, false
	}
	if !h.stateHere(w, r, id, st) {
		return transaction{}, false
	}
	if st.RedirectURL != "" {
		// A rule's redirect: the browser comes back to {prefix}continue.
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: a redirect's state presented to the mfa page",
			slog.String("user", id.User), requestID(r))
		h.message(w, r, http.StatusBadRequest, "invalid_title", "invalid_body", "/", "start_again")
		return transaction{}, false
	}
	if !totpProvider(st.Requirement.Provider) && st.Requirement.Provider != providerDuo {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: requirement not supported",
			slog.String("provider", st.Requirement.Provider), slog.String("user", id.User), requestID(r))
		h.message(w, r, http.StatusNotImplemented, "unavailable_title", "unavailable_body", "", "")
		return transaction{}, false
	}
	return transaction{id: id, token: token, bind: bindState(token), st: st}, true
}

// totpProvider reports whether the authenticator app satisfies provider.
func totpProvider(p string) bool {
	switch p {
	case "", "any", "google-authenticator", "guardian":
		return true
	}
	return false
}

// stateHere reports whether the state was made for this request's host;
// otherwise it renders the refusal and returns false. A state completes
// only where it was made: its cookies would prove a factor on another
// host's realm.
func (h *Handler) stateHere(w http.ResponseWriter, r *http.Request, id identity, st session.State) bool {
	if st.Host != "" && st.Host == session.CanonicalHost(r.Host) {
		return true
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: state refused",
		slog.String("reason", "wrong_host"), slog.String("user", id.User), slog.String("host", session.CanonicalHost(r.Host)),
		slog.String("client_ip", id.ClientIP), requestID(r))
	h.message(w, r, http.StatusForbidden, "wrong_host_title", "wrong_host_body", "", "")
	return false
}

// stateError renders what to do about a state that cannot be used.
func (h *Handler) stateError(w http.ResponseWriter, r *http.Request, id identity, err error, ret string) {
	reason := session.Reason(err)
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "mfa step: state refused",
		slog.String("reason", reason), slog.String("user", id.User), slog.String("client_ip", id.ClientIP), requestID(r))
	switch {
	case errors.Is(err, session.ErrStoreUnavailable):
		h.storeDown(w, r, "load state", err)
	case errors.Is(err, session.ErrWrongUser):
		// Never consumed: the rightful user can still use the link.
		h.message(w, r, http.StatusForbidden, "wrong_user_title", "wrong_user_body", "/", "go_to_app")
	case errors.Is(err, session.ErrExpired), errors.Is(err, session.ErrNotFound):
		h.message(w, r, http.StatusGone, "expired_title", "expired_body", h.returnURL(r, ret), "start_again")
	default:
		h.message(w, r, http.StatusBadRequest, "invalid_title", "invalid_body", "/", "start_again")
	}
}

// showStep renders the page for where the user is: enrolment when the
// user has no factor yet (and enrolment is allowed here), else the
// verification page with the factors the requirement accepts (a passkey,
// the authenticator app's code), or the recovery-code form. errMsg, when
// set, is shown above the form.
func (h *Handler) showStep(w http.ResponseWriter, r *http.Request, tx transaction, mode, errMsg string, status int) {
	ctx := r.Context()
	c := h.tr(r)
	f, err := h.factorsOf(ctx, r, tx.id.User)
	if err != nil {
		h.storeDown(w, r, "load factors", err)
		return
	}
	if !f.any() {
		h.showEnrol(w, r, tx, errMsg, status)
		return
	}
	usable := h.usablePasskeys(tx, f)
	offerTOTP := f.totp && f.totpBroken == nil && h.offers(tx, session.FactorOTP)
	offerRecovery := h.offers(tx, session.FactorRecoveryCode)
	if mode == formRecovery && !offerRecovery {
		mode = formTOTP
	}
	if mode != formRecovery && !offerTOTP && len(usable) == 0 {
		switch {
		case f.totpBroken != nil && len(f.passkeys) == 0:
			h.factorBroken(w, r, tx.id, f.totpBroken)
			return
		case offerRecovery:
			mode = formRecovery
		default:
			// Enrolled, but nothing this requirement accepts: adding a
			// factor needs a verification first, on the factors page.
			h.log.LogAttrs(ctx, slog.LevelInfo, "mfa step: the user has no factor the requirement accepts",
				slog.String("user", tx.id.User), slog.String("provider", tx.st.Requirement.Provider),
				slog.Any("factors", tx.st.Requirement.Factors), requestID(r))
			h.message(w, r, http.StatusForbidden, "factor_needed_title", "factor_needed_body", h.prefix+"factors", "manage_factors")
			return
		}
	}
	if errMsg == "" {
		locked, err := h.limits.lockedFor(ctx, tx.id)
		if err != nil {
			h.storeDown(w, r, "read lockout", err)
			return
		}
		if locked > 0 {
			errMsg = c.get("err_locked", c.duration(locked))
		}
	}
	v := h.formView(tx, mode)
	v.Error = errMsg
	if v.CSRF == "" {
		h.internalError(w, r, "csrf token", errors.New("cannot sign a csrf token"))
		return
	}
	v.Back = h.returnURL(r, tx.st.ReturnURL)
	stateQuery := h.prefix + "mfa?state=" + url.QueryEscape(tx.token)
	if mode == formRecovery {
		v.Title = c.get("recovery_title")
		switch {
		case offerTOTP:
			v.AltLink, v.AltLinkText = stateQuery, c.get("use_totp")
		case len(usable) > 0:
			v.AltLink, v.AltLinkText = stateQuery, c.get("use_passkey")
		}
		left, err := h.recoveryCodesLeft(ctx, tx.id.User)
		if err != nil {
			h.storeDown(w, r, "count recovery codes", err)
			return
		}
		if left == 0 {
			v.Notice = c.get("recovery_none")
		} else {
			v.Notice = c.plural("recovery_left", left)
		}
		h.render(w, r, status, "recovery", v)
		return
	}
	if len(usable) > 0 {
		pk, err := h.passkeyLoginForm(r, tx, usable)
		if err != nil && !offerTOTP {
			h.internalError(w, r, "passkey options", err)
			return
		} else if err != nil {
			h.log.LogAttrs(ctx, slog.LevelError, "mfa step: cannot offer the user's passkeys",
				slog.String("user", tx.id.User), slog.String("error", err.Error()), requestID(r))
		}
		v.PK = pk
	}
	v.ShowCode = offerTOTP
	switch {
	case v.PK != nil && offerTOTP:
		v.Title = c.get("verify_any_title")
	case v.PK != nil:
		v.Title = c.get("passkey_verify_title")
	default:
		v.Title = c.get("verify_title")
	}
	if offerRecovery {
		v.AltLink, v.AltLinkText = stateQuery+"&method="+formRecovery, c.get("use_recovery")
	}
	h.render(w, r, status, "verify", v)
}

// formView fills the fields every code form has.
func (h *Handler) formView(tx transaction, form string) *view {
	csrf, err := h.csrfToken(tx.id.User, tx.bind, form, tx.st.ReturnURL)
	if err != nil {
		csrf = ""
	}
	return &view{
		Action:       h.prefix + "mfa",
		State:        tx.token,
		CSRF:         csrf,
		Method:       form,
		Remember:     tx.st.Requirement.AllowRemember,
		RememberDays: int(h.rememberFor / (24 * time.Hour)),
		Account:      tx.id.Account,
	}
}

// showEnrol renders the enrolment page, with the pending secret of this
// user and state (made on first view).
func (h *Handler) showEnrol(w http.ResponseWriter, r *http.Request, tx transaction, errMsg string, status int) {
	ctx := r.Context()
	if !h.enrolAllowed(tx.id) {
		h.log.LogAttrs(ctx, slog.LevelInfo, "mfa step: enrolment refused outside the enrolment networks",
			slog.String("user", tx.id.User), slog.String("client_ip", tx.id.ClientIP), requestID(r))
		h.message(w, r, http.StatusForbidden, "enrol_network_title", "enrol_network_body", "", "")
		return
	}
	c := h.tr(r)
	offerTOTP := h.offers(tx, session.FactorOTP)
	offerPasskey := h.offersPasskeys(r, tx)
	if !offerTOTP && !offerPasskey {
		h.log.LogAttrs(ctx, slog.LevelWarn, "mfa step: no factor the requirement accepts can be enrolled here",
			slog.String("user", tx.id.User), slog.String("provider", tx.st.Requirement.Provider),
			slog.Any("factors", tx.st.Requirement.Factors), requestID(r))
		h.message(w, r, http.StatusNotImplemented, "unavailable_title", "unavailable_body", "", "")
		return
	}
	v := h.formView(tx, formEnrol)
	if v.CSRF == "" {
		h.internalError(w, r, "csrf token", errors.New("cannot sign a csrf token"))
		return
	}
	v.Error = errMsg
	v.Back = h.returnURL(r, tx.st.ReturnURL)
	if offerTOTP {
		p, err := h.pending(ctx, tx.id.User, tx.id.Account, tx.bind, tx.st.ExpiresAt.Sub(h.now()))
		if err != nil {
			h.internalError(w, r, "pending enrolment", err)
			return
		}
		uri, err := h.otpauthURL(p)
		if err != nil {
			h.internalError(w, r, "key uri", err)
			return
		}
		img, err := qrPNG(uri)
		if err != nil {
			h.internalError(w, r, "qr code", err)
			return
		}
		v.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(img))
		v.QRSize = 200
		v.OTPAuth = template.URL(uri)
		v.Secret = groupSecret(p.Secret)
		v.Account = p.Account
	}
	if offerPasskey {
		pk, err := h.passkeyRegisterForm(r, tx.id, tx.bind, formWebAuthnEnrol, "method", tx.st.ReturnURL, nil)
		if err != nil {
			h.internalError(w, r, "passkey options", err)
			return
		}
		v.PK = pk
	}
	switch {
	case offerTOTP && offerPasskey:
		v.Title = c.get("enrol_choice_title")
	case offerPasskey:
		v.Title = c.get("passkey_enrol_title")
	default:
		v.Title = c.get("enrol_title")
	}
	h.render(w, r, status, "enrol", v)
}

// enrolPost confirms a pending enrolment with a code.
func (h *Handler) enrolPost(w http.ResponseWriter, r *http.Request, tx transaction) {
	ctx := r.Context()
	f, err := h.factorsOf(ctx, r, tx.id.User)
	switch {
	case err != nil:
		h.storeDown(w, r, "load factors", err)
		return
	case f.totpBroken != nil:
		h.factorBroken(w, r, tx.id, f.totpBroken)
		return
	case f.any():
		// Set up meanwhile (another tab): verify instead, never replace.
		h.showStep(w, r, tx, formTOTP, h.tr(r).get("err_already_enrolled"), http.StatusConflict)
		return
	}
	if !h.enrolAllowed(tx.id) {
		h.showEnrol(w, r, tx, "", http.StatusForbidden)
		return
	}
	if !h.offers(tx, session.FactorOTP) {
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
		return
	}
	p, err := h.loadPending(ctx, tx.id.User, tx.bind)
	if errors.Is(err, session.ErrNotFound) {
		h.message(w, r, http.StatusGone, "expired_title", "expired_body", h.returnURL(r, tx.st.ReturnURL), "start_again")
		return
	} else if err != nil {
		h.storeDown(w, r, "load pending enrolment", err)
		return
	}
	msg, status, ok := h.checkCode(w, r, tx, factorLabelTOTP, "err_enrol_code_wrong", func(code string) (int64, bool) {
		return matchTOTP(p.Secret, code, h.now())
	})
	if !ok {
		if msg != "" {
			h.showEnrol(w, r, tx, msg, status)
		}
		return
	}
	// The state pays for one enrolment: consume it before storing.
	wctx := contextWithoutCancel(r)
	if !h.consume(w, r, tx) {
		return
	}
	if err := h.storeTOTP(wctx, tx.id.User, p.Secret); err != nil {
		h.internalError(w, r, "store authenticator", err)
		return
	}
	codes, ok := h.firstRecoveryCodes(wctx, w, r, tx.id.User)
	if !ok {
		return
	}
	if err := h.store.Delete(wctx, pendingKey(tx.id.User, tx.bind)); err != nil {
		h.log.LogAttrs(ctx, slog.LevelWarn, "mfa step: cannot delete a pending enrolment (it expires on its own)",
			slog.String("error", err.Error()), requestID(r))
	}
	h.metrics.enrolments.Inc()
	h.log.LogAttrs(ctx, slog.LevelInfo, "mfa authenticator enrolled",
		slog.String("user", tx.id.User), slog.String("client_ip", tx.id.ClientIP), requestID(r))
	h.audit(r, AuditEvent{Name: AuditEnrolled, User: tx.id.User, ClientIP: tx.id.ClientIP, Factor: session.FactorOTP})
	h.finish(w, r, tx, session.FactorOTP, codes)
}

// totpPost verifies an authenticator code.
func (h *Handler) totpPost(w http.ResponseWriter, r *http.Request, tx transaction) {
	ctx := r.Context()
	rec, err := h.loadTOTP(ctx, tx.id.User)
	switch {
	case errors.Is(err, errNoFactor):
		h.showStep(w, r, tx, formTOTP, "", http.StatusOK)
		return
	case errors.Is(err, session.ErrMalformed):
		h.factorBroken(w, r, tx.id, err)
		return
	case err != nil:
		h.storeDown(w, r, "load authenticator", err)
		return
	}
	secret, err := h.openTOTP(tx.id.User, rec)
	if err != nil {
		h.factorBroken(w, r, tx.id, err)
		return
	}
	msg, status, ok := h.checkCode(w, r, tx, factorLabelTOTP, "err_code_wrong", func(code string) (int64, bool) {
		return matchTOTP(secret, code, h.now())
	})
	if !ok {
		if msg != "" {
			h.showStep(w, r, tx, formTOTP, msg, status)
		}
		return
	}
	if err := h.resealIfOld(contextWithoutCancel(r), tx.id.User, secret, rec); err != nil {
		h.log.LogAttrs(ctx, slog.LevelWarn, "mfa step: cannot seal the authenticator with the newest key",
			slog.String("user", tx.id.User), slog.String("error", err.Error()), requestID(r))
	}
	if !h.consume(w, r, tx) {
		return
	}
	h.finish(w, r, tx, session.FactorOTP, nil)
}

// recoveryPost verifies a recovery code.
func (h *Handler) recoveryPost(w http.ResponseWriter, r *http.Request, tx transaction) {
	ctx := r.Context()
	// Recovery codes are also the way out of a broken authenticator.
	f, err := h.factorsOf(ctx, r, tx.id.User)
	switch {
	case err != nil:
		h.storeDown(w, r, "load factors", err)
		return
	case !f.any() || !h.offers(tx, session.FactorRecoveryCode):
		h.showStep(w, r, tx, formTOTP, "", http.StatusOK)
		return
	}
	if ok := h.checkRecovery(w, r, tx); !ok {
		return
	}
	if !h.consume(w, r, tx) {
		return
	}
	h.finish(w, r, tx, session.FactorRecoveryCode, nil)
}

// checkRecovery runs the recovery-code form through the limits. It
// renders the page itself when it returns false.
func (h *Handler) checkRecovery(w http.ResponseWriter, r *http.Request, tx transaction) bool {
	ctx := r.Context()
	locked, err := h.limits.lockedFor(ctx, tx.id)
	if err != nil {
		h.storeDown(w, r, "read lockout", err)
		return false
	}
	if locked > 0 {
		h.metrics.verifications.WithLabelValues(factorLabelRecovery, resultLocked).Inc()
		h.showStep(w, r, tx, formRecovery, h.tr(r).get("err_locked", h.tr(r).duration(locked)), http.StatusTooManyRequests)
		return false
	}
	raw := r.PostForm.Get("code")
	if raw == "" {
		h.showStep(w, r, tx, formRecovery, h.tr(r).get("err_recovery_empty"), http.StatusOK)
		return false
	}
	a, locked, err := h.limits.admit(contextWithoutCancel(r), tx.id)
	if err != nil {
		h.storeDown(w, r, "count attempt", err)
		return false
	}
	if locked > 0 {
		h.metrics.verifications.WithLabelValues(factorLabelRecovery, resultLocked).Inc()
		h.showStep(w, r, tx, formRecovery, h.tr(r).get("err_locked", h.tr(r).duration(locked)), http.StatusTooManyRequests)
		return false
	}
	ok := false
	if canon, valid := normalizeRecovery(raw); valid {
		ok, err = h.useRecoveryCode(contextWithoutCancel(r), tx.id.User, canon)
		if err != nil {
			h.storeDown(w, r, "use recovery code", err)
			return false
		}
	}
	if !ok {
		msg, status := h.countFailure(r, tx, a, factorLabelRecovery, resultFailure, "err_recovery_wrong")
		h.showStep(w, r, tx, formRecovery, msg, status)
		return false
	}
	h.succeeded(r, tx, a, factorLabelRecovery, session.FactorRecoveryCode)
	return true
}

// checkCode runs a code form through the limits and match, which returns
// the time step a code belongs to, and claims the step. On failure it
// returns the message to show with the form (wrongID for a wrong code)
// and its status; msg is "" when it already rendered a page.
func (h *Handler) checkCode(w http.ResponseWriter, r *http.Request, tx transaction, factor, wrongID string, match func(code string) (int64, bool)) (msg string, status int, ok bool) {
	ctx := r.Context()
	locked, err := h.limits.lockedFor(ctx, tx.id)
	if err != nil {
		h.storeDown(w, r, "read lockout", err)
		return "", 0, false
	}
	if locked > 0 {
		h.metrics.verifications.WithLabelValues(factor, resultLocked).Inc()
		return h.tr(r).get("err_locked", h.tr(r).duration(locked)), http.StatusTooManyRequests, false
	}
	raw := r.PostForm.Get("code")
	if raw == "" {
		return h.tr(r).get("err_code_empty"), http.StatusOK, false
	}
	a, locked, err := h.limits.admit(contextWithoutCancel(r), tx.id)
	if err != nil {
		h.storeDown(w, r, "count attempt", err)
		return "", 0, false
	}
	if locked > 0 {
		h.metrics.verifications.WithLabelValues(factor, resultLocked).Inc()
		return h.tr(r).get("err_locked", h.tr(r).duration(locked)), http.StatusTooManyRequests, false
	}
	var step int64
	code, valid := normalizeTOTP(raw)
	if valid {
		step, valid = match(code)
	}
	if !valid {
		msg, status := h.countFailure(r, tx, a, factor, resultFailure, wrongID)
		return msg, status, false
	}
	fresh, err := h.claimStep(contextWithoutCancel(r), tx.id.User, step)
	if err != nil {
		h.storeDown(w, r, "claim time step", err)
		return "", 0, false
	}
	if !fresh {
		msg, status := h.countFailure(r, tx, a, factor, resultReplay, "err_code_reused")
		return msg, status, false
	}
	h.succeeded(r, tx, a, factor, session.FactorOTP)
	return "", 0, true
}

// countFailure reports a wrong or replayed code, already counted by
// admit, and returns the message for the form: msgID followed by the
// attempts left, or the pause.
func (h *Handler) countFailure(r *http.Request, tx transaction, a attempt, factor, result, msgID string) (msg string, status int) {
	h.metrics.verifications.WithLabelValues(factor, result).Inc()
	left, paused, started := h.limits.failed(r.Context(), a, factor)
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "mfa verification failed",
		slog.String("user", tx.id.User), slog.String("client_ip", tx.id.ClientIP),
		slog.String("factor", factor), slog.String("result", result), slog.Int("left", left), requestID(r))
	h.audit(r, AuditEvent{Name: AuditFailed, User: tx.id.User, ClientIP: tx.id.ClientIP, Factor: auditFactor(factor), Result: result})
	for _, p := range started {
		h.audit(r, AuditEvent{Name: AuditLocked, User: tx.id.User, ClientIP: tx.id.ClientIP, Factor: auditFactor(factor),
			Scope: p.scope, Failures: p.failures, Pause: p.pause})
	}
	switch {
	case paused > 0:
		return h.tr(r).get("err_locked", h.tr(r).duration(paused)), http.StatusTooManyRequests
	case left > 0:
		return h.tr(r).get(msgID) + " " + h.tr(r).plural("attempts_left", left), http.StatusOK
	default:
		return h.tr(r).get(msgID), http.StatusOK
	}
}

// succeeded counts a good answer (factor is the metric's label, proven the
// factor the answer proves) and clears the user's failures.
func (h *Handler) succeeded(r *http.Request, tx transaction, a attempt, factor, proven string) {
	h.metrics.verifications.WithLabelValues(factor, resultSuccess).Inc()
	if err := h.limits.succeeded(contextWithoutCancel(r), a); err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelWarn, "mfa step: cannot clear failures",
			slog.String("user", tx.id.User), slog.String("error", err.Error()), requestID(r))
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "mfa verification succeeded",
		slog.String("user", tx.id.User), slog.String("client_ip", tx.id.ClientIP), slog.String("factor", factor), requestID(r))
	h.audit(r, AuditEvent{Name: AuditVerified, User: tx.id.User, ClientIP: tx.id.ClientIP, Factor: proven})
}

// consume uses the state up. Of several requests racing with one state,
// exactly one gets true; the others see the "already used" page.
func (h *Handler) consume(w http.ResponseWriter, r *http.Request, tx transaction) bool {
	if _, err := h.m.ConsumeState(contextWithoutCancel(r), tx.token, tx.id.User); err != nil {
		h.stateError(w, r, tx.id, err, tx.st.ReturnURL)
		return false
	}
	return true
}

// finish sets the cookies the step pays for and sends the browser back:
// a 303 to the return URL, or the recovery codes page with a link to it.
// factor is what the user proved with the authenticator app's form (the
// authenticator or a recovery code); for a Duo requirement, reached only
// through the fallback, the session also records that it stood in for
// Duo, and the browser is not remembered.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, tx transaction, factor string, codes []string) {
	if tx.st.Requirement.Provider == providerDuo {
		h.complete(w, r, tx, []string{factor, session.FactorDuoFallback}, false, codes)
		return
	}
	h.complete(w, r, tx, []string{factor}, r.PostForm.Get("remember") == "1", codes)
}

// complete is finish with the proofs and the user's remember choice given
// (Duo's comes from before the trip to Duo); remembering is honoured only
// when the rule allows it. The new MFA session carries what the browser's
// current session proves on this realm.
func (h *Handler) complete(w http.ResponseWriter, r *http.Request, tx transaction, factors []string, remember bool, codes []string) {
	ctx := contextWithoutCancel(r)
	mfaName, _, _ := h.m.CookieNames()
	g := session.Grant{User: tx.id.User, SID: tx.id.SID, Realm: h.realms.Of(r.Host), Factors: factors, UserAgent: r.UserAgent()}
	if old, err := r.Cookie(mfaName); err == nil {
		g.Carry = old.Value
	}
	c, _, err := h.m.IssueMFASession(ctx, g)
	if err != nil {
		h.internalError(w, r, "issue mfa session", err)
		return
	}
	http.SetCookie(w, c)
	// Honoured only when the rule allows it, whatever the form says, and
	// only for a second factor.
	if tx.st.Requirement.AllowRemember && remember && slices.ContainsFunc(factors, session.IsFactor) {
		c, _, err := h.m.IssueRemember(ctx, g)
		if err != nil {
			// The step succeeded; the browser will be asked again next time.
			h.log.LogAttrs(ctx, slog.LevelWarn, "mfa step: cannot remember the browser",
				slog.String("user", tx.id.User), slog.String("error", err.Error()), requestID(r))
		} else {
			http.SetCookie(w, c)
		}
	}
	dest := h.returnURL(r, tx.st.ReturnURL)
	if codes != nil {
		h.render(w, r, http.StatusOK, "codes", &view{Title: h.tr(r).get("codes_title"), Codes: codes, Continue: dest})
		return
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// factorBroken renders the page for an authenticator that exists but
// cannot be read (corrupt record, sealed with a dropped key).
func (h *Handler) factorBroken(w http.ResponseWriter, r *http.Request, id identity, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelError, "mfa step: authenticator cannot be read",
		slog.String("user", id.User), slog.String("error", err.Error()), requestID(r))
	h.message(w, r, http.StatusInternalServerError, "factor_broken_title", "factor_broken_body", "", "")
}
