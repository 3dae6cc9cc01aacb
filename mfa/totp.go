package mfa

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
	"rsc.io/qr"

	"github.com/stepup-dev/stepup/session"
)

// Per-user record kinds of the MFA step, next to the session package's
// [session.KindMFA] and [session.KindDevice].
const (
	// KindFactor holds the user's enrolled factors; today one record, id
	// "totp", the authenticator app.
	KindFactor = "factor"
	// KindRecoveryCode holds one record per unused recovery code, named
	// by the code's salted hash.
	KindRecoveryCode = "recovery_code"
)

const (
	factorTOTP = "totp"
	// factorTTL keeps factors until they are reset: the store wants a TTL.
	factorTTL = 100 * 365 * 24 * time.Hour

	totpPeriod = 30 // seconds, what authenticator apps assume
	totpSkew   = 1  // steps accepted either side of now
	// usedStepTTL outlives every step a code can be accepted in.
	usedStepTTL = (2*totpSkew + 2) * totpPeriod * time.Second
	// qrScale is image pixels per QR module.
	qrScale = 5
)

var totpOpts = hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// totpRecord is the stored authenticator: the base32 secret sealed with
// "totp:" + user as associated data.
type totpRecord struct {
	Version int    `json:"v"`
	Sealed  string `json:"sealed"`
	Created int64  `json:"created"`
}

// pendingEnrolment is a secret shown on the enrolment page and not yet
// confirmed, sealed under a plain key bound to the user and the state.
type pendingEnrolment struct {
	Secret  string `json:"secret"`
	Account string `json:"account"`
}

func totpAD(user string) string { return "totp:" + user }

func pendingKey(user, bind string) string { return "mfa:pending:" + userKey(user) + ":" + bind }

func pendingAD(user, bind string) string { return "totp_pending:" + user + ":" + bind }

func usedStepKey(user string, step int64) string {
	return "mfa:totp_used:" + userKey(user) + ":" + strconv.FormatInt(step, 10)
}

// errNoFactor is returned by loadTOTP when the user has no authenticator.
var errNoFactor = errors.New("no authenticator enrolled")

// loadTOTP returns the user's authenticator record, errNoFactor, or a
// store error.
func (h *Handler) loadTOTP(ctx context.Context, user string) (totpRecord, error) {
	val, err := h.store.GetUser(ctx, user, KindFactor, factorTOTP)
	if errors.Is(err, session.ErrNotFound) {
		return totpRecord{}, errNoFactor
	} else if err != nil {
		return totpRecord{}, fmt.Errorf("load authenticator: %w", err)
	}
	var rec totpRecord
	if err := json.Unmarshal(val, &rec); err != nil || rec.Version != 1 || rec.Sealed == "" {
		return totpRecord{}, fmt.Errorf("load authenticator: %w: corrupt record", session.ErrMalformed)
	}
	return rec, nil
}

// openTOTP returns the secret of rec.
func (h *Handler) openTOTP(user string, rec totpRecord) (string, error) {
	pt, err := h.sealer.Open(rec.Sealed, totpAD(user))
	if err != nil {
		return "", fmt.Errorf("open authenticator secret: %w", err)
	}
	return string(pt), nil
}

// storeTOTP saves secret as the user's authenticator.
func (h *Handler) storeTOTP(ctx context.Context, user, secret string) error {
	sealed, err := h.sealer.Seal([]byte(secret), totpAD(user))
	if err != nil {
		return fmt.Errorf("store authenticator: %w", err)
	}
	val, err := json.Marshal(totpRecord{Version: 1, Sealed: sealed, Created: h.now().Unix()})
	if err != nil {
		return fmt.Errorf("store authenticator: %w", err)
	}
	if err := h.store.PutUser(ctx, user, KindFactor, factorTOTP, val, factorTTL); err != nil {
		return fmt.Errorf("store authenticator: %w", err)
	}
	return nil
}

// resealIfOld seals the secret again with the newest key when rec was
// sealed with an older one, so that the older key can be dropped. It
// updates only a record that still exists (a reset wins).
func (h *Handler) resealIfOld(ctx context.Context, user, secret string, rec totpRecord) error {
	if sealedKeyID(rec.Sealed) == h.sealKID {
		return nil
	}
	sealed, err := h.sealer.Seal([]byte(secret), totpAD(user))
	if err != nil {
		return err
	}
	rec.Sealed = sealed
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	err = h.store.UpdateUser(ctx, user, KindFactor, factorTOTP, val, factorTTL)
	if errors.Is(err, session.ErrNotFound) {
		return nil
	}
	return err
}

// sealedKeyID returns the key id of a sealed value ("s1.<kid>.<data>").
func sealedKeyID(sealed string) string {
	parts := strings.SplitN(sealed, ".", 3)
	if len(parts) != 3 {
		return ""
	}
	return parts[1]
}

