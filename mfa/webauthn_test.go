package mfa

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/stepup-dev/stepup/session"
)

// softKey is a software authenticator: one P-256 credential, a sign
// counter, and what it answers with.
type softKey struct {
	t       *testing.T
	id      []byte
	key     *ecdsa.PrivateKey
	counter uint32
	uv      bool // sets the user-verified flag
}

func newSoftKey(t *testing.T) *softKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	_, _ = rand.Read(id)
	return &softKey{t: t, id: id, key: k, uv: true}
}

var b64 = base64.RawURLEncoding

func (k *softKey) authData(attested bool) []byte {
	rp := sha256.Sum256([]byte(host))
	flags := byte(0x01) // user present
	if k.uv {
		flags |= 0x04
	}
	out := append([]byte{}, rp[:]...)
	if attested {
		flags |= 0x40
	}
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, k.counter)
	if attested {
		out = append(out, make([]byte, 16)...) // AAGUID
		out = binary.BigEndian.AppendUint16(out, uint16(len(k.id)))
		out = append(out, k.id...)
		pub, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: k.key.X.FillBytes(make([]byte, 32)), -3: k.key.Y.FillBytes(make([]byte, 32))})
		if err != nil {
			k.t.Fatal(err)
		}
		out = append(out, pub...)
	}
	return out
}

func clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": "https://" + host, "crossOrigin": false})
	return b
}

// register answers a creation ceremony.
func (k *softKey) register(challenge string) string {
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": k.authData(true)})
	if err != nil {
		k.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key", "authenticatorAttachment": "cross-platform",
		"clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(clientData("webauthn.create", challenge)), "attestationObject": b64.EncodeToString(att), "transports": []string{"usb"},
		},
	})
	return string(b)
}

// assert answers an assertion ceremony; bogus spoils the signature.
func (k *softKey) assert(challenge string, bogus bool) string {
	k.counter++
	ad := k.authData(false)
	cd := clientData("webauthn.get", challenge)
	sum := sha256.Sum256(append(append([]byte{}, ad...), sha256Sum(cd)...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, sum[:])
	if err != nil {
		k.t.Fatal(err)
	}
	if bogus {
		sig[len(sig)-1] ^= 0xff
	}
	b, _ := json.Marshal(map[string]any{
		"id": b64.EncodeToString(k.id), "rawId": b64.EncodeToString(k.id), "type": "public-key", "clientExtensionResults": map[string]any{},
		"response": map[string]any{
			"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(ad), "signature": b64.EncodeToString(sig),
		},
	})
	return string(b)
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

var (
	reOptions     = regexp.MustCompile(`data-options="([^"]*)"`)
	rePasskeyCSRF = regexp.MustCompile(`(?s)id="passkey-form".*?name="csrf" value="([^"]*)"`)
)

// passkeyPage returns the passkey form's challenge and CSRF token.
func passkeyPage(t *testing.T, body string) (challenge, csrf string) {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(scrape(t, reOptions, body))), &o); err != nil {
		t.Fatal(err)
	}
	return o.PublicKey.Challenge, scrape(t, rePasskeyCSRF, body)
}

