package mfa

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepup-dev/stepup/session"
)

// KindWebAuthn holds the user's passkeys and security keys: one record
// per credential, named by a digest of the credential id.
const KindWebAuthn = "webauthn"

// Form methods of the passkey ceremonies (POST {prefix}mfa and the
// factors page's "action"); they are also their CSRF forms.
const (
	formWebAuthnEnrol = "webauthn_enrol" // the first factor, a passkey
	formWebAuthn      = "webauthn"       // verify with a passkey
	formWebAuthnAdd   = "webauthn_add"   // another passkey, from the factors page
)

// User verification preferences of [WebAuthnOptions].
const (
	UserVerificationPreferred   = "preferred"
	UserVerificationRequired    = "required"
	UserVerificationDiscouraged = "discouraged"
)

// Limits of the passkey records.
const (
	// MaxPasskeys bounds the credentials one user may register.
	MaxPasskeys = 20
	// maxPasskeyName bounds a credential's name, in characters.
	maxPasskeyName = 64
	// ceremonyTTL bounds the time between showing a ceremony's options
	// and posting its answer.
	ceremonyTTL = 10 * time.Minute
	// maxCredentialJSON bounds a posted credential.
	maxCredentialJSON = 12 << 10
)

// WebAuthnOptions configures passkeys and security keys.
type WebAuthnOptions struct {
	// Disabled turns passkeys off: the step offers the authenticator app
	// only (and verifies nothing else).
	Disabled bool
	// RPID is the relying party id credentials are bound to. Empty: the
	// protected host itself (each host has its own credentials). A parent
	// domain ("example.com") shares credentials between every host below
	// it; a host that is neither the domain nor below it offers no
	// passkeys. An IP address is never a relying party id: passkeys are
	// not offered on hosts that are IP addresses.
	RPID string
	// RPName is the name authenticators show; default the issuer.
	RPName string
	// UserVerification is the preference sent to authenticators:
	// "preferred" (default), "required" (an assertion without user
	// verification, a PIN or biometric, is refused) or "discouraged".
	UserVerification string
}

type webAuthnSetup struct {
	off    bool
	rpID   string
	rpName string
	uv     protocol.UserVerificationRequirement
}

func newWebAuthnSetup(o WebAuthnOptions, issuer string) (webAuthnSetup, error) {
	s := webAuthnSetup{off: o.Disabled, rpID: strings.ToLower(strings.TrimSuffix(o.RPID, ".")), rpName: o.RPName}
	var errs []error
	if s.rpID != "" {
		if net.ParseIP(s.rpID) != nil || !hostChars(s.rpID) || !strings.Contains(s.rpID, ".") && s.rpID != "localhost" {
			errs = append(errs, fmt.Errorf("webauthn rp id %q: must be a domain name", o.RPID))
		}
	}
	if s.rpName == "" {
		s.rpName = issuer
	}
	if len(s.rpName) > 64 || !printableText(s.rpName) {
		errs = append(errs, fmt.Errorf("webauthn rp name %q: must be 1-64 printable characters", s.rpName))
	}
	switch o.UserVerification {
	case "", UserVerificationPreferred:
		s.uv = protocol.VerificationPreferred
	case UserVerificationRequired:
		s.uv = protocol.VerificationRequired
	case UserVerificationDiscouraged:
		s.uv = protocol.VerificationDiscouraged
	default:
		errs = append(errs, fmt.Errorf("webauthn user verification %q: must be preferred, required or discouraged", o.UserVerification))
	}
	return s, errors.Join(errs...)
}

func hostChars(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return !strings.HasPrefix(h, ".") && !strings.Contains(h, "..")
}

// relyingParty returns the relying party id and the origin of a ceremony
// on r's host, or false when passkeys cannot be used there.
func (h *Handler) relyingParty(r *http.Request) (rpID, origin string, ok bool) {
	if h.wa.off {
		return "", "", false
	}
	host := session.CanonicalHost(r.Host)
	if host == "" || net.ParseIP(host) != nil || !hostChars(host) {
		return "", "", false
	}
	rpID = h.wa.rpID
	if rpID == "" {
		rpID = host
	} else if host != rpID && !strings.HasSuffix(host, "."+rpID) {
		return "", "", false
	}
	scheme := "https"
	if h.dev && r.TLS == nil && r.Header.Get("X-Forwarded-Proto") != "https" {
		scheme = "http"
	}
	return rpID, scheme + "://" + strings.ToLower(r.Host), true
}

