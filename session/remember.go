package session

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Device is a remembered browser.
type Device struct {
	// ID names the device's store record; revoke it with Manager.Revoke.
	ID string
	// User is the user the browser is remembered for.
	User string
	// Created is when the browser was remembered.
	Created time.Time
	// LastUsed is when the cookie last let the user skip MFA, to about a
	// minute.
	LastUsed time.Time
	// ExpiresAt is the end of the device's lifetime (the idle timeout may
	// end it earlier).
	ExpiresAt time.Time
	// UserAgent summarises the browser, like "Firefox on Windows".
	UserAgent string
	// Realm is where the browser was remembered ([Realms.Of] of the host).
	Realm string
	// Proofs are the factors passed when the browser was remembered: it
	// stands in for those factors only, on its realm only.
	Proofs []Proof
}

type deviceRecord struct {
	Version   int64  `json:"v"`
	Hash      string `json:"h"` // hex SHA-256 of the device token
	Realm     string `json:"r"`
	Proofs    string `json:"p"`
	Created   int64  `json:"c"`
	LastUsed  int64  `json:"lu"`
	Expiry    int64  `json:"exp"`
	UserAgent string `json:"ua,omitempty"`
}

const deviceTokenLen = 32

// IssueRemember remembers this browser for g.User on g.Realm as proof of
// g.Factors (g.SID and g.Carry are not used): it creates a device with a
// random 32-byte token, stores only the token's SHA-256 with the device's
// metadata, and returns the cookie carrying the token. Only second
// factors are remembered: a completed redirect is not.
func (m *Manager) IssueRemember(ctx context.Context, g Grant) (*http.Cookie, Device, error) {
	if err := g.check("issue remember"); err != nil {
		return nil, Device{}, err
	}
	user := g.User
	var proofs []Proof
	id, err := newID()
	if err != nil {
		return nil, Device{}, fmt.Errorf("issue remember: %w", err)
	}
	var tok [deviceTokenLen]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, Device{}, fmt.Errorf("issue remember: %w", err)
	}
	sum := sha256.Sum256(tok[:])
	now := m.now()
	for _, f := range g.Factors {
		if IsFactor(f) {
			proofs = append(proofs, Proof{Factor: f, At: time.Unix(now.Unix(), 0)})
		}
	}
	if len(proofs) == 0 {
		return nil, Device{}, errors.New("issue remember: no second factor to remember")
	}
	iat, exp := now.Unix(), now.Add(m.rememberTTL).Unix()
	rec := deviceRecord{Version: recordVersion, Hash: hex.EncodeToString(sum[:]), Realm: g.Realm, Proofs: encodeProofs(proofs),
		Created: iat, LastUsed: iat, Expiry: exp, UserAgent: SummarizeUserAgent(g.UserAgent)}
	val, err := json.Marshal(rec)
	if err != nil {
		return nil, Device{}, fmt.Errorf("issue remember: %w", err)
	}
	payload, err := json.Marshal(claims{User: user, ID: id, Token: b64.EncodeToString(tok[:]), Issued: iat, Expiry: exp})
	if err != nil {
		return nil, Device{}, fmt.Errorf("issue remember: %w", err)
	}
	token, err := m.kr.Sign(PurposeRemember, payload)
	if err != nil {
		return nil, Device{}, fmt.Errorf("issue remember: %w", err)
	}
	if err := m.store.PutUser(ctx, user, KindDevice, id, val, m.rememberTTL); err != nil {
		return nil, Device{}, storeErr("issue remember", err)
	}
	m.capDevices(ctx, user, id)
	d := rec.device(user, id)
	d.Proofs = proofs
	return m.Cookie(m.rememberName, token, m.rememberTTL), d, nil
}

// capDevices forgets the user's oldest remembered browsers beyond
// [Config.MaxDevicesPerUser], never keep (the one just remembered).
// Unreadable records go first, then those past their idle timeout, then
// the oldest by creation. A failure only leaves the user over the cap
// until the next remember, so it is logged rather than returned: the
// browser was remembered.
func (m *Manager) capDevices(ctx context.Context, user, keep string) {
	recs, err := m.store.ListUser(ctx, user, KindDevice)
	if err != nil {
		m.log.LogAttrs(ctx, slog.LevelWarn, "cannot list remembered browsers to cap them",
			slog.String("user", user), slog.String("error", err.Error()))
		return
	}
	if len(recs) <= m.maxDevices {
		return
	}
	type cand struct {
		id      string
		rank    int // 0 unreadable, 1 idle, 2 live
		created int64
	}
	now := m.now()
	cands := make([]cand, 0, len(recs))
	for _, r := range recs {
		if r.ID == keep {
			continue
		}
		c := cand{id: r.ID}
		if d, _, err := decodeDeviceRecord(user, r.ID, r.Value); err == nil {
			c.rank, c.created = 2, d.Created.Unix()
			if m.deviceStale(d, now) {
				c.rank = 1
			}
		}
		cands = append(cands, c)
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if a.rank != b.rank {
			return cmp.Compare(a.rank, b.rank)
		}
		if a.created != b.created {
			return cmp.Compare(a.created, b.created)
		}
		return strings.Compare(a.id, b.id)
	})
	// keep counts as one of the maxDevices; it is not among cands.
	excess := len(cands) + 1 - m.maxDevices
	evicted := 0
	for _, c := range cands[:max(0, min(excess, len(cands)))] {
		n, err := m.store.DeleteUser(ctx, user, KindDevice, c.id)
		if err != nil {
			m.log.LogAttrs(ctx, slog.LevelWarn, "cannot forget an old remembered browser",
				slog.String("user", user), slog.String("device", c.id), slog.String("error", err.Error()))
			break
		}
		evicted += n
	}
	if evicted > 0 {
		m.log.LogAttrs(ctx, slog.LevelInfo, "forgot the oldest remembered browsers over the per-user cap",
			slog.String("user", user), slog.Int("forgotten", evicted), slog.Int("max", m.maxDevices))
	}
}

