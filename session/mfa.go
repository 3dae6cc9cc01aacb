package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// MaxSIDLen bounds the IdP session id of an MFA session, and MaxRealmLen
// its realm.
const (
	MaxSIDLen   = 512
	MaxRealmLen = 300
)

// recordVersion marks MFA session and device records that name what they
// prove (factors, realm). Records without it were written before sessions
// proved anything specific; they prove nothing and fail with
// [ErrOutdated].
const recordVersion = 2

// MFASession is a browser's proof that User passed a second factor on a
// realm: which factors, and when each.
type MFASession struct {
	// ID names the session's store record; revoke it with Manager.Revoke.
	ID string
	// User is the user who passed MFA.
	User string
	// SID is the identity provider's session id at the time, or "".
	SID string
	// Realm is where the session was proven: a host, or a configured group
	// of hosts ([Realms.Of]). It proves nothing elsewhere.
	Realm string
	// Proofs are the factors (and completed redirects) the session proves,
	// newest first, each with the time it was proven; only those still
	// within the session lifetime are listed.
	Proofs []Proof
	// AuthTime is when the newest proof was made.
	AuthTime time.Time
	// IssuedAt is when the session was created.
	IssuedAt time.Time
	// ExpiresAt is the end of the session's lifetime.
	ExpiresAt time.Time
	// LastSeen is when the session was last used, to about a minute.
	LastSeen time.Time
	// UserAgent summarises the browser, like "Chrome on Linux".
	UserAgent string
}

// Factors returns the names of the session's proofs, newest first.
func (s MFASession) Factors() []string {
	out := make([]string, len(s.Proofs))
	for i, p := range s.Proofs {
		out[i] = p.Factor
	}
	return out
}

type mfaRecord struct {
	Version   int64  `json:"v"`
	SID       string `json:"sid,omitempty"`
	Realm     string `json:"r"`
	Proofs    string `json:"p"`
	Issued    int64  `json:"iat"`
	Expiry    int64  `json:"exp"`
	LastSeen  int64  `json:"ls"`
	UserAgent string `json:"ua,omitempty"`
}

// Grant is what a completed step proves, for [Manager.IssueMFASession] and
// [Manager.IssueRemember].
type Grant struct {
	// User passed the step. Required.
	User string
	// SID is the identity provider's session id, or "".
	SID string
	// Realm is where the step was completed ([Realms.Of] of its host).
	// Required.
	Realm string
	// Factors are what the step proved now: factor names (see [FactorOTP]
	// and the others) or a completed redirect ([CompletedRedirect]).
	// Required.
	Factors []string
	// UserAgent is the raw User-Agent header; only a summary is kept.
	UserAgent string
	// Carry is the browser's current MFA session cookie, or "". Its proofs
	// on the same realm, for the same user and IdP session, that are still
	// within the session lifetime are carried into the new session (a
	// completed redirect followed by a factor proves both); the old
	// session is revoked.
	Carry string
}

func (g Grant) check(op string) error {
	switch {
	case g.User == "":
		return fmt.Errorf("%s: empty user", op)
	case g.Realm == "" || len(g.Realm) > MaxRealmLen:
		return fmt.Errorf("%s: realm must be 1-%d bytes", op, MaxRealmLen)
	case len(g.SID) > MaxSIDLen:
		return fmt.Errorf("%s: sid longer than %d bytes", op, MaxSIDLen)
	case len(g.Factors) == 0 || len(g.Factors) > 4:
		return fmt.Errorf("%s: 1-4 factors needed", op)
	}
	for _, f := range g.Factors {
		if !validFactorName(f) {
			return fmt.Errorf("%s: invalid factor name %q", op, f)
		}
	}
	return nil
}

