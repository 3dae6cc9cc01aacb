package extauthz

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/stepup-dev/stepup/rules"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/memstore"
)

func action(name, code string) rules.Source {
	return rules.Source{Name: name, Code: []byte(code), Enabled: true, Kind: rules.ScriptAction}
}

func policyInput(user string, claims map[string]any) *PolicyInput {
	return &PolicyInput{
		Req:      &Request{ClientID: "payroll", Host: "app.example.com", ClientIP: netip.MustParseAddr("203.0.113.7"), Headers: map[string]string{}},
		Identity: &Identity{User: user, claims: claims},
	}
}

// An Action's challengeWith becomes the requirement's factor list, which
// the MFA step and Check honour (session.FactorMeets).
func TestActionRequirementFactors(t *testing.T) {
	e := rulesEngine(t,
		seed(t, "003_extranet.js"),
		action("keys", `exports.onExecutePostLogin = async (event, api) => {
  api.authentication.challengeWith({type: 'webauthn-roaming'}, {additionalFactors: [{type: 'recovery-code'}]});
};`))
	res := NewRulesPolicy(e, nil).Evaluate(context.Background(), policyInput("auth0|a", map[string]any{}))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	q := res.MFA
	if q.Provider != "any" || q.AllowRemember || !slices.Equal(q.Factors, []string{"webauthn-roaming", "recovery-code"}) {
		t.Fatalf("requirement %+v", q)
	}
	if FactorMeets(q.Provider, q.Factors, session.FactorOTP, false) || !FactorMeets(q.Provider, q.Factors, session.FactorWebAuthnRoaming, false) {
		t.Error("factor list not honoured")
	}

	// Only factors stepup cannot prove: fail closed at once.
	e = rulesEngine(t, action("sms", `exports.onExecutePostLogin = async (event, api) => { api.authentication.challengeWith({type: 'phone'}); };`))
	res = NewRulesPolicy(e, nil).Evaluate(context.Background(), policyInput("auth0|a", map[string]any{}))
	if res.Err == nil || res.Err.Reason != ReasonRuleError {
		t.Fatalf("phone only: %+v", res)
	}
}

type failingStore struct{ session.Store }

func (failingStore) ListUser(context.Context, string, string) ([]session.Record, error) {
	return nil, session.ErrStoreUnavailable
}

// Metadata set by an Action (or a rule's auth0.users.update*) is stored
// per user and merged into the user on the next checks.
func TestActionMetadataPersists(t *testing.T) {
	store := memstore.New(memstore.Options{})
	t.Cleanup(func() { _ = store.Close() })
	e := rulesEngine(t,
		action("count", `exports.onExecutePostLogin = async (event, api) => {
  const n = (event.user.app_metadata.logins || 0) + 1;
  api.user.setAppMetadata('logins', n);
  api.user.setUserMetadata('lang', 'de');
  if (n > 2) { api.access.deny('too many logins'); }
};`),
		inline("rule", `function (user, context, callback) {
  user.user_metadata.seen = true;
  auth0.users.updateUserMetadata(user.user_id, user.user_metadata).then(function () { callback(null, user, context); });
}`))
	p := NewRulesPolicy(e, nil)
	p.Metadata = StoreMetadata(store)
	claims := map[string]any{"app_metadata": map[string]any{"plan": "pro"}}
	for i, wantDeny := range []bool{false, false, true} {
		res := p.Evaluate(context.Background(), policyInput("auth0|a", claims))
		if (res.Err != nil) != wantDeny {
			t.Fatalf("check %d: %+v", i+1, res.Err)
		}
	}
	md, err := session.LoadUserMetadata(context.Background(), store, "auth0|a")
	if err != nil {
		t.Fatal(err)
	}
	if md.App["logins"] != float64(3) || md.User["lang"] != "de" || md.User["seen"] != true {
		t.Errorf("stored %+v", md)
	}
	if _, ok := claims["app_metadata"].(map[string]any)["logins"]; ok {
		t.Error("the identity's claims were changed")
	}
	// Another user starts from nothing.
	if res := p.Evaluate(context.Background(), policyInput("auth0|b", map[string]any{})); res.Err != nil {
		t.Fatal(res.Err)
	}

	// A store that cannot answer fails the check closed.
	p.Metadata = StoreMetadata(failingStore{store})
	res := p.Evaluate(context.Background(), policyInput("auth0|a", claims))
	if res.Err == nil || res.Err.Reason != ReasonStoreUnavailable {
		t.Fatalf("store down: %+v", res)
	}
}