// VerifyRemember checks the remember-browser cookie value for user. It
// reads the store once, and writes the last-used time when it is more than
// [TouchInterval] old. Errors: [ErrNoCookie], [ErrMalformed],
// [ErrUnknownKey], [ErrBadSignature] (also when the device token does not
// match the stored hash), [ErrWrongPurpose], [ErrWrongUser], [ErrExpired]
// (also for the idle timeout), [ErrRevoked], and [ErrStoreUnavailable];
// rejections are logged.
func (m *Manager) VerifyRemember(ctx context.Context, value, user string) (Device, error) {
	d, err := m.verifyRemember(ctx, value, user)
	if err != nil {
		return Device{}, m.reject(ctx, PurposeRemember, user, err)
	}
	return d, nil
}

func (m *Manager) verifyRemember(ctx context.Context, value, user string) (Device, error) {
	c, err := m.verifyClaims(PurposeRemember, value, user)
	if err != nil {
		return Device{}, err
	}
	var tok [deviceTokenLen]byte
	if n, err := b64.Decode(tok[:], []byte(c.Token)); err != nil || n != deviceTokenLen || len(c.Token) != b64.EncodedLen(deviceTokenLen) {
		return Device{}, fmt.Errorf("%w: bad device token", ErrMalformed)
	}
	val, err := m.store.GetUser(ctx, user, KindDevice, c.ID)
	if errors.Is(err, ErrNotFound) {
		return Device{}, ErrRevoked
	} else if err != nil {
		return Device{}, storeErr("verify remember", err)
	}
	d, rec, err := decodeDeviceRecord(user, c.ID, val)
	if err != nil {
		return Device{}, err
	}
	sum := sha256.Sum256(tok[:])
	var stored [sha256.Size]byte
	if n, err := hex.Decode(stored[:], []byte(rec.Hash)); err != nil || n != len(stored) {
		return Device{}, fmt.Errorf("%w: device record hash", ErrMalformed)
	}
	if subtle.ConstantTimeCompare(sum[:], stored[:]) != 1 {
		return Device{}, fmt.Errorf("device token: %w", ErrBadSignature)
	}
	now := m.now()
	if m.deviceStale(d, now) {
		return Device{}, ErrExpired
	}
	if now.Sub(d.LastUsed) >= TouchInterval {
		rec.LastUsed = now.Unix()
		if err := m.touch(ctx, user, KindDevice, c.ID, rec, d.ExpiresAt.Sub(now)); err != nil {
			return Device{}, err
		}
		d.LastUsed = time.Unix(rec.LastUsed, 0)
	}
	return d, nil
}

func (m *Manager) deviceStale(d Device, now time.Time) bool {
	return stale(now, d.ExpiresAt, d.LastUsed, m.rememberIdle)
}

func (r deviceRecord) device(user, id string) Device {
	return Device{
		ID:        id,
		User:      user,
		Created:   time.Unix(r.Created, 0),
		LastUsed:  time.Unix(r.LastUsed, 0),
		ExpiresAt: time.Unix(r.Expiry, 0),
		UserAgent: r.UserAgent,
		Realm:     r.Realm,
	}
}

// decodeDeviceRecord reads a stored device record. A record without the
// current version is [ErrOutdated] (its Device still names it, for
// listing and capping).
func decodeDeviceRecord(user, id string, val []byte) (Device, deviceRecord, error) {
	var rec deviceRecord
	if err := rec.decode(val); err != nil {
		return Device{}, rec, fmt.Errorf("%w: device record: %w", ErrMalformed, err)
	}
	d := rec.device(user, id)
	if rec.Version != recordVersion {
		return d, rec, ErrOutdated
	}
	proofs, err := decodeProofs(rec.Proofs)
	if err != nil || rec.Realm == "" || len(proofs) == 0 {
		return Device{}, rec, fmt.Errorf("%w: device record proofs", ErrMalformed)
	}
	d.Proofs = proofs
	return d, rec, nil
}