// IssueMFASession records that g.User proved g.Factors now on g.Realm,
// within the identity provider session g.SID ("" when the identity has
// none), carrying over what g.Carry proved, and returns the cookie to set.
// The session gets a new id (the carried one is revoked), so a session
// never changes what it proves under the same id.
func (m *Manager) IssueMFASession(ctx context.Context, g Grant) (*http.Cookie, MFASession, error) {
	if err := g.check("issue mfa session"); err != nil {
		return nil, MFASession{}, err
	}
	id, err := newID()
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	now := m.now()
	add := make([]Proof, len(g.Factors))
	for i, f := range g.Factors {
		add[i] = Proof{Factor: f, At: time.Unix(now.Unix(), 0)}
	}
	var old []Proof
	carried := ""
	if g.Carry != "" {
		prev, err := m.verifyMFASession(ctx, g.Carry, g.User, g.SID)
		switch {
		case err == nil && prev.Realm == g.Realm:
			old, carried = prev.Proofs, prev.ID
		case errors.Is(err, ErrStoreUnavailable):
			return nil, MFASession{}, err
		}
	}
	proofs := mergeProofs(add, old, now, m.mfaTTL)
	iat, exp := now.Unix(), now.Add(m.mfaTTL).Unix()
	rec := mfaRecord{Version: recordVersion, SID: g.SID, Realm: g.Realm, Proofs: encodeProofs(proofs),
		Issued: iat, Expiry: exp, LastSeen: iat, UserAgent: SummarizeUserAgent(g.UserAgent)}
	val, err := json.Marshal(rec)
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	payload, err := json.Marshal(claims{User: g.User, ID: id, Issued: iat, Expiry: exp})
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	token, err := m.kr.Sign(PurposeMFASession, payload)
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	if err := m.store.PutUser(ctx, g.User, KindMFA, id, val, m.mfaTTL); err != nil {
		return nil, MFASession{}, storeErr("issue mfa session", err)
	}
	if carried != "" {
		if _, err := m.store.DeleteUser(ctx, g.User, KindMFA, carried); err != nil {
			// The new session is issued; the old one ends on its own.
			m.log.LogAttrs(ctx, slog.LevelWarn, "cannot revoke the mfa session a new one replaced",
				slog.String("user", g.User), slog.String("error", err.Error()))
		}
	}
	s := rec.session(g.User, id)
	s.Proofs = proofs
	s.AuthTime = proofs[0].At
	return m.Cookie(m.mfaName, token, m.mfaTTL), s, nil
}

// VerifyMFASession checks the MFA session cookie value for user and, when
// sid is not "", for that identity provider session. It reads the store
// once, and writes the last-seen time when it is more than [TouchInterval]
// old. Errors: [ErrNoCookie], [ErrMalformed], [ErrUnknownKey],
// [ErrBadSignature], [ErrWrongPurpose], [ErrWrongUser], [ErrExpired] (also
// for the idle timeout), [ErrRevoked], [ErrWrongSession], and
// [ErrStoreUnavailable]; rejections are logged.
func (m *Manager) VerifyMFASession(ctx context.Context, value, user, sid string) (MFASession, error) {
	s, err := m.verifyMFASession(ctx, value, user, sid)
	if err != nil {
		return MFASession{}, m.reject(ctx, PurposeMFASession, user, err)
	}
	return s, nil
}

func (m *Manager) verifyMFASession(ctx context.Context, value, user, sid string) (MFASession, error) {
	c, err := m.verifyClaims(PurposeMFASession, value, user)
	if err != nil {
		return MFASession{}, err
	}
	val, err := m.store.GetUser(ctx, user, KindMFA, c.ID)
	if errors.Is(err, ErrNotFound) {
		return MFASession{}, ErrRevoked
	} else if err != nil {
		return MFASession{}, storeErr("verify mfa session", err)
	}
	now := m.now()
	s, rec, err := m.decodeMFA(user, c.ID, val, now)
	if err != nil {
		return MFASession{}, err
	}
	if m.mfaStale(s, now) || len(s.Proofs) == 0 {
		return MFASession{}, ErrExpired
	}
	// A session bound to an IdP session proves nothing to an identity
	// without that session (another login, or a source that carries no
	// sid), and one proven without it nothing to an identity with one.
	if rec.SID != sid {
		return MFASession{}, ErrWrongSession
	}
	if now.Sub(s.LastSeen) >= TouchInterval {
		rec.LastSeen = now.Unix()
		if err := m.touch(ctx, user, KindMFA, c.ID, rec, s.ExpiresAt.Sub(now)); err != nil {
			return MFASession{}, err
		}
		s.LastSeen = time.Unix(rec.LastSeen, 0)
	}
	return s, nil
}

