package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// The payload of a state token, inside the signed token of purpose
// [PurposeState]:
//
//	kind (1 byte) || id (16 bytes) || AES-256-GCM ciphertext and tag
//
// kind is stateEmbedded (the plaintext is the State's JSON) or
// stateStored (the plaintext is the claims JSON of a State kept in the
// store under stateKey(id)). id is the state's random id; its hex form is
// State.ID. The AES key is used for this one token only: it is derived
// from the signing key's secret with HKDF-SHA256 under hkdfStateKey and
// the id, so the nonce is fixed (all zero) and no number of state tokens
// wears a key out the way random nonces would (2^32 per key). kind and id
// are the associated data; the token's HMAC covers them too, and is checked
// before anything is decrypted.
//
// A payload that starts with '{' is a state token from before states
// were sealed: plain claims naming a stored State. It is still accepted
// (stored path), so that states pending across an upgrade keep working.
const (
	stateEmbedded byte = 1
	stateStored   byte = 2

	stateIDLen     = 16
	stateHeaderLen = 1 + stateIDLen

	hkdfStateKey = "stepup session state aes-256-gcm v1"
)

// stateNonce is the fixed nonce of the one-time state keys.
var stateNonce [12]byte

var (
	// stateInfoPrefix starts the HKDF info of a state key; the id follows.
	stateInfoPrefix = []byte(hkdfStateKey + "\x00")
	// hkdfFirstBlock is the counter of HKDF-Expand's first output block.
	hkdfFirstBlock = []byte{1}
)

// stateKeys derives the state encryption keys from the same key list as
// the [Keyring], so that rotation works the same way: the signing key
// seals, every listed key opens, a removed key's tokens fail with
// [ErrUnknownKey] (from the signature check, before any decryption).
type stateKeys struct {
	byID map[string]*sync.Pool // key id → pool of *stateKDF
}

// stateKDF is pooled scratch space for deriving one state key: HMAC-SHA256
// keyed with HKDF-Extract of a key's secret.
type stateKDF struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newStateKeys(keys []Key) (*stateKeys, error) {
	sk := &stateKeys{byID: make(map[string]*sync.Pool, len(keys))}
	for _, k := range keys {
		prk, err := hkdf.Extract(sha256.New, k.Secret, nil)
		if err != nil {
			return nil, fmt.Errorf("state keys: derive key %q: %w", k.ID, err)
		}
		sk.byID[k.ID] = &sync.Pool{New: func() any { return &stateKDF{h: hmac.New(sha256.New, prk)} }}
	}
	return sk, nil
}