// pending returns the pending enrolment of user for the state bound by
// bind, creating one with a new secret when there is none (or it cannot
// be opened). ttl bounds a new record.
func (h *Handler) pending(ctx context.Context, user, account, bind string, ttl time.Duration) (pendingEnrolment, error) {
	key, ad := pendingKey(user, bind), pendingAD(user, bind)
	if p, err := h.loadPending(ctx, user, bind); err == nil {
		return p, nil
	} else if !errors.Is(err, session.ErrNotFound) {
		return pendingEnrolment{}, err
	}
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer:      h.issuer,
		AccountName: account,
		Period:      totpPeriod,
		SecretSize:  20,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return pendingEnrolment{}, fmt.Errorf("generate secret: %w", err)
	}
	p := pendingEnrolment{Secret: k.Secret(), Account: account}
	pt, err := json.Marshal(p)
	if err != nil {
		return pendingEnrolment{}, err
	}
	sealed, err := h.sealer.Seal(pt, ad)
	if err != nil {
		return pendingEnrolment{}, err
	}
	if ttl < time.Minute {
		ttl = time.Minute
	}
	// Two tabs loading at once must show the same secret: the first
	// write wins and the other reads it back.
	ok, err := h.store.PutIfAbsent(ctx, key, []byte(sealed), ttl)
	if err != nil {
		return pendingEnrolment{}, fmt.Errorf("save pending enrolment: %w", err)
	}
	if ok {
		return p, nil
	}
	if q, err := h.loadPending(ctx, user, bind); err == nil || !errors.Is(err, session.ErrNotFound) {
		return q, err
	}
	// A record that cannot be opened (sealed with a dropped key): replace it.
	if err := h.store.Put(ctx, key, []byte(sealed), ttl); err != nil {
		return pendingEnrolment{}, fmt.Errorf("save pending enrolment: %w", err)
	}
	return p, nil
}

// decodeSecret decodes a base32 TOTP secret as authenticator apps write it.
func decodeSecret(s string) ([]byte, error) {
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(s, "=")))
	if err != nil {
		return nil, fmt.Errorf("decode secret: %w", err)
	}
	return b, nil
}

// loadPending returns the pending enrolment, or an error wrapping
// session.ErrNotFound when there is none or it cannot be opened.
func (h *Handler) loadPending(ctx context.Context, user, bind string) (pendingEnrolment, error) {
	val, err := h.store.Get(ctx, pendingKey(user, bind))
	if err != nil {
		return pendingEnrolment{}, fmt.Errorf("load pending enrolment: %w", err)
	}
	pt, err := h.sealer.Open(string(val), pendingAD(user, bind))
	if err != nil {
		return pendingEnrolment{}, fmt.Errorf("load pending enrolment: %w: %w", session.ErrNotFound, err)
	}
	var p pendingEnrolment
	if err := json.Unmarshal(pt, &p); err != nil || p.Secret == "" {
		return pendingEnrolment{}, fmt.Errorf("load pending enrolment: %w: corrupt", session.ErrNotFound)
	}
	return p, nil
}

// otpauthURL is the key URI authenticator apps read from the QR code.
func (h *Handler) otpauthURL(p pendingEnrolment) (string, error) {
	secret, err := decodeSecret(p.Secret)
	if err != nil {
		return "", err
	}
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer:      h.issuer,
		AccountName: p.Account,
		Period:      totpPeriod,
		Secret:      secret,
		Digits:      otp.DigitsSix,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", fmt.Errorf("key uri: %w", err)
	}
	return k.URL(), nil
}

// qrPNG renders text as a QR code PNG, qrScale pixels per module, with
// the 4-module quiet zone scanners need.
func qrPNG(text string) ([]byte, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	c.Scale = qrScale
	return c.PNG(), nil
}

// normalizeTOTP returns the six digits of a typed code, ignoring spaces
// and dashes, or false.
func normalizeTOTP(s string) (string, bool) {
	if len(s) > 32 {
		return "", false
	}
	var b [6]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-' || c == '\t':
		case c >= '0' && c <= '9':
			if n == len(b) {
				return "", false
			}
			b[n] = c
			n++
		default:
			return "", false
		}
	}
	if n != len(b) {
		return "", false
	}
	return string(b[:]), true
}

// matchTOTP returns the time step whose code is code, trying now's step
// first and then one step either side.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	cur := now.Unix() / totpPeriod
	for _, step := range []int64{cur, cur - 1, cur + 1} {
		if step < 0 {
			continue
		}
		ok, err := hotp.ValidateCustom(code, uint64(step), secret, totpOpts)
		if err == nil && ok {
			return step, true
		}
	}
	return 0, false
}

// claimStep records that the user's code of step was used. It returns
// false when that step, or a later one a code could still be accepted
// for, was already used: a replay.
func (h *Handler) claimStep(ctx context.Context, user string, step int64) (bool, error) {
	for later := step + 1; later <= step+2*totpSkew; later++ {
		if _, err := h.store.Get(ctx, usedStepKey(user, later)); err == nil {
			return false, nil
		} else if !errors.Is(err, session.ErrNotFound) {
			return false, err
		}
	}
	return h.store.PutIfAbsent(ctx, usedStepKey(user, step), []byte("1"), usedStepTTL)
}

// groupSecret spaces a base32 secret in groups of four for reading.
func groupSecret(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}
