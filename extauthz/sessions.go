package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/stepup-dev/stepup/session"
)

// NewSessions adapts a session manager to the decision core. A cookie that
// fails verification for any reason (forged, tampered, expired, revoked,
// another user's, another key's) counts for nothing; only a store that
// cannot answer is an error, and the check then fails closed.
func NewSessions(m *session.Manager) Sessions {
	mfa, remember, _ := m.CookieNames()
	return &managerSessions{m: m, mfa: mfa, remember: remember}
}

type managerSessions struct {
	m             *session.Manager
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
	return MFAProof{Method: ms.Method, At: ms.AuthTime, SessionID: ms.ID}, true, nil
}

func (s *managerSessions) CheckRemember(ctx context.Context, value, user string) (bool, error) {
	if _, err := s.m.VerifyRemember(ctx, value, user); err != nil {
		if errors.Is(err, session.ErrStoreUnavailable) {
			return false, fmt.Errorf("%w: %v", errStore, err)
		}
		return false, nil
	}
	return true, nil
}

func (s *managerSessions) NewState(ctx context.Context, st StepUpState) (string, error) {
	req := session.Requirement{Provider: st.Requirement.Provider, AllowRemember: st.Requirement.AllowRemember}
	if len(st.Requirement.Options) > 0 {
		req.Options = make(map[string]string, len(st.Requirement.Options))
		for k, v := range st.Requirement.Options {
			// Only non-secret scalar options travel in the state (it is
			// stored in plain); secrets stay in the rules' configuration.
			if str, ok := v.(string); ok && !secretOption(k) {
				req.Options[k] = str
			}
		}
	}
	return s.m.NewState(ctx, session.State{
		User:        st.User,
		ClientID:    st.ClientID,
		ReturnURL:   st.ReturnURL,
		Requirement: req,
		RedirectURL: st.RedirectURL,
	})
}

func secretOption(k string) bool {
	switch k {
	case "skey", "secret", "client_secret", "admin":
		return true
	}
	return false
}

// Assertion claims: email, name, nickname, email_verified from the
// identity, plus "client_ip" and "networks" as Check saw them.
func (s *managerSessions) Assertion(id *Identity, clientIP netip.Addr, networks []string) (string, error) {
	claims := map[string]any{"client_ip": clientIP.String()}
	nets := make([]any, len(networks))
	for i, n := range networks {
		nets[i] = n
	}
	claims["networks"] = nets
	if id.Email != "" {
		claims["email"] = id.Email
	}
	c := id.Claims()
	for _, k := range []string{"name", "nickname", "email_verified"} {
		if v, ok := c[k]; ok {
			claims[k] = v
		}
	}
	return s.m.IssueAssertion(id.User, claims, id.SID)
}
