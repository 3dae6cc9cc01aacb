package session

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"testing"
)

// TestStateKeyIsHKDF: the pooled derivation of a state key is HKDF-SHA256
// with the documented info, as crypto/hkdf computes it.
func TestStateKeyIsHKDF(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	sk, err := newStateKeys([]Key{{ID: "k1", Secret: secret}})
	if err != nil {
		t.Fatal(err)
	}
	id := []byte("0123456789abcdef")
	want, err := hkdf.Key(sha256.New, secret, nil, hkdfStateKey+"\x00"+string(id), 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(want)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // pooled state reused
		got, err := sk.aead("k1", id)
		if err != nil {
			t.Fatal(err)
		}
		ct := got.Seal(nil, stateNonce[:], []byte("plaintext"), []byte("ad"))
		if pt, err := ref.Open(nil, stateNonce[:], ct, []byte("ad")); err != nil || string(pt) != "plaintext" {
			t.Fatalf("a state key does not match HKDF-SHA256: Open = %q, %v", pt, err)
		}
	}
	if _, err := sk.aead("k2", id); err != ErrUnknownKey {
		t.Errorf("unknown key id: error = %v, want ErrUnknownKey", err)
	}
}
