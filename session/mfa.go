package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// MaxMethodLen and MaxSIDLen bound the method and IdP session id of an MFA
// session.
const (
	MaxMethodLen = 64
	MaxSIDLen    = 512
)

// MFASession is a browser's proof that User passed MFA.
type MFASession struct {
	// ID names the session's store record; revoke it with Manager.Revoke.
	ID string
	// User is the user who passed MFA.
	User string
	// SID is the identity provider's session id at the time, or "".
	SID string
	// Method is the MFA method used, such as "otp" or "duo".
	Method string
	// AuthTime is when MFA was passed.
	AuthTime time.Time
	// IssuedAt is when the session was created (equal to AuthTime today).
	IssuedAt time.Time
	// ExpiresAt is the end of the session's lifetime.
	ExpiresAt time.Time
	// LastSeen is when the session was last used, to about a minute.
	LastSeen time.Time
	// UserAgent summarises the browser, like "Chrome on Linux".
	UserAgent string
}

type mfaRecord struct {
	SID       string `json:"sid,omitempty"`
	Method    string `json:"m"`
	AuthTime  int64  `json:"at"`
	Issued    int64  `json:"iat"`
	Expiry    int64  `json:"exp"`
	LastSeen  int64  `json:"ls"`
	UserAgent string `json:"ua,omitempty"`
}

// IssueMFASession records that user passed MFA now with method, within the
// identity provider session sid ("" when the identity has none), and
// returns the cookie to set. userAgent is the raw User-Agent header; only a
// summary is kept.
func (m *Manager) IssueMFASession(ctx context.Context, user, sid, method, userAgent string) (*http.Cookie, MFASession, error) {
	switch {
	case user == "":
		return nil, MFASession{}, errors.New("issue mfa session: empty user")
	case method == "" || len(method) > MaxMethodLen:
		return nil, MFASession{}, fmt.Errorf("issue mfa session: method must be 1-%d bytes", MaxMethodLen)
	case len(sid) > MaxSIDLen:
		return nil, MFASession{}, fmt.Errorf("issue mfa session: sid longer than %d bytes", MaxSIDLen)
	}
	id, err := newID()
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	now := m.now()
	iat, exp := now.Unix(), now.Add(m.mfaTTL).Unix()
	rec := mfaRecord{SID: sid, Method: method, AuthTime: iat, Issued: iat, Expiry: exp, LastSeen: iat, UserAgent: SummarizeUserAgent(userAgent)}
	val, err := json.Marshal(rec)
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	payload, err := json.Marshal(claims{User: user, ID: id, Issued: iat, Expiry: exp})
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	token, err := m.kr.Sign(PurposeMFASession, payload)
	if err != nil {
		return nil, MFASession{}, fmt.Errorf("issue mfa session: %w", err)
	}
	if err := m.store.PutUser(ctx, user, KindMFA, id, val, m.mfaTTL); err != nil {
		return nil, MFASession{}, storeErr("issue mfa session", err)
	}
	return m.Cookie(m.mfaName, token, m.mfaTTL), rec.session(user, id), nil
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
	var rec mfaRecord
	if err := rec.decode(val); err != nil {
		return MFASession{}, fmt.Errorf("%w: mfa session record: %w", ErrMalformed, err)
	}
	now := m.now()
	s := rec.session(user, c.ID)
	if m.mfaStale(s, now) {
		return MFASession{}, ErrExpired
	}
	if sid != "" && rec.SID != sid {
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
	if !now.Before(s.ExpiresAt) {
		return true
	}
	return m.mfaIdle > 0 && now.Sub(s.LastSeen) >= m.mfaIdle
}

func (r mfaRecord) session(user, id string) MFASession {
	return MFASession{
		ID:        id,
		User:      user,
		SID:       r.SID,
		Method:    r.Method,
		AuthTime:  time.Unix(r.AuthTime, 0),
		IssuedAt:  time.Unix(r.Issued, 0),
		ExpiresAt: time.Unix(r.Expiry, 0),
		LastSeen:  time.Unix(r.LastSeen, 0),
		UserAgent: r.UserAgent,
	}
}

func decodeMFARecord(user, id string, val []byte) (MFASession, error) {
	var rec mfaRecord
	if err := rec.decode(val); err != nil {
		return MFASession{}, fmt.Errorf("%w: mfa session record: %w", ErrMalformed, err)
	}
	return rec.session(user, id), nil
}
