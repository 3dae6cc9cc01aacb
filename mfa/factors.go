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
// field: reset the factors, make new recovery codes, remove the
// authenticator app or one passkey, forget one remembered browser (and
// formWebAuthnAdd: register another passkey).
const (
	formReset         = "reset"
	formCodes         = "recovery_codes"
	formRemoveTOTP    = "remove_totp"
	formRemovePasskey = "remove_passkey"
	formForgetDevice  = "forget_device"
)

// ResetResult says what [ResetFactors] removed.
type ResetResult struct {
	// Authenticators is the number of authenticator apps removed (0 or 1).
	Authenticators int `json:"authenticators"`
	// Passkeys is the number of passkeys and security keys removed.
	Passkeys int `json:"passkeys"`
	// RecoveryCodes is the number of unused recovery codes removed.
	RecoveryCodes int `json:"recovery_codes"`
	// Sessions is the number of MFA sessions and remembered browsers
	// revoked.
	Sessions int `json:"sessions"`
}

// ResetFactors removes the user's authenticator, passkeys and recovery
// codes and revokes their MFA sessions and remembered browsers, so that
// the next step-up enrols afresh (subject to [Options.EnrollNetworks]). It
// backs the factors page and `stepup factors reset`. It stops at the first
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
	if res.Passkeys, err = store.DeleteUser(ctx, user, KindWebAuthn, ""); err != nil {
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

// factorItem is one line of the factors page: a passkey, the
// authenticator app or a remembered browser, with its remove link.
type factorItem struct {
	ID       string
	Name     string
	Kind     string
	Created  string
	LastUsed string
	// Remove is the confirmation page of its removal.
	Remove string
}

// factorsGet shows the user's sign-in methods and remembered browsers,
// after a recent verification, with a remove link for each, the forms
// that add a passkey and make new recovery codes, and the reset form.
// With ?confirm=<action>&id=<id> it shows the confirmation of a removal.
func (h *Handler) factorsGet(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identify(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	c := h.tr(r)
	f, err := h.factorsOf(ctx, r, id.User)
	if err != nil {
		h.storeDown(w, r, "load factors", err)
		return
	}
	v := &view{Title: c.get("factors_title"), Action: h.prefix + "factors", Back: "/"}
	if !f.any() {
		// Nothing to manage: the first factor is enrolled by the step.
		v.Lines = append(v.Lines, c.get("factors_totp_off"), c.get("factors_passkeys_none"))
		h.render(w, r, http.StatusOK, "factors", v)
		return
	}
	if !h.freshlyVerified(w, r, id, false) {
		return
	}
	if action := r.URL.Query().Get("confirm"); action != "" {
		h.confirmRemoval(w, r, id, action, r.URL.Query().Get("id"))
		return
	}
	if r.URL.Query().Get("added") == "1" {
		v.Notice = c.get("factors_passkey_added")
	}
	confirm := func(action, item string) string {
		q := url.Values{"confirm": {action}}
		if item != "" {
			q.Set("id", item)
		}
		return h.prefix + "factors?" + q.Encode()
	}
	if rec, err := h.loadTOTP(ctx, id.User); err == nil || f.totpBroken != nil {
		it := &factorItem{Name: c.get("factors_totp_name"), Remove: confirm(formRemoveTOTP, "")}
		if rec.Created > 0 {
			it.Created = c.date(time.Unix(rec.Created, 0))
		}
		v.TOTP = it
		if rec.Created > 0 {
			v.Lines = append(v.Lines, c.get("factors_totp_on", it.Created))
		}
	} else {
		v.Lines = append(v.Lines, c.get("factors_totp_off"))
	}
	all, err := h.loadPasskeys(ctx, id.User, "")
	if err != nil {
		h.storeDown(w, r, "load passkeys", err)
		return
	}
	for _, p := range all {
		kind := c.get("passkey_kind_roaming")
		if p.Factor == session.FactorWebAuthnPlatform {
			kind = c.get("passkey_kind_platform")
		}
		v.Passkeys = append(v.Passkeys, factorItem{
			ID: p.ID, Name: p.Name, Kind: kind, Created: passkeyDate(c, p.Created), LastUsed: passkeyDate(c, p.LastUsed),
			Remove: confirm(formRemovePasskey, p.ID),
		})
	}
	left, err := h.recoveryCodesLeft(ctx, id.User)
	if err != nil {
		h.storeDown(w, r, "count recovery codes", err)
		return
	}
	switch {
	case left == 0:
		v.Lines = append(v.Lines, c.get("factors_recovery_none"))
	default:
		v.Lines = append(v.Lines, c.plural("recovery_left", left))
	}
	s, err := h.m.ListUser(ctx, id.User)
	if err != nil {
		h.storeDown(w, r, "list sessions", err)
		return
	}
	v.Lines = append(v.Lines, c.plural("factors_devices", len(s.Devices)))
	for _, d := range s.Devices {
		ua := d.UserAgent
		if ua == "" {
			ua = c.get("device_unknown")
		}
		last := c.get("never")
		if !d.LastUsed.IsZero() {
			last = c.date(d.LastUsed)
		}
		v.Devices = append(v.Devices, factorItem{ID: d.ID, Name: ua, Created: c.date(d.Created), LastUsed: last, Remove: confirm(formForgetDevice, d.ID)})
	}
	v.CanReset = true
	if !h.enrolAllowed(id) {
		v.ResetNote = c.get("factors_reset_network")
	}
	if v.CSRF, err = h.csrfToken(id.User, bindFactors, formReset, ""); err != nil {
		h.internalError(w, r, "csrf token", err)
		return
	}
	v.CanRegenerate = true
	if v.CSRFCodes, err = h.csrfToken(id.User, bindFactors, formCodes, ""); err != nil {
		h.internalError(w, r, "csrf token", err)
		return
	}
	if _, _, ok := h.relyingParty(r); ok && len(all) < MaxPasskeys {
		pk, err := h.passkeyRegisterForm(r, id, bindFactors, formWebAuthnAdd, "action", "", f.passkeys)
		if err != nil {
			h.internalError(w, r, "passkey options", err)
			return
		}
		pk.Submit = c.get("factors_passkey_add_submit")
		v.PK = pk
	}
	h.render(w, r, http.StatusOK, "factors", v)
}

// confirmRemoval shows the confirmation page of a removal: what goes, a
// button that does it and a way back.
func (h *Handler) confirmRemoval(w http.ResponseWriter, r *http.Request, id identity, action, item string) {
	c := h.tr(r)
	v := &view{Action: h.prefix + "factors", Method: action, Item: item, Back: h.prefix + "factors", Continue: ""}
	switch action {
	case formReset:
		v.Title, v.Body, v.Submit = c.get("confirm_reset_title"), c.get("factors_reset_intro"), c.get("factors_reset_submit")
	case formRemoveTOTP:
		v.Title, v.Body, v.Submit = c.get("confirm_totp_title"), c.get("confirm_totp_body"), c.get("confirm_remove")
	case formRemovePasskey:
		p, err := h.loadPasskey(r.Context(), id.User, item)
		if err != nil {
			h.message(w, r, http.StatusNotFound, "factors_gone_title", "factors_gone_body", h.prefix+"factors", "back_to_factors")
			return
		}
		v.Title, v.Body, v.Submit = c.get("confirm_passkey_title", p.Name), c.get("confirm_passkey_body"), c.get("confirm_remove")
	case formForgetDevice:
		v.Title, v.Body, v.Submit = c.get("confirm_device_title"), c.get("confirm_device_body"), c.get("confirm_forget")
	default:
		h.message(w, r, http.StatusBadRequest, "bad_request_title", "bad_request_body", h.prefix+"factors", "back_to_factors")
		return
	}
	csrf, err := h.csrfToken(id.User, bindFactors, action, "")
	if err != nil {
		h.internalError(w, r, "csrf token", err)
		return
	}
	v.CSRF = csrf
	h.render(w, r, http.StatusOK, "confirm", v)
}

// loadPasskey returns one of the user's passkeys by record id.
func (h *Handler) loadPasskey(ctx context.Context, user, id string) (passkey, error) {
	if session.ValidateUserRecord(user, KindWebAuthn, id) != nil {
		return passkey{}, session.ErrNotFound
	}
	val, err := h.store.GetUser(ctx, user, KindWebAuthn, id)
	if err != nil {
		return passkey{}, err
	}
	return h.openPasskey(user, id, val)
}

// factorsPost carries out a form of the factors page (its "action":
// "reset", the default, "recovery_codes", "webauthn_add",
// "remove_totp", "remove_passkey" or "forget_device"). A removal without
// confirm=yes shows its confirmation page instead.
func (h *Handler) factorsPost(w http.ResponseWriter, r *http.Request) {
	id, ok := h.identifyForm(w, r)
	if !ok {
		return
	}
	form := r.PostForm.Get("action")
	switch form {
	case "":
		form = formReset
	case formReset, formCodes, formWebAuthnAdd, formRemoveTOTP, formRemovePasskey, formForgetDevice:
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
	item := r.PostForm.Get("id")
	if form != formWebAuthnAdd && r.PostForm.Get("confirm") != "yes" {
		h.confirmRemoval(w, r, id, form, item)
		return
	}
	switch form {
	case formWebAuthnAdd:
		h.addPasskey(w, r, id)
	case formRemoveTOTP, formRemovePasskey, formForgetDevice:
		h.removeItem(w, r, id, form, item)
	default:
		h.resetAll(w, r, id)
	}
}

// resetAll removes every factor of the user and their sessions.
func (h *Handler) resetAll(w http.ResponseWriter, r *http.Request, id identity) {
	res, err := ResetFactors(contextWithoutCancel(r), h.store, h.m, id.User)
	if err != nil {
		h.internalError(w, r, "reset factors", err)
		return
	}
	h.metrics.resets.Inc()
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "mfa factors reset by the user",
		slog.String("user", id.User), slog.String("client_ip", id.ClientIP),
		slog.Int("authenticators", res.Authenticators), slog.Int("passkeys", res.Passkeys), slog.Int("recovery_codes", res.RecoveryCodes),
		slog.Int("sessions", res.Sessions), requestID(r))
	h.audit(r, AuditEvent{Name: AuditFactorsReset, User: id.User, ClientIP: id.ClientIP, Removed: &res})
	if res.Sessions > 0 {
		h.audit(r, AuditEvent{Name: AuditSessionsRevoked, User: id.User, ClientIP: id.ClientIP, Removed: &ResetResult{Sessions: res.Sessions}})
	}
	mfaName, rememberName, _ := h.m.CookieNames()
	http.SetCookie(w, h.m.ClearCookie(mfaName))
	http.SetCookie(w, h.m.ClearCookie(rememberName))
	h.message(w, r, http.StatusOK, "factors_reset_done", "factors_reset_done_msg", "/", "go_to_app")
}

// removeItem removes the authenticator app or one passkey, or forgets one
// remembered browser. Removing the last factor is a reset: recovery codes
// of no factor and sessions proving it go too.
func (h *Handler) removeItem(w http.ResponseWriter, r *http.Request, id identity, form, item string) {
	ctx := contextWithoutCancel(r)
	var (
		n   int
		err error
	)
	switch form {
	case formRemoveTOTP:
		n, err = h.store.DeleteUser(ctx, id.User, KindFactor, factorTOTP)
	case formRemovePasskey:
		if session.ValidateUserRecord(id.User, KindWebAuthn, item) == nil {
			n, err = h.store.DeleteUser(ctx, id.User, KindWebAuthn, item)
		}
	case formForgetDevice:
		if session.ValidateUserRecord(id.User, session.KindDevice, item) == nil {
			n, err = h.store.DeleteUser(ctx, id.User, session.KindDevice, item)
		}
	}
	if err != nil {
		h.internalError(w, r, "remove "+form, err)
		return
	}
	if n == 0 {
		h.message(w, r, http.StatusNotFound, "factors_gone_title", "factors_gone_body", h.prefix+"factors", "back_to_factors")
		return
	}
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "mfa factors page: removed by the user",
		slog.String("user", id.User), slog.String("what", form), slog.String("client_ip", id.ClientIP), requestID(r))
	switch form {
	case formRemoveTOTP:
		h.audit(r, AuditEvent{Name: AuditAuthenticatorRemoved, User: id.User, ClientIP: id.ClientIP, Factor: session.FactorOTP})
	case formRemovePasskey:
		h.audit(r, AuditEvent{Name: AuditPasskeyRemoved, User: id.User, ClientIP: id.ClientIP, Device: item})
	case formForgetDevice:
		h.audit(r, AuditEvent{Name: AuditBrowserForgotten, User: id.User, ClientIP: id.ClientIP, Device: item})
	}
	if form != formForgetDevice {
		f, err := h.factorsOf(ctx, r, id.User)
		if err != nil {
			h.storeDown(w, r, "load factors", err)
			return
		}
		if !f.any() {
			h.resetAll(w, r, id)
			return
		}
	}
	http.Redirect(w, r, h.prefix+"factors", http.StatusSeeOther)
}

// addPasskey registers another passkey from the factors page.
func (h *Handler) addPasskey(w http.ResponseWriter, r *http.Request, id identity) {
	ctx := r.Context()
	c := h.tr(r)
	all, err := h.loadPasskeys(ctx, id.User, "")
	if err != nil {
		h.storeDown(w, r, "load passkeys", err)
		return
	}
	if len(all) >= MaxPasskeys {
		h.message(w, r, http.StatusConflict, "factors_title", "err_passkey_too_many", h.prefix+"factors", "back_to_factors")
		return
	}
	name, ok := h.passkeyName(c, r.PostForm.Get("name"), len(all))
	if !ok {
		h.message(w, r, http.StatusBadRequest, "factors_title", "err_passkey_name", h.prefix+"factors", "back_to_factors")
		return
	}
	p, err := h.finishRegistration(r, id.User, bindFactors, formWebAuthnAdd, name)
	if err == nil {
		err = h.storePasskey(contextWithoutCancel(r), id.User, p)
	}
	if errors.Is(err, errPasskeyRefused) {
		h.passkeyRefused(r, id, "add", err)
		h.message(w, r, http.StatusBadRequest, "factors_title", "err_passkey_register", h.prefix+"factors", "back_to_factors")
		return
	} else if err != nil {
		h.internalError(w, r, "add passkey", err)
		return
	}
	h.metrics.enrolments.Inc()
	h.log.LogAttrs(ctx, slog.LevelInfo, "mfa passkey added by the user",
		slog.String("user", id.User), slog.String("factor", p.Factor), slog.String("client_ip", id.ClientIP), requestID(r))
	h.audit(r, AuditEvent{Name: AuditPasskeyAdded, User: id.User, ClientIP: id.ClientIP, Factor: p.Factor})
	http.Redirect(w, r, h.prefix+"factors?added=1", http.StatusSeeOther)
}

// regenerateCodes replaces the user's recovery codes with a new set and
// shows it once. It needs an MFA session from the authenticator app or a
// passkey less than ReauthAfter ago: a recovery code (or a factor the
// user does not manage here) does not mint new recovery codes.
func (h *Handler) regenerateCodes(w http.ResponseWriter, r *http.Request, id identity) {
	switch f, err := h.factorsOf(r.Context(), r, id.User); {
	case err != nil:
		h.storeDown(w, r, "load factors", err)
		return
	case !f.any():
		h.message(w, r, http.StatusConflict, "factors_title", "factors_codes_no_totp", "/", "go_to_app")
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
	h.audit(r, AuditEvent{Name: AuditCodesRegenerated, User: id.User, ClientIP: id.ClientIP})
	h.render(w, r, http.StatusOK, "codes", &view{
		Title: h.tr(r).get("codes_title"), Codes: codes, Continue: h.prefix + "factors", Regenerated: true,
	})
}

// freshlyVerified reports whether the request carries the user's MFA
// session, on this realm, with a proof by one of the user's own enrolled
// factors less than ReauthAfter old: the authenticator app, a recovery
// code (not when totpOnly: a recovery code does not mint new ones), a
// passkey. Duo, a custom MFA service or a completed redirect never
// qualify: they are not factors the user manages here. If not, it sends
// the browser through the MFA step (the user's own factors only, never
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
		Requirement: session.Requirement{Provider: "any", Factors: ownFactors(totpOnly)},
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

// ownFactors lists the factors ownFactor accepts, for the requirement of
// a verification the factors page asks for.
func ownFactors(noRecovery bool) []string {
	out := []string{session.FactorOTP, session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming}
	if !noRecovery {
		out = append(out, session.FactorRecoveryCode)
	}
	return out
}
