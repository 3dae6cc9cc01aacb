package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxStateSize bounds the JSON size of a [State] record.
const MaxStateSize = 32 << 10

// Requirement is what a rule asked for: the MFA provider and whether a
// remembered browser may satisfy it.
type Requirement struct {
	// Provider is context.multifactor.provider: "any",
	// "google-authenticator", "duo", …
	Provider string `json:"provider"`
	// AllowRemember is false when the rule set allowRememberBrowser: false
	// or ignoreCookie: true.
	AllowRemember bool `json:"allow_remember"`
	// Options carries provider options by name. It is kept in the store as
	// is: never copy a secret here in plain; seal it with
	// [Sealer.SealOption] (a Duo client secret, say).
	Options map[string]string `json:"options,omitempty"`
}

// State is a transaction state: what to do when the browser comes back
// from the MFA step or a redirect.
type State struct {
	// ID names the state's store record; set by NewState.
	ID string `json:"id"`
	// User is the user the state belongs to. Required.
	User string `json:"user"`
	// ClientID is the application (client) id of the original request.
	ClientID string `json:"client_id,omitempty"`
	// ReturnURL is where to send the browser afterwards.
	ReturnURL string `json:"return_url,omitempty"`
	// Requirement is what the rules asked for.
	Requirement Requirement `json:"requirement"`
	// RedirectURL is set when a rule's context.redirect started the
	// transaction (Auth0's redirect protocol); the browser comes back to
	// the MFA step's continue endpoint with the state.
	RedirectURL string `json:"redirect_url,omitempty"`
	// Created is when the state was made; set by NewState.
	Created time.Time `json:"created"`
	// ExpiresAt is when the state stops working; set by NewState.
	ExpiresAt time.Time `json:"expires_at"`
}

func stateKey(id string) string { return "state:" + id }

// NewState stores st under a new random id for [Config.StateTTL] and
// returns the signed token that names it and its user. ID, Created and
// ExpiresAt are set by NewState.
func (m *Manager) NewState(ctx context.Context, st State) (string, error) {
	if st.User == "" {
		return "", errors.New("new state: empty user")
	}
	id, err := newID()
	if err != nil {
		return "", fmt.Errorf("new state: %w", err)
	}
	now := m.now()
	st.ID = id
	st.Created = now.UTC().Truncate(time.Second)
	st.ExpiresAt = now.Add(m.stateTTL).UTC().Truncate(time.Second)
	val, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("new state: %w", err)
	}
	if len(val) > MaxStateSize {
		return "", fmt.Errorf("new state: %d bytes, more than %d", len(val), MaxStateSize)
	}
	payload, err := json.Marshal(claims{User: st.User, ID: id, Issued: st.Created.Unix(), Expiry: st.ExpiresAt.Unix()})
	if err != nil {
		return "", fmt.Errorf("new state: %w", err)
	}
	token, err := m.kr.Sign(PurposeState, payload)
	if err != nil {
		return "", fmt.Errorf("new state: %w", err)
	}
	if err := m.store.Put(ctx, stateKey(id), val, m.stateTTL); err != nil {
		return "", storeErr("new state", err)
	}
	return token, nil
}

// ConsumeState returns the state named by token and deletes it, so that it
// works exactly once, even when several requests race. The token's
// signature, purpose, expiry and user are checked BEFORE the state is
// consumed: a leaked link presented by another user fails with
// [ErrWrongUser] and the rightful user can still use it. A state already
// used or gone from the store yields [ErrNotFound]. Other errors as for
// [Manager.VerifyMFASession]; rejections are logged.
func (m *Manager) ConsumeState(ctx context.Context, token, user string) (State, error) {
	st, err := m.loadState(ctx, token, user, true)
	if err != nil {
		return State{}, m.reject(ctx, PurposeState, user, err)
	}
	return st, nil
}

// LoadState is like ConsumeState but leaves the state in the store, for a
// page that shows a form before the step completes.
func (m *Manager) LoadState(ctx context.Context, token, user string) (State, error) {
	st, err := m.loadState(ctx, token, user, false)
	if err != nil {
		return State{}, m.reject(ctx, PurposeState, user, err)
	}
	return st, nil
}

func (m *Manager) loadState(ctx context.Context, token, user string, consume bool) (State, error) {
	c, err := m.verifyClaims(PurposeState, token, user)
	if err != nil {
		return State{}, err
	}
	var val []byte
	if consume {
		val, err = m.store.Consume(ctx, stateKey(c.ID))
	} else {
		val, err = m.store.Get(ctx, stateKey(c.ID))
	}
	if errors.Is(err, ErrNotFound) {
		return State{}, fmt.Errorf("state already used or expired: %w", ErrNotFound)
	} else if err != nil {
		return State{}, storeErr("load state", err)
	}
	var st State
	if err := json.Unmarshal(val, &st); err != nil {
		return State{}, fmt.Errorf("%w: state record: %w", ErrMalformed, err)
	}
	if st.User != user || st.ID != c.ID {
		return State{}, ErrWrongUser
	}
	return st, nil
}
