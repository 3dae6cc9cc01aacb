package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxStateSize bounds the JSON size of a [State].
const MaxStateSize = 32 << 10

// MaxEmbeddedStateSize is the largest [State], as JSON, that
// [Manager.NewState] carries in the token itself; a larger one (a very
// long return URL, say) is kept in the store and the token names it, so
// that tokens stay small enough for URLs and cookies.
const MaxEmbeddedStateSize = 2 << 10

// Requirement is what a rule asked for: the MFA provider and whether a
// remembered browser may satisfy it.
type Requirement struct {
	// Provider is context.multifactor.provider: "any",
	// "google-authenticator", "duo", …
	Provider string `json:"provider"`
	// AllowRemember is false when the rule set allowRememberBrowser: false
	// or ignoreCookie: true.
	AllowRemember bool `json:"allow_remember"`
	// Factors, when set, are the only factors the step may accept (an
	// Action's challengeWith); empty means those Provider allows.
	Factors []string `json:"factors,omitempty"`
	// Options carries provider options by name. The state token carries
	// them encrypted, but a large state is kept in the store as is: never
	// copy a secret here in plain; seal it with [Sealer.SealOption] (a Duo
	// client secret, say).
	Options map[string]string `json:"options,omitempty"`
}

// State is a transaction state: what to do when the browser comes back
// from the MFA step or a redirect.
type State struct {
	// ID identifies the transaction: random, it names the marker that
	// says the state was used (or, for a large state, its store record);
	// set by NewState.
	ID string `json:"id"`
	// User is the user the state belongs to. Required.
	User string `json:"user"`
	// ClientID is the application (client) id of the original request.
	ClientID string `json:"client_id,omitempty"`
	// Host is the canonical host of the original request ([CanonicalHost]):
	// the state completes on that host only.
	Host string `json:"host,omitempty"`
	// ReturnURL is where to send the browser afterwards.
	ReturnURL string `json:"return_url,omitempty"`
	// Requirement is what the rules asked for.
	Requirement Requirement `json:"requirement"`
	// RedirectURL is set when a rule's context.redirect started the
	// transaction (Auth0's redirect protocol); the browser comes back to
	// the MFA step's continue endpoint with the state.
	RedirectURL string `json:"redirect_url,omitempty"`
	// Completes is what completing a redirect's state proves: a declared
	// MFA service's factor ([RedirectFactor]) or the completion of a
	// redirect that is not an MFA service ([CompletedRedirect]).
	Completes string `json:"completes,omitempty"`
	// Created is when the state was made; set by NewState.
	Created time.Time `json:"created"`
	// ExpiresAt is when the state stops working; set by NewState.
	ExpiresAt time.Time `json:"expires_at"`
}

func stateKey(id string) string { return "state:" + id }

// stateUsedKey names the marker that says the embedded state id was used.
func stateUsedKey(id string) string { return "state-used:" + id }

// stateUsedSlack keeps a used-marker a little longer than its state's
// lifetime (the longer of its whole lifetime and what remains of it on the
// consuming replica's clock), so that a replica whose clock lags behind
// still sees it.
const stateUsedSlack = time.Minute

// stateUsedMarker is the value of a used-marker.
var stateUsedMarker = []byte{'1'}

// errStateUsed is what ConsumeState and LoadState return for a state
// already used, or whose stored record is gone.
var errStateUsed = fmt.Errorf("state already used or expired: %w", ErrNotFound)

