package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"strings"
)

// MaxSealedSize is the largest sealed value [Sealer.Open] looks at.
const MaxSealedSize = 64 << 10

const (
	sealVersion = "s1"
	hkdfSealKey = "stepup session seal aes-256-gcm v1"
)

// Sealer encrypts secrets at rest (TOTP seeds, say) with AES-256-GCM. Like
// a [Keyring] it takes a key list: the first key seals, every key opens. The
// AES key is derived from the key's secret with HKDF-SHA256 under its own
// label, so the same list may also serve a Keyring.
//
// A sealed value is "s1.<key id>.<base64url(nonce || ciphertext || tag)>"
// with a random 96-bit nonce; the version, the key id and the caller's
// associated data are authenticated. Pass the purpose and the user as
// associated data (for example "totp:alice") so that a ciphertext copied
// from one user's record to another's fails to open. Random nonces make a
// key good for about 2^32 seals; rotate long before that.
//
// A Sealer is immutable and safe for concurrent use.
type Sealer struct {
	sealer *sealKey
	byID   map[string]*sealKey
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// NewSealer builds a sealer from keys; keys[0] seals.
func NewSealer(keys []Key) (*Sealer, error) {
	if err := validateKeys(keys); err != nil {
		return nil, fmt.Errorf("sealer: %w", err)
	}
	s := &Sealer{byID: make(map[string]*sealKey, len(keys))}
	for i, k := range keys {
		ak, err := hkdf.Key(sha256.New, k.Secret, nil, hkdfSealKey, 32)
		if err != nil {
			return nil, fmt.Errorf("sealer: derive key %q: %w", k.ID, err)
		}
		block, err := aes.NewCipher(ak)
		if err != nil {
			return nil, fmt.Errorf("sealer: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("sealer: key %q: %w", k.ID, err)
		}
		sk := &sealKey{id: k.ID, aead: aead}
		s.byID[k.ID] = sk
		if i == 0 {
			s.sealer = sk
		}
	}
	return s, nil
}

// Seal encrypts plaintext bound to associatedData.
func (s *Sealer) Seal(plaintext []byte, associatedData string) (string, error) {
	sk := s.sealer
	prefix := sealVersion + "." + sk.id + "."
	ct := sk.aead.Seal(nil, nil, plaintext, sealAD(prefix, associatedData))
	if n := len(prefix) + b64.EncodedLen(len(ct)); n > MaxSealedSize {
		return "", fmt.Errorf("seal: result would be %d bytes, more than %d", n, MaxSealedSize)
	}
	return prefix + b64.EncodeToString(ct), nil
}

// Open decrypts a value made by Seal with the same associatedData. Errors:
// [ErrMalformed] (too large, wrong format or version), [ErrUnknownKey], and
// [ErrBadSignature] when authentication fails (tampered ciphertext, other
// associated data).
func (s *Sealer) Open(sealed, associatedData string) ([]byte, error) {
	if len(sealed) > MaxSealedSize {
		return nil, fmt.Errorf("%w: sealed value is larger than %d bytes", ErrMalformed, MaxSealedSize)
	}
	version, rest, ok1 := strings.Cut(sealed, ".")
	kid, enc, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || version != sealVersion {
		return nil, fmt.Errorf("%w: not a sealed value", ErrMalformed)
	}
	sk, ok := s.byID[kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	ct, err := b64.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: sealed value is not base64url", ErrMalformed)
	}
	if len(ct) < sk.aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed value is truncated", ErrMalformed)
	}
	pt, err := sk.aead.Open(nil, nil, ct, sealAD(sealed[:len(version)+1+len(kid)+1], associatedData))
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", ErrBadSignature)
	}
	return pt, nil
}

func sealAD(prefix, ad string) []byte {
	b := make([]byte, 0, len(prefix)+len(ad))
	b = append(b, prefix...)
	return append(b, ad...)
}
