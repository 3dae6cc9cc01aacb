package mfa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// The CSRF forms of the factors page, also the values of its "action"
// field: reset the factors, or make new recovery codes.
const (
	formReset = "reset"
	formCodes = "recovery_codes"
)

// ResetResult says what [ResetFactors] removed.
type ResetResult struct {
	// Authenticators is the number of authenticator apps removed (0 or 1).
	Authenticators int `json:"authenticators"`
	// RecoveryCodes is the number of unused recovery codes removed.
	RecoveryCodes int `json:"recovery_codes"`
	// Sessions is the number of MFA sessions and remembered browsers
	// revoked.
	Sessions int `json:"sessions"`
}

// ResetFactors removes the user's authenticator and recovery codes and
// revokes their MFA sessions and remembered browsers, so that the next
// step-up enrols afresh (subject to [Options.EnrollNetworks]). It backs
// the factors page and `stepup factors reset`. It stops at the first
// store error, returning what was removed until then; running it again
// finishes the job.
func ResetFactors(ctx context.Context, store session.Store, m *session.Manager, user string) (ResetResult, error) {
	var res ResetResult
	if user == "" {
		return res, errors.New("reset factors: empty user")
	}
	var err error
	if res.Authenticators, err = store.DeleteUser(ctx, user, KindFactor, ""); err != nil {
		return res, fmt.Errorf("reset factors: %w", err)
	}
	if res.RecoveryCodes, err = store.DeleteUser(ctx, user, KindRecoveryCode, ""); err != nil {
		return res, fmt.Errorf("reset factors: %w", err)
	}
	if res.Sessions, err = m.Revoke(ctx, user, ""); err != nil {
		return res, fmt.Errorf("reset factors: %w", err)
	}
	return res, nil
}

// factorsGet shows the user's sign-in methods and, after a recent
// verification, the reset form.
func (h *Handler) factorsGet(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identify(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	rec, err := h.loadTOTP(ctx, id.User)
	enrolled := err == nil
	// New recovery codes need a readable authenticator to verify with.
	readable := err == nil
	switch {
	case errors.Is(err, errNoFactor):
	case errors.Is(err, session.ErrMalformed):
		// Broken: resetting is exactly what helps; a recovery code still
		// proves the user.
		enrolled = true
	case err != nil:
		h.storeDown(w, r, "load authenticator", err)
		return
	}
	if enrolled && !h.freshlyVerified(w, r, id, false) {
		return
	}
	v := &view{Title: h.msgs.get("factors_title"), Action: h.prefix + "factors"}
	if !enrolled {
		v.Lines = append(v.Lines, h.msgs.get("factors_totp_off"))
		h.render(w, r, http.StatusOK, "factors", v)
		return
	}
	if rec.Created > 0 {
		v.Lines = append(v.Lines, h.msgs.get("factors_totp_on", h.msgs.date(time.Unix(rec.Created, 0))))
	}
	left, err := h.recoveryCodesLeft(ctx, id.User)
	if err != nil {
		h.storeDown(w, r, "count recovery codes", err)
		return
	}
	switch {
	case left == 0 && readable:
		v.Lines = append(v.Lines, h.msgs.get("factors_recovery_none"))
	case left == 0:
		v.Lines = append(v.Lines, h.msgs.get("recovery_none"))
	default:
		v.Lines = append(v.Lines, h.msgs.plural("recovery_left", left))
	}
	s, err := h.m.ListUser(ctx, id.User)
	if err != nil {
		h.storeDown(w, r, "list sessions", err)
		return
	}
	v.Lines = append(v.Lines, h.msgs.plural("factors_devices", len(s.Devices)))
	v.CanReset = true
	if !h.enrolAllowed(id) {
		v.ResetNote = h.msgs.get("factors_reset_network")
	}
	if v.CSRF, err = h.csrfToken(id.User, bindFactors, formReset, ""); err != nil {
		h.internalError(w, r, "csrf token", err)
		return
	}
	if readable {
		v.CanRegenerate = true
		if v.CSRFCodes, err = h.csrfToken(id.User, bindFactors, formCodes, ""); err != nil {
			h.internalError(w, r, "csrf token", err)
			return
		}
	}
	h.render(w, r, http.StatusOK, "factors", v)
}

// factorsPost resets the user's factors, or makes new recovery codes
// (the form's "action": "reset", the default, or "recovery_codes").
func (h *Handler) factorsPost(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identify(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
		return
	}
	if !h.sameOrigin(r) {
		h.csrfRefused(w, r, id, "cross_origin")
		return
	}
	form := r.PostForm.Get("action")
	switch form {
	case "":
		form = formReset
	case formReset, formCodes:
	default:
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
		return
	}
	// The token names its form: a reset token cannot make codes, nor the
	// other way round.
	if _, ok := h.checkCSRF(r.PostForm.Get("csrf"), id.User, bindFactors, form); !ok {
		h.csrfRefused(w, r, id, "bad_token")
		return
	}
	if form == formCodes {
		h.regenerateCodes(w, r, id)
		return
	}
	if !h.freshlyVerified(w, r, id, false) {
		return
	}
	res, err := ResetFactors(contextWithoutCancel(r), h.store, h.m, id.User)
	if err != nil {
		h.internalError(w, r, "reset factors", err)
		return
	}
	h.metrics.resets.Inc()
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "mfa factors reset by the user",
		slog.String("user", id.User), slog.String("client_ip", id.ClientIP),
		slog.Int("authenticators", res.Authenticators), slog.Int("recovery_codes", res.RecoveryCodes),
		slog.Int("sessions", res.Sessions), requestID(r))
	mfaName, rememberName, _ := h.m.CookieNames()
	http.SetCookie(w, h.m.ClearCookie(mfaName))
	http.SetCookie(w, h.m.ClearCookie(rememberName))
	h.message(w, r, http.StatusOK, "factors_reset_done", "factors_reset_done_msg", "/", "go_to_app")
}