// relyingPartyAt is the go-webauthn relying party for one ceremony.
func (h *Handler) relyingPartyAt(rpID, origin string) (*webauthn.WebAuthn, error) {
	return webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         h.wa.rpName,
		RPOrigins:             []string{origin},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: h.wa.uv,
		},
	})
}

// passkeyRecord is a stored credential. The go-webauthn credential (its
// public key, sign counter, flags) is sealed, bound to the user and the
// record, so that whoever can write the store cannot plant a credential.
type passkeyRecord struct {
	Version  int    `json:"v"`
	Name     string `json:"name"`
	Factor   string `json:"factor"` // webauthn-platform or webauthn-roaming
	RPID     string `json:"rp"`
	Created  int64  `json:"created"`
	LastUsed int64  `json:"last_used,omitempty"`
	Sealed   string `json:"sealed"`
}

// passkey is a credential of the user, opened.
type passkey struct {
	ID string // the record id
	passkeyRecord
	Cred webauthn.Credential
}

func passkeyAD(user, id string) string { return "webauthn:" + user + ":" + id }

// passkeyID names the record of a credential id.
func passkeyID(credID []byte) string {
	sum := sha256.Sum256(credID)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// webAuthnUserID is the user handle credentials carry: a digest of the
// user id, the same on every host (it is not a secret; it only links a
// credential to its user).
func webAuthnUserID(user string) []byte {
	sum := sha256.Sum256([]byte("stepup webauthn user\x00" + user))
	return sum[:]
}

// waUser is a user as go-webauthn sees it.
type waUser struct {
	id, name string
	creds    []webauthn.Credential
}

func (u waUser) WebAuthnID() []byte                         { return webAuthnUserID(u.id) }
func (u waUser) WebAuthnName() string                       { return u.name }
func (u waUser) WebAuthnDisplayName() string                { return u.name }
func (u waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// loadPasskeys returns the user's credentials for rpID ("" for all),
// oldest first. A record that cannot be opened is skipped and logged: it
// proves nothing, and the others keep working.
func (h *Handler) loadPasskeys(ctx context.Context, user, rpID string) ([]passkey, error) {
	recs, err := h.store.ListUser(ctx, user, KindWebAuthn)
	if err != nil {
		return nil, fmt.Errorf("load passkeys: %w", err)
	}
	out := make([]passkey, 0, len(recs))
	for _, rec := range recs {
		p, err := h.openPasskey(user, rec.ID, rec.Value)
		if err != nil {
			h.log.LogAttrs(ctx, slog.LevelError, "mfa step: passkey record cannot be read",
				slog.String("user", user), slog.String("error", err.Error()))
			continue
		}
		if rpID != "" && p.RPID != rpID {
			continue
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b passkey) int { return int(a.Created - b.Created) })
	return out, nil
}

func (h *Handler) openPasskey(user, id string, val []byte) (passkey, error) {
	p := passkey{ID: id}
	if err := json.Unmarshal(val, &p.passkeyRecord); err != nil || p.Version != 1 || p.Sealed == "" {
		return p, fmt.Errorf("%w: corrupt passkey record", session.ErrMalformed)
	}
	pt, err := h.sealer.Open(p.Sealed, passkeyAD(user, id))
	if err != nil {
		return p, fmt.Errorf("open passkey: %w", err)
	}
	if err := json.Unmarshal(pt, &p.Cred); err != nil || passkeyID(p.Cred.ID) != id {
		return p, fmt.Errorf("%w: corrupt passkey credential", session.ErrMalformed)
	}
	return p, nil
}

// sealPasskey encodes p for the store.
func (h *Handler) sealPasskey(user string, p passkey) ([]byte, error) {
	pt, err := json.Marshal(p.Cred)
	if err != nil {
		return nil, err
	}
	p.Version = 1
	if p.Sealed, err = h.sealer.Seal(pt, passkeyAD(user, p.ID)); err != nil {
		return nil, err
	}
	return json.Marshal(p.passkeyRecord)
}

// passkeyFactor is what a credential proves: a platform authenticator
// (built into the device) or a roaming one (a security key, a phone),
// from the attachment the browser reported, else its transports.
func passkeyFactor(c *webauthn.Credential) string {
	switch c.Authenticator.Attachment {
	case protocol.Platform:
		return session.FactorWebAuthnPlatform
	case protocol.CrossPlatform:
		return session.FactorWebAuthnRoaming
	}
	if slices.Contains(c.Transport, protocol.Internal) {
		return session.FactorWebAuthnPlatform
	}
	return session.FactorWebAuthnRoaming
}

// ceremony is the server side of one WebAuthn ceremony in progress: the
// challenge and what it was for, kept under a key bound to the user and
// the state (or the factors page), used up by its answer.
type ceremony struct {
	Data webauthn.SessionData `json:"d"`
}

func ceremonyKey(user, bind, form string) string {
	return "mfa:webauthn:" + userKey(user) + ":" + bind + ":" + form
}

// beginRegistration makes the options of a registration on r's host for
// user (account is the name authenticators show) and keeps the ceremony.
// It returns the options as JSON for the page.
func (h *Handler) beginRegistration(r *http.Request, user, account, bind, form string, have []passkey) (string, error) {
	rpID, origin, ok := h.relyingParty(r)
	if !ok {
		return "", errors.New("passkeys are not available on this host")
	}
	wa, err := h.relyingPartyAt(rpID, origin)
	if err != nil {
		return "", err
	}
	excl := make([]protocol.CredentialDescriptor, 0, len(have))
	for _, p := range have {
		excl = append(excl, p.Cred.Descriptor())
	}
	opts, data, err := wa.BeginRegistration(waUser{id: user, name: account}, webauthn.WithExclusions(excl))
	if err != nil {
		return "", fmt.Errorf("begin registration: %w", err)
	}
	return h.keepCeremony(r.Context(), user, bind, form, data, opts)
}

// beginLogin makes the options of an assertion with one of creds.
func (h *Handler) beginLogin(r *http.Request, user, bind string, creds []passkey) (string, error) {
	rpID, origin, ok := h.relyingParty(r)
	if !ok || len(creds) == 0 {
		return "", errors.New("passkeys are not available on this host")
	}
	wa, err := h.relyingPartyAt(rpID, origin)
	if err != nil {
		return "", err
	}
	u := waUser{id: user, name: user}
	allow := make([]protocol.CredentialDescriptor, 0, len(creds))
	for _, p := range creds {
		u.creds = append(u.creds, p.Cred)
		allow = append(allow, p.Cred.Descriptor())
	}
	opts, data, err := wa.BeginLogin(u, webauthn.WithAllowedCredentials(allow), webauthn.WithUserVerification(h.wa.uv))
	if err != nil {
		return "", fmt.Errorf("begin login: %w", err)
	}
	return h.keepCeremony(r.Context(), user, bind, formWebAuthn, data, opts)
}

func (h *Handler) keepCeremony(ctx context.Context, user, bind, form string, data *webauthn.SessionData, opts any) (string, error) {
	val, err := json.Marshal(ceremony{Data: *data})
	if err != nil {
		return "", err
	}
	if err := h.store.Put(ctx, ceremonyKey(user, bind, form), val, ceremonyTTL); err != nil {
		return "", fmt.Errorf("keep ceremony: %w", err)
	}
	js, err := json.Marshal(opts)
	if err != nil {
		return "", err
	}
	return string(js), nil
}

// takeCeremony uses up the ceremony kept for (user, bind, form).
func (h *Handler) takeCeremony(ctx context.Context, user, bind, form string) (webauthn.SessionData, error) {
	val, err := h.store.Consume(ctx, ceremonyKey(user, bind, form))
	if err != nil {
		return webauthn.SessionData{}, err
	}
	var c ceremony
	if err := json.Unmarshal(val, &c); err != nil || c.Data.Challenge == "" {
		return webauthn.SessionData{}, fmt.Errorf("%w: corrupt ceremony", session.ErrMalformed)
	}
	return c.Data, nil
}

// errPasskeyRefused is a ceremony answer that does not verify.
var errPasskeyRefused = errors.New("passkey refused")

// finishRegistration checks a posted registration against the kept
// ceremony and returns the new credential, named name. It does not store
// it. Errors wrapping errPasskeyRefused are the user's (or the
// authenticator's); others are the store's.
func (h *Handler) finishRegistration(r *http.Request, user, bind, form, name string) (passkey, error) {
	data, err := h.takeCeremony(contextWithoutCancel(r), user, bind, form)
	if errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrMalformed) {
		return passkey{}, fmt.Errorf("%w: no ceremony", errPasskeyRefused)
	} else if err != nil {
		return passkey{}, err
	}
	rpID, origin, ok := h.relyingParty(r)
	if !ok || rpID != data.RelyingPartyID {
		return passkey{}, fmt.Errorf("%w: relying party", errPasskeyRefused)
	}
	raw := r.PostForm.Get("credential")
	if raw == "" || len(raw) > maxCredentialJSON {
		return passkey{}, fmt.Errorf("%w: no credential", errPasskeyRefused)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes([]byte(raw))
	if err != nil {
		return passkey{}, fmt.Errorf("%w: %v", errPasskeyRefused, err)
	}
	wa, err := h.relyingPartyAt(rpID, origin)
	if err != nil {
		return passkey{}, err
	}
	cred, err := wa.CreateCredential(waUser{id: user, name: user}, data, parsed)
	if err != nil {
		return passkey{}, fmt.Errorf("%w: %v", errPasskeyRefused, err)
	}
	now := h.now().Unix()
	return passkey{
		ID:            passkeyID(cred.ID),
		passkeyRecord: passkeyRecord{Version: 1, Name: name, Factor: passkeyFactor(cred), RPID: rpID, Created: now},
		Cred:          *cred,
	}, nil
}

// storePasskey saves a new credential; a credential already registered
// is refused (it would reset the sign counter).
func (h *Handler) storePasskey(ctx context.Context, user string, p passkey) error {
	switch _, err := h.store.GetUser(ctx, user, KindWebAuthn, p.ID); {
	case err == nil:
		return fmt.Errorf("%w: already registered", errPasskeyRefused)
	case !errors.Is(err, session.ErrNotFound):
		return fmt.Errorf("store passkey: %w", err)
	}
	val, err := h.sealPasskey(user, p)
	if err != nil {
		return fmt.Errorf("store passkey: %w", err)
	}
	if err := h.store.PutUser(ctx, user, KindWebAuthn, p.ID, val, factorTTL); err != nil {
		return fmt.Errorf("store passkey: %w", err)
	}
	return nil
}

// finishLogin checks a posted assertion against the kept ceremony and the
// user's credentials among creds, and records its use (sign counter,
// last used). A counter that did not move forward means a cloned
// authenticator: the assertion is refused.
func (h *Handler) finishLogin(r *http.Request, user, bind string, creds []passkey) (passkey, error) {
	wctx := contextWithoutCancel(r)
	data, err := h.takeCeremony(wctx, user, bind, formWebAuthn)
	if errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrMalformed) {
		return passkey{}, fmt.Errorf("%w: no ceremony", errPasskeyRefused)
	} else if err != nil {
		return passkey{}, err
	}
	rpID, origin, ok := h.relyingParty(r)
	if !ok || rpID != data.RelyingPartyID || len(creds) == 0 {
		return passkey{}, fmt.Errorf("%w: relying party", errPasskeyRefused)
	}
	raw := r.PostForm.Get("credential")
	if raw == "" || len(raw) > maxCredentialJSON {
		return passkey{}, fmt.Errorf("%w: no credential", errPasskeyRefused)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(raw))
	if err != nil {
		return passkey{}, fmt.Errorf("%w: %v", errPasskeyRefused, err)
	}
	wa, err := h.relyingPartyAt(rpID, origin)
	if err != nil {
		return passkey{}, err
	}
	u := waUser{id: user, name: user}
	for _, p := range creds {
		u.creds = append(u.creds, p.Cred)
	}
	cred, err := wa.ValidateLogin(u, data, parsed)
	if err != nil {
		return passkey{}, fmt.Errorf("%w: %v", errPasskeyRefused, err)
	}
	i := slices.IndexFunc(creds, func(p passkey) bool { return p.ID == passkeyID(cred.ID) })
	if i < 0 {
		return passkey{}, fmt.Errorf("%w: unknown credential", errPasskeyRefused)
	}
	p := creds[i]
	if cred.Authenticator.CloneWarning {
		return p, fmt.Errorf("%w: %w", errPasskeyRefused, errCloned)
	}
	p.Cred = *cred
	p.LastUsed = h.now().Unix()
	val, err := h.sealPasskey(user, p)
	if err != nil {
		return p, fmt.Errorf("record passkey use: %w", err)
	}
	if err := h.store.UpdateUser(wctx, user, KindWebAuthn, p.ID, val, factorTTL); errors.Is(err, session.ErrNotFound) {
		// Removed meanwhile: it proves nothing any more.
		return p, fmt.Errorf("%w: removed", errPasskeyRefused)
	} else if err != nil {
		return p, fmt.Errorf("record passkey use: %w", err)
	}
	return p, nil
}

// errCloned is an assertion whose sign counter did not move forward.
var errCloned = errors.New("sign counter did not increase: the authenticator may be cloned")

// passkeyName returns the cleaned name posted for a new credential, or
// the default "Passkey N" when it is empty. ok is false for a name that
// is too long or not printable.
func (h *Handler) passkeyName(c catalog, raw string, n int) (string, bool) {
	name := strings.TrimSpace(raw)
	if name == "" {
		return c.get("passkey_default_name", n+1), true
	}
	if utf8.RuneCountInString(name) > maxPasskeyName || !printableText(name) {
		return "", false
	}
	return name, true
}
