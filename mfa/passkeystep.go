package mfa

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// factorSet is what a user has enrolled, as the step sees it on one host.
type factorSet struct {
	// totp: an authenticator app is enrolled; totpBroken, when not nil,
	// says why it cannot be read.
	totp       bool
	totpBroken error
	// passkeys are the credentials of this host's relying party; others
	// counts those of other relying parties.
	passkeys []passkey
	others   int
}

// any reports whether the user enrolled anything: then the step verifies
// and never enrols (a new factor is added from the factors page, after a
// verification).
func (f factorSet) any() bool { return f.totp || len(f.passkeys) > 0 || f.others > 0 }

// factorsOf loads what user has enrolled, for r's host.
func (h *Handler) factorsOf(ctx context.Context, r *http.Request, user string) (factorSet, error) {
	var f factorSet
	switch _, err := h.loadTOTP(ctx, user); {
	case err == nil:
		f.totp = true
	case errors.Is(err, errNoFactor):
	case errors.Is(err, session.ErrMalformed):
		f.totp, f.totpBroken = true, err
	default:
		return f, err
	}
	all, err := h.loadPasskeys(ctx, user, "")
	if err != nil {
		return f, err
	}
	rpID, _, ok := h.relyingParty(r)
	for _, p := range all {
		if ok && p.RPID == rpID {
			f.passkeys = append(f.passkeys, p)
		} else {
			f.others++
		}
	}
	return f, nil
}

// offers reports whether the step may accept factor for tx: the
// requirement table with the requirement's allowed list. Under a Duo
// requirement the step is reached only through the fallback, where the
// authenticator app and its recovery codes stand in.
func (h *Handler) offers(tx transaction, factor string) bool {
	req := tx.st.Requirement
	if req.Provider == providerDuo {
		return factor == session.FactorOTP || factor == session.FactorRecoveryCode
	}
	if (factor == session.FactorWebAuthnPlatform || factor == session.FactorWebAuthnRoaming) && h.wa.off {
		return false
	}
	return session.FactorMeets(req.Provider, req.Factors, factor, false)
}

// offersPasskeys reports whether some kind of passkey may be enrolled for
// tx on r's host.
func (h *Handler) offersPasskeys(r *http.Request, tx transaction) bool {
	if _, _, ok := h.relyingParty(r); !ok {
		return false
	}
	return h.offers(tx, session.FactorWebAuthnPlatform) || h.offers(tx, session.FactorWebAuthnRoaming)
}

// usablePasskeys are the credentials of f that tx accepts.
func (h *Handler) usablePasskeys(tx transaction, f factorSet) []passkey {
	var out []passkey
	for _, p := range f.passkeys {
		if h.offers(tx, p.Factor) {
			out = append(out, p)
		}
	}
	return out
}

// passkeyView is a form that runs a WebAuthn ceremony in the browser
// (the page's script) and posts its answer in the "credential" field.
type passkeyView struct {
	// Mode is "create" (registration) or "get" (an assertion).
	Mode string
	// Options are the ceremony's options, JSON.
	Options string
	CSRF    string
	// Field and Value name the form's kind: "method" in the step,
	// "action" on the factors page.
	Field, Value string
	// AskName asks for the new credential's name.
	AskName bool
	Submit  string
}

// passkeyLoginForm begins an assertion with creds for tx.
func (h *Handler) passkeyLoginForm(r *http.Request, tx transaction, creds []passkey) (*passkeyView, error) {
	opts, err := h.beginLogin(r, tx.id.User, tx.bind, creds)
	if err != nil {
		return nil, err
	}
	csrf, err := h.csrfToken(tx.id.User, tx.bind, formWebAuthn, tx.st.ReturnURL)
	if err != nil {
		return nil, err
	}
	return &passkeyView{Mode: "get", Options: opts, CSRF: csrf, Field: "method", Value: formWebAuthn, Submit: h.tr(r).get("passkey_verify_submit")}, nil
}

// passkeyRegisterForm begins a registration for user, bound to bind
// (a state, or the factors page) and form.
func (h *Handler) passkeyRegisterForm(r *http.Request, id identity, bind, form, field, ret string, have []passkey) (*passkeyView, error) {
	opts, err := h.beginRegistration(r, id.User, id.Account, bind, form, have)
	if err != nil {
		return nil, err
	}
	csrf, err := h.csrfToken(id.User, bind, form, ret)
	if err != nil {
		return nil, err
	}
	return &passkeyView{Mode: "create", Options: opts, CSRF: csrf, Field: field, Value: form, AskName: true, Submit: h.tr(r).get("passkey_register_submit")}, nil
}

