package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Assertion is a short-lived signed statement, made by Check and read by
// the MFA step, of who the user is.
type Assertion struct {
	// User is the user id (the identity's sub).
	User string
	// SID is the identity provider session id, or "".
	SID string
	// Claims is a subset of the identity's claims, such as email and name.
	// Numbers come back as float64.
	Claims map[string]any
	// IssuedAt and ExpiresAt bound the assertion.
	IssuedAt, ExpiresAt time.Time
}

type assertionClaims struct {
	User   string         `json:"u"`
	SID    string         `json:"sid,omitempty"`
	Claims map[string]any `json:"c,omitempty"`
	Issued int64          `json:"iat"`
	Expiry int64          `json:"exp"`
}

// IssueAssertion returns an assertion token for user, valid for
// [Config.AssertionTTL]. Keep claims small: the token must fit in
// [MaxTokenSize].
func (m *Manager) IssueAssertion(user string, claims map[string]any, sid string) (string, error) {
	if user == "" {
		return "", errors.New("issue assertion: empty user")
	}
	now := m.now()
	payload, err := json.Marshal(assertionClaims{User: user, SID: sid, Claims: claims, Issued: now.Unix(), Expiry: now.Add(m.assertionTTL).Unix()})
	if err != nil {
		return "", fmt.Errorf("issue assertion: %w", err)
	}
	token, err := m.kr.Sign(PurposeAssertion, payload)
	if err != nil {
		return "", fmt.Errorf("issue assertion: %w", err)
	}
	return token, nil
}

// VerifyAssertion checks an assertion token and returns what it asserts.
// Errors: [ErrNoCookie] (empty token), [ErrMalformed], [ErrUnknownKey],
// [ErrBadSignature], [ErrWrongPurpose], [ErrExpired]; rejections are
// logged.
func (m *Manager) VerifyAssertion(token string) (Assertion, error) {
	a, err := m.verifyAssertion(token)
	if err != nil {
		return Assertion{}, m.reject(context.Background(), PurposeAssertion, "", err)
	}
	return a, nil
}

func (m *Manager) verifyAssertion(token string) (Assertion, error) {
	if token == "" {
		return Assertion{}, ErrNoCookie
	}
	payload, err := m.kr.Verify(PurposeAssertion, token)
	if err != nil {
		return Assertion{}, err
	}
	var c assertionClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.User == "" {
		return Assertion{}, fmt.Errorf("%w: bad payload", ErrMalformed)
	}
	if expired(c.Expiry, m.now()) {
		return Assertion{}, ErrExpired
	}
	return Assertion{User: c.User, SID: c.SID, Claims: c.Claims, IssuedAt: time.Unix(c.Issued, 0), ExpiresAt: time.Unix(c.Expiry, 0)}, nil
}
