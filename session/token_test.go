package session_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/session"
)

func mustKeyring(t testing.TB, keys ...session.Key) *session.Keyring {
	t.Helper()
	kr, err := session.NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func mustSign(t testing.TB, kr *session.Keyring, purpose, payload string) string {
	t.Helper()
	tok, err := kr.Sign(purpose, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSignVerify(t *testing.T) {
	k1, k2, k3 := testKey("k1", 1), testKey("k2", 2), testKey("k3", 3)
	old := mustKeyring(t, k1)
	rotated := mustKeyring(t, k2, k1) // k2 signs, k1 still verifies
	removed := mustKeyring(t, k2)     // k1 dropped
	impostor := mustKeyring(t, session.Key{ID: "k1", Secret: k3.Secret})

	tokOld := mustSign(t, old, session.PurposeRemember, `{"u":"alice"}`)
	tokNew := mustSign(t, rotated, session.PurposeRemember, `{"u":"alice"}`)
	forged := mustSign(t, impostor, session.PurposeRemember, `{"u":"alice"}`)
	other := mustSign(t, old, session.PurposeState, `{"u":"alice"}`)

	if !strings.HasPrefix(tokNew, "v1.remember.k2.") {
		t.Errorf("rotated keyring signs %q, want the first key k2 to sign", tokNew)
	}
	tests := []struct {
		name    string
		kr      *session.Keyring
		purpose string
		tok     string
		wantErr error
	}{
		{"valid", old, session.PurposeRemember, tokOld, nil},
		{"old key still verifies after rotation", rotated, session.PurposeRemember, tokOld, nil},
		{"new key verifies", rotated, session.PurposeRemember, tokNew, nil},
		{"old key after removal", removed, session.PurposeRemember, tokOld, session.ErrUnknownKey},
		{"forged with another secret under the same id", old, session.PurposeRemember, forged, session.ErrBadSignature},
		{"other purpose", old, session.PurposeRemember, other, session.ErrWrongPurpose},
		{"purpose swapped in the header", old, session.PurposeState, tokOld, session.ErrWrongPurpose},
		{"purpose edited in the header", old, session.PurposeState, strings.Replace(tokOld, ".remember.", ".state.", 1), session.ErrBadSignature},
		{"empty", old, session.PurposeRemember, "", session.ErrMalformed},
		{"garbage", old, session.PurposeRemember, "not a token", session.ErrMalformed},
		{"too many parts", old, session.PurposeRemember, tokOld + ".x", session.ErrMalformed},
		{"future version", old, session.PurposeRemember, "v2" + tokOld[2:], session.ErrMalformed},
		{"oversized", old, session.PurposeRemember, tokOld + strings.Repeat("A", session.MaxTokenSize), session.ErrMalformed},
		{"invalid purpose", old, session.PurposeRemember, strings.Replace(tokOld, ".remember.", ".Remember!.", 1), session.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload, err := tt.kr.Verify(tt.purpose, tt.tok)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(payload) != `{"u":"alice"}` {
				t.Errorf("payload = %q", payload)
			}
		})
	}
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// TestTamperEveryByte changes each byte of a valid token in two ways and
// checks that every variant is rejected, with the precise sentinel when
// the change keeps the token well formed.
func TestTamperEveryByte(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1), testKey("k2", 2))
	tok := mustSign(t, kr, session.PurposeMFASession, `{"u":"alice","id":"0123","iat":1,"exp":2}`)
	parts := strings.Split(tok, ".")
	if len(parts) != 5 {
		t.Fatalf("token %q does not have 5 parts", tok)
	}
	// part index of every byte; -1 for the dots
	partOf := make([]int, len(tok))
	i := 0
	for p, s := range parts {
		for range s {
			partOf[i] = p
			i++
		}
		if i < len(tok) {
			partOf[i] = -1
			i++
		}
	}
	for pos := range len(tok) {
		// 1. Flip the lowest bit: must be rejected, by any token sentinel.
		flipped := []byte(tok)
		flipped[pos] ^= 1
		_, err := kr.Verify(session.PurposeMFASession, string(flipped))
		if !errors.Is(err, session.ErrMalformed) && !errors.Is(err, session.ErrBadSignature) && !errors.Is(err, session.ErrUnknownKey) {
			t.Errorf("bit flip at %d (part %d): error = %v, want a rejection", pos, partOf[pos], err)
		}

		// 2. Substitute a character of the same alphabet, so the token
		// stays well formed: the precise sentinel is known.
		if partOf[pos] < 0 {
			continue
		}
		sub := []byte(tok)
		var want error
		switch partOf[pos] {
		case 0: // version
			sub[pos] = map[byte]byte{'v': 'w', '1': '2'}[sub[pos]]
			want = session.ErrMalformed
		case 1: // purpose, [a-z_]
			if sub[pos] == '_' {
				sub[pos] = 'x'
			} else {
				sub[pos] = 'a' + (sub[pos]-'a'+1)%26
			}
			want = session.ErrBadSignature
		case 2: // key id: k1 <-> k2 is another known key, anything else unknown
			sub[pos] = rotate(sub[pos], 1)
			want = session.ErrUnknownKey
			if s := string(sub); strings.Contains(s, ".k2.") || strings.Contains(s, ".k1.") {
				want = session.ErrBadSignature
			}
		case 3, 4: // payload, MAC: +4 keeps the last MAC character canonical
			sub[pos] = rotate(sub[pos], 4)
			want = session.ErrBadSignature
		}
		if _, err := kr.Verify(session.PurposeMFASession, string(sub)); !errors.Is(err, want) {
			t.Errorf("substitution at %d (part %d): error = %v, want %v", pos, partOf[pos], err, want)
		}
	}
}

func rotate(c byte, by int) byte {
	i := strings.IndexByte(b64Alphabet, c)
	return b64Alphabet[(i+by)%len(b64Alphabet)]
}

func TestTruncated(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1))
	tok := mustSign(t, kr, session.PurposeState, `{"u":"alice"}`)
	for n := range len(tok) {
		if _, err := kr.Verify(session.PurposeState, tok[:n]); !errors.Is(err, session.ErrMalformed) {
			t.Errorf("token truncated to %d bytes: error = %v, want ErrMalformed", n, err)
		}
	}
}

