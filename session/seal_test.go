package session_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/session"
)

func mustSealer(t testing.TB, keys ...session.Key) *session.Sealer {
	t.Helper()
	s, err := session.NewSealer(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	k1, k2 := testKey("k1", 1), testKey("k2", 2)
	old := mustSealer(t, k1)
	rotated := mustSealer(t, k2, k1)
	removed := mustSealer(t, k2)
	seed := []byte("JBSWY3DPEHPK3PXP totp seed")

	sealed, err := old.Seal(seed, "totp:alice")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(sealed), seed) || !strings.HasPrefix(sealed, "s1.k1.") {
		t.Fatalf("sealed value %q leaks the plaintext or lacks the s1.k1. prefix", sealed)
	}
	again, _ := old.Seal(seed, "totp:alice")
	if again == sealed {
		t.Error("two seals of the same plaintext are equal: nonce not random")
	}
	tampered := []byte(sealed)
	tampered[len(tampered)-5] = rotate(tampered[len(tampered)-5], 4)
	swappedKid := strings.Replace(sealed, "s1.k1.", "s1.k2.", 1)

	tests := []struct {
		name    string
		s       *session.Sealer
		sealed  string
		ad      string
		wantErr error
	}{
		{"round trip", old, sealed, "totp:alice", nil},
		{"after rotation", rotated, sealed, "totp:alice", nil},
		{"other user", old, sealed, "totp:bob", session.ErrBadSignature},
		{"other purpose", old, sealed, "webauthn:alice", session.ErrBadSignature},
		{"tampered", old, string(tampered), "totp:alice", session.ErrBadSignature},
		{"key id swapped", rotated, swappedKid, "totp:alice", session.ErrBadSignature},
		{"key removed", removed, sealed, "totp:alice", session.ErrUnknownKey},
		{"truncated", old, sealed[:12], "totp:alice", session.ErrMalformed},
		{"empty", old, "", "totp:alice", session.ErrMalformed},
		{"other version", old, "s2" + sealed[2:], "totp:alice", session.ErrMalformed},
		{"not base64", old, "s1.k1.***", "totp:alice", session.ErrMalformed},
		{"oversized", old, "s1.k1." + strings.Repeat("A", session.MaxSealedSize), "totp:alice", session.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Open(tt.sealed, tt.ad)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !bytes.Equal(got, seed) {
				t.Errorf("Open = %q, want %q", got, seed)
			}
		})
	}
	empty, err := old.Seal(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := old.Open(empty, ""); err != nil || len(got) != 0 {
		t.Errorf("empty round trip = %q, %v", got, err)
	}
	newer, _ := rotated.Seal(seed, "x")
	if !strings.HasPrefix(newer, "s1.k2.") {
		t.Errorf("rotated sealer sealed with %q, want the first key k2", newer[:6])
	}
}

func TestSealerKeyIsNotTokenKey(t *testing.T) {
	// The same secret serves both; their derived keys differ, so a MAC
	// cannot be confused with a ciphertext. Sanity: both work.
	k := testKey("k1", 9)
	kr := mustKeyring(t, k)
	s := mustSealer(t, k)
	tok := mustSign(t, kr, session.PurposeState, "x")
	if _, err := s.Open("s1.k1."+tok[strings.LastIndexByte(tok, '.')+1:], ""); !errors.Is(err, session.ErrBadSignature) {
		t.Errorf("a MAC opened as a sealed value: error = %v, want ErrBadSignature", err)
	}
}

func FuzzOpenSealed(f *testing.F) {
	s := mustSealer(f, testKey("k1", 1))
	good, _ := s.Seal([]byte("seed"), "ad")
	for _, v := range []string{good, good[:10], "", "s1.k1.", "s1..", "s1.k2.AAAA"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		pt, err := s.Open(v, "ad")
		if err == nil && v != good && !strings.HasPrefix(v, "s1.k1.") {
			t.Fatalf("Open accepted %q (%q)", v, pt)
		}
	})
}
