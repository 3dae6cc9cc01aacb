package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/stepup-dev/stepup/session"
)

// NewSessions adapts a session manager to the decision core. A cookie that
// fails verification for any reason (forged, tampered, expired, revoked,
// another user's, another key's) counts for nothing; only a store that
// cannot answer is an error, and the check then fails closed.
func NewSessions(m *session.Manager, opts ...SessionsOption) Sessions {
	mfa, remember, _ := m.CookieNames()
	s := &managerSessions{m: m, mfa: mfa, remember: remember}
	for _, o := range opts {
		o(s)
	}
	return s
}

// SessionsOption configures [NewSessions].
type SessionsOption func(*managerSessions)

// WithSealer lets transaction states carry the secret options of a
// requirement (the Duo client secret "skey" a rule hands over) sealed with
// sealer, bound to the state's user, as "<name>_sealed" (see
// [session.Sealer.SealOption]); the MFA step opens them with the same keys.
// Without a sealer secrets are dropped from the state, and a Duo step
// cannot complete.
func WithSealer(sealer *session.Sealer) SessionsOption {
	return func(s *managerSessions) { s.sealer = sealer }
}

type managerSessions struct {
	m             *session.Manager
	sealer        *session.Sealer
	mfa, remember string
}

func (s *managerSessions) MFACookieName() string      { return s.mfa }
func (s *managerSessions) RememberCookieName() string { return s.remember }

func (s *managerSessions) CheckMFA(ctx context.Context, value, user, sid string) (MFAProof, bool, error) {
	ms, err := s.m.VerifyMFASession(ctx, value, user, sid)
	if err != nil {
		if errors.Is(err, session.ErrStoreUnavailable) {
			return MFAProof{}, false, fmt.Errorf("%w: %v", errStore, err)
		}
		return MFAProof{}, false, nil
	}
	return MFAProof{SessionID: ms.ID, Realm: ms.Realm, Proofs: ms.Proofs}, true, nil
}

func (s *managerSessions) CheckRemember(ctx context.Context, value, user string) (RememberProof, bool, error) {
	d, err := s.m.VerifyRemember(ctx, value, user)
	if err != nil {
		if errors.Is(err, session.ErrStoreUnavailable) {
			return RememberProof{}, false, fmt.Errorf("%w: %v", errStore, err)
		}
		return RememberProof{}, false, nil
	}
	return RememberProof{Realm: d.Realm, Proofs: d.Proofs}, true, nil
}

func (s *managerSessions) NewState(ctx context.Context, st StepUpState) (string, error) {
	req := session.Requirement{Provider: st.Requirement.Provider, AllowRemember: st.Requirement.AllowRemember, Factors: st.Requirement.Factors}
	if len(st.Requirement.Options) > 0 {
		req.Options = make(map[string]string, len(st.Requirement.Options))
		for k, v := range st.Requirement.Options {
			// Only non-secret scalar options travel in the state (it is
			// encrypted, but may be kept in the store when large); secrets
			// stay in the rules' configuration.
			if str, ok := v.(string); ok && !secretOption(k) && !strings.HasSuffix(k, session.SealedOptionSuffix) {
				req.Options[k] = str
			}
		}
		// The Duo client secret is needed again at the callback: sealed,
		// never in plain, and never logged.
		if skey, ok := st.Requirement.Options[session.OptionDuoSecret].(string); ok && skey != "" && s.sealer != nil {
			if err := s.sealer.SealOption(&req, st.User, session.OptionDuoSecret, skey); err != nil {
				return "", fmt.Errorf("new state: %w", err)
			}
		}
	}
	return s.m.NewState(ctx, session.State{
		User:        st.User,
		ClientID:    st.ClientID,
		Host:        st.Host,
		ReturnURL:   st.ReturnURL,
		Requirement: req,
		RedirectURL: st.RedirectURL,
		Completes:   st.Completes,
	})
}

func secretOption(k string) bool {
	switch k {
	case session.OptionDuoSecret, "secret", "client_secret", "admin":
		return true
	}
	return false
}

// AssertionUserClaim is the assertion claim that holds the identity's
// whole claim set (session.AssertionUserClaim).
const AssertionUserClaim = session.AssertionUserClaim

// Assertion claims: email, name, nickname, email_verified from the
// identity, "client_ip" and "networks" as Check saw them, and under
// [AssertionUserClaim] every claim of the identity unless that would make
// the token too large (session.MaxTokenSize).
func (s *managerSessions) Assertion(id *Identity, clientIP netip.Addr, networks []string) (string, error) {
	claims := map[string]any{session.AssertionClientIP: clientIP.String()}
	nets := make([]any, len(networks))
	for i, n := range networks {
		nets[i] = n
	}
	claims[session.AssertionNetworks] = nets
	if id.Email != "" {
		claims["email"] = id.Email
	}
	c := id.Claims()
	for _, k := range []string{"name", "nickname", "email_verified"} {
		if v, ok := c[k]; ok {
			claims[k] = v
		}
	}
	if len(c) > 0 {
		claims[AssertionUserClaim] = c
		if a, err := s.m.IssueAssertion(id.User, claims, id.SID); err == nil {
			return a, nil
		}
		// Too large for a token: the subset above still identifies the user.
		delete(claims, AssertionUserClaim)
	}
	return s.m.IssueAssertion(id.User, claims, id.SID)
}