// TestPasskeyEnrolAndVerify: a passkey enrolled as the first factor, a
// verification with it, and the refusals: a bad signature, a replayed
// answer, a sign counter that goes backwards, user verification missing
// when required; a requirement that does not accept passkeys never offers
// them.
func TestPasskeyEnrolAndVerify(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.WebAuthn.UserVerification = UserVerificationRequired })
	ctx := context.Background()
	mfaName, _, _ := e.m.CookieNames()
	k := newSoftKey(t)

	st := e.state(alice.user, anyRemember, returnURL)
	page := e.get(mfaURL(st), alice).Body.String()
	ch, csrf := passkeyPage(t, page)
	rec := e.post("/.stepup/mfa", alice, url.Values{"state": {st}, "csrf": {csrf}, "method": {formWebAuthnEnrol}, "name": {"Blue key"}, "credential": {k.register(ch)}})
	if rec.Code != http.StatusOK || len(reCodes.FindAllString(rec.Body.String(), -1)) != RecoveryCodeCount {
		t.Fatalf("enrol: %d\n%s", rec.Code, rec.Body)
	}
	s, err := e.m.VerifyMFASession(ctx, cookie(rec, mfaName).Value, alice.user, alice.sid)
	if err != nil || s.Factors()[0] != session.FactorWebAuthnRoaming {
		t.Fatalf("session after enrolment: %+v, %v", s.Factors(), err)
	}
	ps, err := e.h.loadPasskeys(ctx, alice.user, "")
	if err != nil || len(ps) != 1 || ps[0].Name != "Blue key" || ps[0].Factor != session.FactorWebAuthnRoaming {
		t.Fatalf("stored passkeys %+v, %v", ps, err)
	}

	verify := func(mod func(ch string) string) *http.Response {
		t.Helper()
		st := e.state(alice.user, anyRemember, returnURL)
		body := e.get(mfaURL(st), alice).Body.String()
		ch, csrf := passkeyPage(t, body)
		return e.post("/.stepup/mfa", alice, url.Values{"state": {st}, "csrf": {csrf}, "method": {formWebAuthn}, "credential": {mod(ch)}}).Result()
	}
	// A good assertion.
	if r := verify(func(ch string) string { return k.assert(ch, false) }); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("verify: %d", r.StatusCode)
	}
	// A bad signature.
	if r := verify(func(ch string) string { return k.assert(ch, true) }); r.StatusCode == http.StatusSeeOther {
		t.Error("a bad signature passed")
	}
	// An answer to another challenge (a replay).
	old := k.assert(b64.EncodeToString([]byte("an old challenge, never issued..")), false)
	if r := verify(func(string) string { return old }); r.StatusCode == http.StatusSeeOther {
		t.Error("an answer to another challenge passed")
	}
	// The counter goes backwards: a clone.
	k.counter = 0
	if r := verify(func(ch string) string { return k.assert(ch, false) }); r.StatusCode == http.StatusSeeOther {
		t.Error("a sign counter that went backwards passed")
	}
	if !strings.Contains(e.logs.String(), "sign_counter") {
		t.Error("the clone warning is not logged")
	}
	k.counter = 100
	// No user verification while it is required.
	k.uv = false
	if r := verify(func(ch string) string { return k.assert(ch, false) }); r.StatusCode == http.StatusSeeOther {
		t.Error("an assertion without user verification passed")
	}
	k.uv = true
	if r := verify(func(ch string) string { return k.assert(ch, false) }); r.StatusCode != http.StatusSeeOther {
		t.Errorf("verify after refusals: %d", r.StatusCode)
	}
	// Garbage in the credential field: a clear refusal, no panic.
	if r := verify(func(string) string { return `{"id":` }); r.StatusCode == http.StatusSeeOther || r.StatusCode >= 500 {
		t.Errorf("garbage credential: %d", r.StatusCode)
	}
	for _, secret := range []string{b64.EncodeToString(k.id)} {
		if strings.Contains(e.logs.String(), secret) {
			t.Error("the credential id appears in the log")
		}
	}

	// google-authenticator does not accept passkeys: the user, who has no
	// authenticator app, is offered recovery codes only.
	st = e.state(alice.user, session.Requirement{Provider: "google-authenticator"}, returnURL)
	body := e.get(mfaURL(st), alice).Body.String()
	if strings.Contains(body, "data-webauthn") || !strings.Contains(body, "Use a recovery code") {
		t.Errorf("google-authenticator offers passkeys, or no recovery code\n%s", body)
	}
	// A requirement for security keys only: no code form, the key offered.
	st = e.state(alice.user, session.Requirement{Provider: "any", Factors: []string{session.FactorWebAuthnRoaming}}, returnURL)
	body = e.get(mfaURL(st), alice).Body.String()
	if !strings.Contains(body, `data-webauthn="get"`) || strings.Contains(body, `name="code"`) {
		t.Errorf("webauthn-roaming only: %s", body)
	}
}

// TestPasskeysOffIPHost: an IP address is never a relying party: no
// passkey is offered there.
func TestPasskeysOffIPHost(t *testing.T) {
	e := newEnv(t, nil)
	st := e.state(alice.user, anyRemember, returnURL)
	r := e.get(mfaURL(st), alice)
	if !strings.Contains(r.Body.String(), "data-webauthn") {
		t.Fatal("no passkey offered on a host name")
	}
	req, _ := http.NewRequest(http.MethodGet, "https://192.0.2.1/", nil)
	if _, _, ok := e.h.relyingParty(req); ok {
		t.Error("an IP address is a relying party")
	}
	e2 := newEnv(t, func(o *Options) { o.WebAuthn.RPID = "example.com" })
	for h, want := range map[string]bool{"app.example.com": true, "example.com": true, "example.org": false, "badexample.com": false} {
		req, _ := http.NewRequest(http.MethodGet, "https://"+h+"/", nil)
		if _, _, ok := e2.h.relyingParty(req); ok != want {
			t.Errorf("rp_id example.com on %s: %v, want %v", h, ok, want)
		}
	}
	o := e.opts
	o.WebAuthn = WebAuthnOptions{RPID: "10.0.0.1"}
	if _, err := New(o); err == nil {
		t.Error("an IP rp id accepted")
	}
	o.WebAuthn = WebAuthnOptions{UserVerification: "always"}
	if _, err := New(o); err == nil {
		t.Error("a bad user verification accepted")
	}
}