// NewState returns a signed token carrying st, sealed (AES-256-GCM with a
// key derived from the signing key for this token only): the token can be
// neither read nor altered, and NewState does not touch the store. A State
// whose JSON is larger than [MaxEmbeddedStateSize] (a very long return URL)
// is stored instead for [Config.StateTTL], and the token names it. ID,
// Created and ExpiresAt are set by NewState.
func (m *Manager) NewState(ctx context.Context, st State) (string, error) {
	if st.User == "" {
		return "", errors.New("new state: empty user")
	}
	rawID, id, err := newStateID()
	if err != nil {
		return "", fmt.Errorf("new state: %w", err)
	}
	now := m.now()
	st.ID = id
	st.Created = now.UTC().Truncate(time.Second)
	st.ExpiresAt = now.Add(m.stateTTL).UTC().Truncate(time.Second)
	val, ok := appendStateJSON(make([]byte, 0, 512), &st)
	if !ok {
		if val, err = json.Marshal(st); err != nil {
			return "", fmt.Errorf("new state: %w", err)
		}
	}
	if len(val) > MaxStateSize {
		return "", fmt.Errorf("new state: %d bytes, more than %d", len(val), MaxStateSize)
	}
	if len(val) <= MaxEmbeddedStateSize {
		token, err := m.sealState(stateEmbedded, rawID, val)
		if err != nil {
			return "", fmt.Errorf("new state: %w", err)
		}
		return token, nil
	}
	payload, err := json.Marshal(claims{User: st.User, ID: id, Issued: st.Created.Unix(), Expiry: st.ExpiresAt.Unix()})
	if err != nil {
		return "", fmt.Errorf("new state: %w", err)
	}
	token, err := m.sealState(stateStored, rawID, payload)
	if err != nil {
		return "", fmt.Errorf("new state: %w", err)
	}
	if err := m.store.Put(ctx, stateKey(id), val, m.stateTTL); err != nil {
		return "", storeErr("new state", err)
	}
	return token, nil
}

// ConsumeState returns the state carried or named by token and uses it up,
// so that it works exactly once, even when several requests race (on
// several replicas sharing a store, too). The token's signature, purpose,
// expiry and user are checked BEFORE anything is written: a leaked link
// presented by another user fails with [ErrWrongUser] and the rightful user
// can still use it. Using a state up is the one store write of a
// transaction: an atomic [Store.PutIfAbsent] of a marker for the state's
// id, kept for at least the state's whole lifetime (or, for a stored
// state, an atomic [Store.Consume] of its record). A state already used, or gone from
// the store, yields [ErrNotFound]. Other errors as for
// [Manager.VerifyMFASession]; rejections are logged.
func (m *Manager) ConsumeState(ctx context.Context, token, user string) (State, error) {
	st, err := m.loadState(ctx, token, user, true)
	if err != nil {
		return State{}, m.reject(ctx, PurposeState, user, err)
	}
	return st, nil
}

// LoadState is like ConsumeState but does not use the state up, for a page
// that shows a form before the step completes. It reads the store once,
// to refuse a state already used.
func (m *Manager) LoadState(ctx context.Context, token, user string) (State, error) {
	st, err := m.loadState(ctx, token, user, false)
	if err != nil {
		return State{}, m.reject(ctx, PurposeState, user, err)
	}
	return st, nil
}

func (m *Manager) loadState(ctx context.Context, token, user string, consume bool) (State, error) {
	t, err := m.openState(token, user)
	if err != nil {
		return State{}, err
	}
	if t.stored {
		return m.loadStoredState(ctx, t.id, user, consume)
	}
	key := stateUsedKey(t.id)
	if !consume {
		_, err := m.store.Get(ctx, key)
		switch {
		case err == nil:
			return State{}, errStateUsed
		case errors.Is(err, ErrNotFound):
			return t.st, nil
		default:
			return State{}, storeErr("load state", err)
		}
	}
	// The marker must outlive the state on every replica's clock, this
	// one's included: a clock running ahead would shorten the remaining
	// lifetime, so the marker lasts at least the state's whole lifetime
	// (from the token, whatever this clock says).
	ttl := max(t.st.ExpiresAt.Sub(m.now()), t.st.ExpiresAt.Sub(t.st.Created)) + stateUsedSlack
	if ttl < time.Second {
		ttl = time.Second
	}
	ok, err := m.store.PutIfAbsent(ctx, key, stateUsedMarker, ttl)
	if err != nil {
		return State{}, storeErr("consume state", err)
	}
	if !ok {
		return State{}, errStateUsed
	}
	return t.st, nil
}

// loadStoredState reads (consume: atomically reads and deletes) the State
// record with the id.
func (m *Manager) loadStoredState(ctx context.Context, id, user string, consume bool) (State, error) {
	var (
		val []byte
		err error
	)
	if consume {
		val, err = m.store.Consume(ctx, stateKey(id))
	} else {
		val, err = m.store.Get(ctx, stateKey(id))
	}
	if errors.Is(err, ErrNotFound) {
		return State{}, errStateUsed
	} else if err != nil {
		return State{}, storeErr("load state", err)
	}
	var st State
	if err := json.Unmarshal(val, &st); err != nil {
		return State{}, fmt.Errorf("%w: state record: %w", ErrMalformed, err)
	}
	if st.User != user || st.ID != id {
		return State{}, ErrWrongUser
	}
	return st, nil
}