// aead returns the one-time AEAD of the state with the raw id, under key
// kid. Its key is HKDF-Expand(PRK, hkdfStateKey || 0x00 || id, 32), which
// for one hash-sized block is HMAC(PRK, info || 0x01) (RFC 5869, 2.3),
// computed here on a pooled HMAC to spare the allocations of
// [hkdf.Expand].
func (sk *stateKeys) aead(kid string, id []byte) (cipher.AEAD, error) {
	pool, ok := sk.byID[kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	kdf := pool.Get().(*stateKDF)
	defer pool.Put(kdf)
	kdf.h.Reset()
	kdf.h.Write(stateInfoPrefix)
	kdf.h.Write(id)
	kdf.h.Write(hkdfFirstBlock)
	key := kdf.h.Sum(kdf.sum[:0])
	block, err := aes.NewCipher(key)
	clear(kdf.sum[:])
	if err != nil {
		return nil, fmt.Errorf("state key: %w", err)
	}
	return cipher.NewGCM(block)
}

// newStateID returns a new random state id, raw and in hex.
func newStateID() ([stateIDLen]byte, string, error) {
	var id [stateIDLen]byte
	if _, err := rand.Read(id[:]); err != nil {
		return id, "", fmt.Errorf("generate id: %w", err)
	}
	return id, hex.EncodeToString(id[:]), nil
}

// sealState returns the signed state token of the given kind carrying
// plaintext encrypted under the one-time key of id.
func (m *Manager) sealState(kind byte, id [stateIDLen]byte, plaintext []byte) (string, error) {
	const tagLen = 16 // of AES-GCM
	payload := make([]byte, stateHeaderLen, stateHeaderLen+len(plaintext)+tagLen)
	payload[0] = kind
	copy(payload[1:], id[:])
	aead, err := m.stateKeys.aead(m.kr.SigningKeyID(), payload[1:stateHeaderLen])
	if err != nil {
		return "", err
	}
	payload = aead.Seal(payload, stateNonce[:], plaintext, payload[:stateHeaderLen])
	return m.kr.Sign(PurposeState, payload)
}

// stateToken is a verified, decrypted state token.
type stateToken struct {
	// id is the state's id (hex).
	id string
	// stored is true when the State is in the store under stateKey(id);
	// otherwise st is the State itself.
	stored bool
	st     State
}

// openState checks a state token for user, in this order: signature and
// purpose (as [Keyring.Verify]), decryption ([ErrBadSignature]), format
// ([ErrMalformed]), user ([ErrWrongUser]), expiry ([ErrExpired]). It does
// not look at the store.
func (m *Manager) openState(token, user string) (stateToken, error) {
	if token == "" {
		return stateToken{}, ErrNoCookie
	}
	payload, err := m.kr.Verify(PurposeState, token)
	if err != nil {
		return stateToken{}, err
	}
	if len(payload) > 0 && payload[0] == '{' {
		// A plain token from before states were sealed.
		c, err := m.checkClaims(payload, user)
		if err != nil {
			return stateToken{}, err
		}
		return stateToken{id: c.ID, stored: true}, nil
	}
	if len(payload) < stateHeaderLen {
		return stateToken{}, fmt.Errorf("%w: state payload is truncated", ErrMalformed)
	}
	kind, rawID := payload[0], payload[1:stateHeaderLen]
	if kind != stateEmbedded && kind != stateStored {
		return stateToken{}, fmt.Errorf("%w: unknown state payload kind", ErrMalformed)
	}
	aead, err := m.stateKeys.aead(tokenKeyID(token), rawID)
	if err != nil {
		return stateToken{}, err
	}
	if len(payload) < stateHeaderLen+aead.Overhead() {
		return stateToken{}, fmt.Errorf("%w: state payload is truncated", ErrMalformed)
	}
	pt, err := aead.Open(nil, stateNonce[:], payload[stateHeaderLen:], payload[:stateHeaderLen])
	if err != nil {
		return stateToken{}, fmt.Errorf("open state: %w", ErrBadSignature)
	}
	id := hex.EncodeToString(rawID)
	if kind == stateStored {
		c, err := m.checkClaims(pt, user)
		if err != nil {
			return stateToken{}, err
		}
		if c.ID != id {
			return stateToken{}, fmt.Errorf("%w: state id mismatch", ErrMalformed)
		}
		return stateToken{id: id, stored: true}, nil
	}
	var st State
	if err := json.Unmarshal(pt, &st); err != nil || st.User == "" || st.ID != id {
		return stateToken{}, fmt.Errorf("%w: bad state payload", ErrMalformed)
	}
	if st.User != user {
		return stateToken{}, ErrWrongUser
	}
	if expired(st.ExpiresAt.Unix(), m.now()) {
		return stateToken{}, ErrExpired
	}
	return stateToken{id: id, st: st}, nil
}

// tokenKeyID returns the key id of a token that [Keyring.Verify] accepted:
// its third dot-separated part.
func tokenKeyID(token string) string {
	_, rest, _ := strings.Cut(token, ".")
	_, rest, _ = strings.Cut(rest, ".")
	kid, _, _ := strings.Cut(rest, ".")
	return kid
}