// passkeyEnrolPost registers a first factor as a passkey.
func (h *Handler) passkeyEnrolPost(w http.ResponseWriter, r *http.Request, tx transaction) {
	ctx := r.Context()
	f, err := h.factorsOf(ctx, r, tx.id.User)
	if err != nil {
		h.storeDown(w, r, "load factors", err)
		return
	}
	if f.any() {
		h.showStep(w, r, tx, formTOTP, h.tr(r).get("err_already_enrolled"), http.StatusConflict)
		return
	}
	if !h.enrolAllowed(tx.id) {
		h.showEnrol(w, r, tx, "", http.StatusForbidden)
		return
	}
	if !h.offersPasskeys(r, tx) {
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
		return
	}
	name, ok := h.passkeyName(h.tr(r), r.PostForm.Get("name"), 0)
	if !ok {
		h.showEnrol(w, r, tx, h.tr(r).get("err_passkey_name"), http.StatusOK)
		return
	}
	p, err := h.finishRegistration(r, tx.id.User, tx.bind, formWebAuthnEnrol, name)
	if errors.Is(err, errPasskeyRefused) {
		h.passkeyRefused(r, tx.id, "register", err)
		h.showEnrol(w, r, tx, h.tr(r).get("err_passkey_register"), http.StatusOK)
		return
	} else if err != nil {
		h.internalError(w, r, "passkey registration", err)
		return
	}
	if !h.offers(tx, p.Factor) {
		h.showEnrol(w, r, tx, h.tr(r).get("err_passkey_kind"), http.StatusOK)
		return
	}
	wctx := contextWithoutCancel(r)
	if !h.consume(w, r, tx) {
		return
	}
	if err := h.storePasskey(wctx, tx.id.User, p); err != nil {
		h.internalError(w, r, "store passkey", err)
		return
	}
	codes, ok := h.firstRecoveryCodes(wctx, w, r, tx.id.User)
	if !ok {
		return
	}
	h.metrics.enrolments.Inc()
	h.log.LogAttrs(ctx, slog.LevelInfo, "mfa passkey enrolled",
		slog.String("user", tx.id.User), slog.String("factor", p.Factor), slog.String("client_ip", tx.id.ClientIP), requestID(r))
	h.audit(r, AuditEvent{Name: AuditEnrolled, User: tx.id.User, ClientIP: tx.id.ClientIP, Factor: p.Factor})
	h.finish(w, r, tx, p.Factor, codes)
}

// passkeyPost verifies an assertion of one of the user's passkeys.
func (h *Handler) passkeyPost(w http.ResponseWriter, r *http.Request, tx transaction) {
	ctx := r.Context()
	locked, err := h.limits.lockedFor(ctx, tx.id)
	if err != nil {
		h.storeDown(w, r, "read lockout", err)
		return
	}
	if locked > 0 {
		h.metrics.verifications.WithLabelValues(factorLabelWebAuthn, resultLocked).Inc()
		h.showStep(w, r, tx, formTOTP, h.tr(r).get("err_locked", h.tr(r).duration(locked)), http.StatusTooManyRequests)
		return
	}
	f, err := h.factorsOf(ctx, r, tx.id.User)
	if err != nil {
		h.storeDown(w, r, "load factors", err)
		return
	}
	usable := h.usablePasskeys(tx, f)
	if len(usable) == 0 {
		h.showStep(w, r, tx, formTOTP, "", http.StatusOK)
		return
	}
	// Counted before the answer is checked, like a code: concurrent
	// answers cannot check more than the limit.
	a, locked, err := h.limits.admit(contextWithoutCancel(r), tx.id)
	if err != nil {
		h.storeDown(w, r, "count attempt", err)
		return
	}
	if locked > 0 {
		h.metrics.verifications.WithLabelValues(factorLabelWebAuthn, resultLocked).Inc()
		h.showStep(w, r, tx, formTOTP, h.tr(r).get("err_locked", h.tr(r).duration(locked)), http.StatusTooManyRequests)
		return
	}
	p, err := h.finishLogin(r, tx.id.User, tx.bind, usable)
	if errors.Is(err, errPasskeyRefused) {
		h.passkeyRefused(r, tx.id, "verify", err)
		msg, status := h.countFailure(r, tx, a, factorLabelWebAuthn, resultFailure, "err_passkey_failed")
		h.showStep(w, r, tx, formTOTP, msg, status)
		return
	} else if err != nil {
		h.storeDown(w, r, "verify passkey", err)
		return
	}
	h.succeeded(r, tx, a, factorLabelWebAuthn, p.Factor)
	if !h.consume(w, r, tx) {
		return
	}
	h.finish(w, r, tx, p.Factor, nil)
}

// passkeyRefused logs why a ceremony answer was refused: the reason
// only, never the credential, challenge or signature.
func (h *Handler) passkeyRefused(r *http.Request, id identity, op string, err error) {
	level, msg := slog.LevelInfo, "mfa passkey refused"
	if errors.Is(err, errCloned) {
		level, msg = slog.LevelWarn, "mfa passkey refused: its sign counter went backwards (a cloned authenticator?)"
	}
	h.log.LogAttrs(r.Context(), level, msg,
		slog.String("op", op), slog.String("user", id.User), slog.String("client_ip", id.ClientIP),
		slog.String("reason", refusalReason(err)), requestID(r))
}

// refusalReason is a short reason for the log.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, errCloned):
		return "sign_counter"
	case err == nil:
		return ""
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// passkeyDate formats a unix time for the factors page, or "never".
func passkeyDate(c catalog, unix int64) string {
	if unix <= 0 {
		return c.get("never")
	}
	return c.date(time.Unix(unix, 0))
}

// sortedByCreated returns ps oldest first.
func sortedByCreated(ps []passkey) []passkey {
	out := slices.Clone(ps)
	slices.SortStableFunc(out, func(a, b passkey) int { return int(a.Created - b.Created) })
	return out
}
