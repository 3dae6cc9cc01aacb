package session

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Token purposes used by the [Manager]. Other packages may sign with their
// own purposes (1 to 32 characters of [a-z0-9_]).
const (
	PurposeMFASession = "mfa_session"
	PurposeRemember   = "remember"
	PurposeState      = "state"
	PurposeAssertion  = "assertion"
)

// MaxTokenSize is the largest token [Keyring.Verify] looks at, in bytes.
// Larger inputs are rejected with [ErrMalformed] before any other work.
const MaxTokenSize = 4096

const (
	tokenVersion = "v1"
	macLen       = sha256.Size
	hkdfTokenKey = "stepup session token hmac v1"
)

var b64 = base64.RawURLEncoding.Strict()

// Keyring signs and verifies tokens with a list of keys: the first key
// signs, every key verifies. A Keyring is immutable and safe for concurrent
// use; build a new one to rotate.
type Keyring struct {
	signer *ringKey
	byID   map[string]*ringKey
}

type ringKey struct {
	id   string
	pool sync.Pool // of *macState keyed with the derived key
}

// macState is pooled scratch space for one MAC computation.
type macState struct {
	h   hash.Hash // HMAC-SHA256 keyed with the derived key
	buf []byte    // copy of the signed part of a token
	sum [macLen]byte
}

// NewKeyring builds a keyring from keys; keys[0] signs. It fails when the
// list is empty, a key is invalid, or an id repeats.
func NewKeyring(keys []Key) (*Keyring, error) {
	if err := validateKeys(keys); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	kr := &Keyring{byID: make(map[string]*ringKey, len(keys))}
	for i, k := range keys {
		mk, err := hkdf.Key(sha256.New, k.Secret, nil, hkdfTokenKey, 32)
		if err != nil {
			return nil, fmt.Errorf("keyring: derive key %q: %w", k.ID, err)
		}
		rk := &ringKey{id: k.ID}
		rk.pool.New = func() any { return &macState{h: hmac.New(sha256.New, mk)} }
		kr.byID[k.ID] = rk
		if i == 0 {
			kr.signer = rk
		}
	}
	return kr, nil
}

// SigningKeyID returns the id of the key that signs.
func (kr *Keyring) SigningKeyID() string { return kr.signer.id }

// Sign returns a token binding payload to purpose, signed with the first
// key. It fails for an invalid purpose or when the token would be larger
// than [MaxTokenSize].
func (kr *Keyring) Sign(purpose string, payload []byte) (string, error) {
	if !validPurpose(purpose) {
		return "", fmt.Errorf("sign token: invalid purpose %q", purpose)
	}
	rk := kr.signer
	n := len(tokenVersion) + 1 + len(purpose) + 1 + len(rk.id) + 1 + b64.EncodedLen(len(payload)) + 1 + b64.EncodedLen(macLen)
	if n > MaxTokenSize {
		return "", fmt.Errorf("sign token: token would be %d bytes, more than %d", n, MaxTokenSize)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, tokenVersion...)
	buf = append(buf, '.')
	buf = append(buf, purpose...)
	buf = append(buf, '.')
	buf = append(buf, rk.id...)
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, payload)
	st := rk.pool.Get().(*macState)
	st.h.Reset()
	st.h.Write(buf)
	mac := st.h.Sum(st.sum[:0])
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, mac)
	rk.pool.Put(st)
	return string(buf), nil
}

// Verify checks token and returns its payload. Errors, in the order of the
// checks: [ErrMalformed] (too large, not five dot-separated parts, unknown
// version, bad encoding), [ErrUnknownKey], [ErrBadSignature],
// [ErrWrongPurpose] (a valid token of another purpose). Verify never
// panics, whatever the input.
func (kr *Keyring) Verify(purpose, token string) ([]byte, error) {
	return kr.verify(purpose, token, nil)
}

// verify is Verify appending the payload to dst, so that hot paths can
// decode into a stack buffer.
func (kr *Keyring) verify(purpose, token string, dst []byte) ([]byte, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(token), MaxTokenSize)
	}
	signedLen := strings.LastIndexByte(token, '.')
	if signedLen < 0 {
		return nil, fmt.Errorf("%w: no signature", ErrMalformed)
	}
	signed, macEnc := token[:signedLen], token[signedLen+1:]
	version, rest, ok1 := strings.Cut(signed, ".")
	tokPurpose, rest, ok2 := strings.Cut(rest, ".")
	kid, payloadEnc, ok3 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !ok3 || strings.IndexByte(payloadEnc, '.') >= 0 {
		return nil, fmt.Errorf("%w: want five dot-separated parts", ErrMalformed)
	}
	if version != tokenVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrMalformed)
	}
	if !validPurpose(tokPurpose) {
		return nil, fmt.Errorf("%w: invalid purpose", ErrMalformed)
	}
	var got [macLen]byte
	if !decodeMAC(&got, macEnc) {
		return nil, fmt.Errorf("%w: signature is not %d bytes of base64url", ErrMalformed, macLen)
	}
	rk, ok := kr.byID[kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	st := rk.pool.Get().(*macState)
	defer rk.pool.Put(st)
	st.buf = append(st.buf[:0], signed...)
	st.h.Reset()
	st.h.Write(st.buf)
	if !hmac.Equal(got[:], st.h.Sum(st.sum[:0])) {
		return nil, ErrBadSignature
	}
	if tokPurpose != purpose {
		return nil, ErrWrongPurpose
	}
	payload, err := b64.AppendDecode(dst, st.buf[len(signed)-len(payloadEnc):])
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	return payload, nil
}

// decodeMAC decodes a base64url MAC without allocating.
func decodeMAC(dst *[macLen]byte, s string) bool {
	var src [43]byte // b64.EncodedLen(macLen)
	if len(s) != len(src) {
		return false
	}
	copy(src[:], s)
	n, err := b64.Decode(dst[:], src[:])
	return err == nil && n == macLen
}

func validPurpose(s string) bool {
	return validKind(s)
}