func TestSignLimits(t *testing.T) {
	kr := mustKeyring(t, testKey("k1", 1))
	if _, err := kr.Sign("Bad Purpose", nil); err == nil {
		t.Error("Sign with an invalid purpose: no error")
	}
	if _, err := kr.Sign(session.PurposeState, make([]byte, session.MaxTokenSize)); err == nil {
		t.Error("Sign of an oversized payload: no error")
	}
	if got := kr.SigningKeyID(); got != "k1" {
		t.Errorf("SigningKeyID = %q, want k1", got)
	}
}

func TestNewKeyringRejects(t *testing.T) {
	tests := []struct {
		name string
		keys []session.Key
	}{
		{"none", nil},
		{"short secret", []session.Key{{ID: "k1", Secret: make([]byte, 31)}}},
		{"bad id", []session.Key{{ID: "k.1", Secret: make([]byte, 32)}}},
		{"duplicate", []session.Key{testKey("k1", 1), testKey("k1", 2)}},
	}
	for _, tt := range tests {
		if _, err := session.NewKeyring(tt.keys); err == nil {
			t.Errorf("%s: NewKeyring succeeded", tt.name)
		}
	}
}

// FuzzDecodeToken checks that Verify never panics and never accepts a
// token the key did not produce: whatever it accepts, signing the returned
// payload again must give back exactly the input.
func FuzzDecodeToken(f *testing.F) {
	kr := mustKeyring(f, testKey("k1", 1))
	purposes := []string{session.PurposeMFASession, session.PurposeRemember, session.PurposeState, session.PurposeAssertion}
	for _, p := range purposes {
		tok := mustSign(f, kr, p, `{"u":"alice","id":"abc","iat":1,"exp":2}`)
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(strings.Replace(tok, "k1", "k2", 1))
	}
	f.Add("")
	f.Add("v1....")
	f.Add("v1.state.k1..")
	f.Add("v1.state.k1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		for _, p := range purposes {
			payload, err := kr.Verify(p, tok)
			if err == nil {
				again, serr := kr.Sign(p, payload)
				if serr != nil || again != tok {
					t.Fatalf("Verify accepted %q, which is not what the key signs for its payload (%q)", tok, again)
				}
			} else if !errors.Is(err, session.ErrMalformed) && !errors.Is(err, session.ErrBadSignature) &&
				!errors.Is(err, session.ErrUnknownKey) && !errors.Is(err, session.ErrWrongPurpose) {
				t.Fatalf("Verify error %v is not a token sentinel", err)
			}
		}
	})
}