// regenerateCodes replaces the user's recovery codes with a new set and
// shows it once. It needs an MFA session from an authenticator code less
// than ReauthAfter ago: a recovery code (or another factor) does not
// mint new recovery codes.
func (h *Handler) regenerateCodes(w http.ResponseWriter, r *http.Request, id identity) {
	switch _, err := h.loadTOTP(r.Context(), id.User); {
	case errors.Is(err, errNoFactor):
		h.message(w, r, http.StatusConflict, "factors_title", "factors_codes_no_totp", "/", "go_to_app")
		return
	case errors.Is(err, session.ErrMalformed):
		h.factorBroken(w, r, id, err)
		return
	case err != nil:
		h.storeDown(w, r, "load authenticator", err)
		return
	}
	if !h.freshlyVerified(w, r, id, true) {
		return
	}
	codes, err := newRecoveryCodes(RecoveryCodeCount)
	if err == nil {
		err = h.replaceRecoveryCodes(contextWithoutCancel(r), id.User, codes)
	}
	if err != nil {
		h.internalError(w, r, "recovery codes", err)
		return
	}
	h.metrics.regenerations.Inc()
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "mfa recovery codes regenerated by the user",
		slog.String("user", id.User), slog.String("client_ip", id.ClientIP), requestID(r))
	h.render(w, r, http.StatusOK, "codes", &view{
		Title: h.msgs.get("codes_title"), Codes: codes, Continue: h.prefix + "factors", Regenerated: true,
	})
}

// freshlyVerified reports whether the request carries the user's MFA
// session, on this realm, with a proof by one of the user's own enrolled
// factors less than ReauthAfter old: the authenticator app, a recovery
// code (not when totpOnly: a recovery code does not mint new ones), a
// passkey. Duo, a custom MFA service or a completed redirect never
// qualify: they are not factors the user manages here. If not, it sends
// the browser through the MFA step (authenticator only, never
// remembered), back to the factors page, and returns false.
func (h *Handler) freshlyVerified(w http.ResponseWriter, r *http.Request, id identity, totpOnly bool) bool {
	ctx := r.Context()
	mfaName, _, _ := h.m.CookieNames()
	if c, err := r.Cookie(mfaName); err == nil {
		s, err := h.m.VerifyMFASession(ctx, c.Value, id.User, id.SID)
		if errors.Is(err, session.ErrStoreUnavailable) {
			h.storeDown(w, r, "verify mfa session", err)
			return false
		}
		if err == nil && s.Realm == h.realms.Of(r.Host) {
			for _, p := range s.Proofs {
				if ownFactor(p.Factor, totpOnly) && h.now().Sub(p.At) < h.reauth {
					return true
				}
			}
		}
	}
	self, ok := h.selfURL(r, "factors")
	if !ok {
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", "", "")
		return false
	}
	tok, err := h.m.NewState(ctx, session.State{
		User:        id.User,
		ClientID:    "stepup",
		Host:        session.CanonicalHost(r.Host),
		ReturnURL:   self,
		Requirement: session.Requirement{Provider: "google-authenticator"},
	})
	if err != nil {
		h.internalError(w, r, "new state", err)
		return false
	}
	http.Redirect(w, r, h.prefix+"mfa?state="+url.QueryEscape(tok), http.StatusSeeOther)
	return false
}

// selfURL is the absolute URL of a page of the step on this request's
// host.
func (h *Handler) selfURL(r *http.Request, page string) (string, bool) {
	scheme := "https"
	if (h.dev || loopbackHost(r.Host)) && r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
		scheme = "http"
	}
	u := scheme + "://" + r.Host + h.prefix + page
	return safeReturnURL(u, r.Host, h.dev)
}

// ownFactor reports whether factor is one the user enrolled with stepup
// and manages on the factors page.
func ownFactor(factor string, totpOnly bool) bool {
	switch factor {
	case session.FactorOTP, session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming:
		return true
	case session.FactorRecoveryCode:
		return !totpOnly
	}
	return false
}
