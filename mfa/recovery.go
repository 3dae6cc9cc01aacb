package mfa

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

const (
	// RecoveryCodeCount is how many recovery codes an enrolment makes.
	RecoveryCodeCount = 10
	// recoveryCodeBytes of randomness: 80 bits, 16 base32 characters.
	recoveryCodeBytes = 10
	recoveryCodeLen   = 16
	// recoveryAlphabet is Crockford's base32 in lower case: no i, l, o, u,
	// so that a code read aloud or from paper is typed right.
	recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
)

var recoveryEncoding = base32.NewEncoding(recoveryAlphabet).WithPadding(base32.NoPadding)

type recoveryRecord struct {
	Created int64 `json:"created"`
}

// newRecoveryCodes returns n fresh codes, formatted for display as
// "xxxx-xxxx-xxxx-xxxx".
func newRecoveryCodes(n int) ([]string, error) {
	codes := make([]string, n)
	var b [recoveryCodeBytes]byte
	for i := range codes {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("generate recovery code: %w", err)
		}
		s := recoveryEncoding.EncodeToString(b[:])
		codes[i] = s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]
	}
	return codes, nil
}

// normalizeRecovery returns a typed recovery code in canonical form: lower
// case, without spaces and dashes, with the look-alikes o→0 and i, l→1
// folded; or false when it cannot be a code.
func normalizeRecovery(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var b [recoveryCodeLen]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch c {
		case ' ', '-', '\t':
			continue
		case 'o':
			c = '0'
		case 'i', 'l':
			c = '1'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 || n == len(b) {
			return "", false
		}
		b[n] = c
		n++
	}
	if n != len(b) {
		return "", false
	}
	return string(b[:]), true
}

// recoveryID names the record of a canonical code: a hash salted with the
// user, so that equal codes of two users differ and a copied store reveals
// nothing usable (80 random bits per code).
func recoveryID(user, canonical string) string {
	sum := sha256.Sum256([]byte("stepup recovery code v1\x00" + user + "\x00" + canonical))
	return "rc_" + hex.EncodeToString(sum[:])
}

// replaceRecoveryCodes removes the user's recovery codes and stores the
// given ones.
func (h *Handler) replaceRecoveryCodes(ctx context.Context, user string, codes []string) error {
	if _, err := h.store.DeleteUser(ctx, user, KindRecoveryCode, ""); err != nil {
		return fmt.Errorf("replace recovery codes: %w", err)
	}
	val, err := json.Marshal(recoveryRecord{Created: h.now().Unix()})
	if err != nil {
		return err
	}
	for _, c := range codes {
		canon, ok := normalizeRecovery(c)
		if !ok {
			return fmt.Errorf("replace recovery codes: generated an invalid code")
		}
		if err := h.store.PutUser(ctx, user, KindRecoveryCode, recoveryID(user, canon), val, factorTTL); err != nil {
			return fmt.Errorf("replace recovery codes: %w", err)
		}
	}
	return nil
}

// useRecoveryCode spends a canonical code: it deletes its record and
// reports whether there was one. Deleting is atomic in every store, so
// of two requests racing with the same code exactly one wins.
func (h *Handler) useRecoveryCode(ctx context.Context, user, canonical string) (bool, error) {
	n, err := h.store.DeleteUser(ctx, user, KindRecoveryCode, recoveryID(user, canonical))
	if err != nil {
		return false, fmt.Errorf("use recovery code: %w", err)
	}
	return n == 1, nil
}

// recoveryCodesLeft counts the user's unused recovery codes.
func (h *Handler) recoveryCodesLeft(ctx context.Context, user string) (int, error) {
	recs, err := h.store.ListUser(ctx, user, KindRecoveryCode)
	if err != nil {
		return 0, fmt.Errorf("count recovery codes: %w", err)
	}
	return len(recs), nil
}

// firstRecoveryCodes gives user, who has just enrolled a factor, a new set
// of recovery codes in place of any earlier one. On an error it answers
// the request and reports false.
func (h *Handler) firstRecoveryCodes(ctx context.Context, w http.ResponseWriter, r *http.Request, user string) ([]string, bool) {
	codes, err := newRecoveryCodes(RecoveryCodeCount)
	if err == nil {
		err = h.replaceRecoveryCodes(ctx, user, codes)
	}
	if err != nil {
		h.internalError(w, r, "recovery codes", err)
		return nil, false
	}
	return codes, true
}