// verifyClaims checks a token of purpose for user: signature, purpose,
// user, expiry.
func (m *Manager) verifyClaims(purpose, value, user string) (claims, error) {
	if value == "" {
		return claims{}, ErrNoCookie
	}
	var buf [512]byte
	payload, err := m.kr.verify(purpose, value, buf[:0])
	if err != nil {
		return claims{}, err
	}
	return m.checkClaims(payload, user)
}

// checkClaims decodes a verified payload and checks its user and expiry.
func (m *Manager) checkClaims(payload []byte, user string) (claims, error) {
	var c claims
	if err := c.decodeFor(payload, user); err != nil || c.User == "" || !validID(c.ID) {
		return claims{}, fmt.Errorf("%w: bad payload", ErrMalformed)
	}
	if c.User != user {
		return claims{}, ErrWrongUser
	}
	if expired(c.Expiry, m.now()) {
		return claims{}, ErrExpired
	}
	return c, nil
}

// touch rewrites a record that still exists; a record revoked meanwhile
// stays revoked.
func (m *Manager) touch(ctx context.Context, user, kind, id string, rec any, ttl time.Duration) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("touch %s record: %w", kind, err)
	}
	if ttl < time.Second {
		ttl = time.Second
	}
	err = m.store.UpdateUser(ctx, user, kind, id, val, ttl)
	if errors.Is(err, ErrNotFound) {
		return ErrRevoked
	} else if err != nil {
		return storeErr("touch "+kind+" record", err)
	}
	return nil
}

func (m *Manager) mfaStale(s MFASession, now time.Time) bool {
	return stale(now, s.ExpiresAt, s.LastSeen, m.mfaIdle)
}

// stale reports whether something that expires at expires, was last used
// at last and lapses after idle unused (0: never) is over at now.
func stale(now, expires, last time.Time, idle time.Duration) bool {
	return !now.Before(expires) || (idle > 0 && now.Sub(last) >= idle)
}

func (r mfaRecord) session(user, id string) MFASession {
	return MFASession{
		ID:        id,
		User:      user,
		SID:       r.SID,
		Realm:     r.Realm,
		IssuedAt:  time.Unix(r.Issued, 0),
		ExpiresAt: time.Unix(r.Expiry, 0),
		LastSeen:  time.Unix(r.LastSeen, 0),
		UserAgent: r.UserAgent,
	}
}

// decodeMFA reads a stored MFA session record with the proofs still live
// at now. A record without the current version is [ErrOutdated].
func (m *Manager) decodeMFA(user, id string, val []byte, now time.Time) (MFASession, mfaRecord, error) {
	var rec mfaRecord
	if err := rec.decode(val); err != nil {
		return MFASession{}, rec, fmt.Errorf("%w: mfa session record: %w", ErrMalformed, err)
	}
	if rec.Version != recordVersion {
		return MFASession{}, rec, ErrOutdated
	}
	proofs, err := decodeProofs(rec.Proofs)
	if err != nil || rec.Realm == "" {
		return MFASession{}, rec, fmt.Errorf("%w: mfa session record proofs", ErrMalformed)
	}
	s := rec.session(user, id)
	s.Proofs = liveProofs(proofs, now, m.mfaTTL)
	if len(s.Proofs) > 0 {
		s.AuthTime = s.Proofs[0].At
	}
	return s, rec, nil
}
