package extauthz

import (
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stepup-dev/stepup/rules"
)

// TestRulesInputUser guards the allocation-saving construction of the
// rules' user object (RulesPolicy.input): from jwt_authn's payload it must
// be exactly the payload as plain Go values (Identity.Claims) plus
// user_id, which wins over a claim of that name; authenticationMethods
// come from auth_time, else iat.
func TestRulesInputUser(t *testing.T) {
	payload := func(m map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(m)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mfaAt := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	rich := map[string]any{
		"sub": "auth0|alice", "email": "alice@corp.example", "aud": []any{"payroll", "hr"},
		"exp": 1900000000, "iat": 1763900000, "auth_time": 1763899000,
		"email_verified": true, "app_metadata": map[string]any{"roles": []any{"admin"}, "level": 3},
		"user_id": "spoofed", "nothing": nil,
	}
	for _, tc := range []struct {
		name        string
		id          *Identity
		mfa         *MFAProof
		wantUser    map[string]any
		wantMethods []rules.Method
	}{
		{
			name: "jwt_authn payload with auth_time",
			id:   &Identity{User: "auth0|alice", payload: payload(rich)},
			wantUser: map[string]any{
				"sub": "auth0|alice", "email": "alice@corp.example", "aud": []any{"payroll", "hr"},
				"exp": float64(1900000000), "iat": float64(1763900000), "auth_time": float64(1763899000),
				"email_verified": true, "app_metadata": map[string]any{"roles": []any{"admin"}, "level": float64(3)},
				"user_id": "auth0|alice", "nothing": nil,
			},
			wantMethods: []rules.Method{{Name: "pwd", Timestamp: 1763899000 * 1000}},
		},
		{
			name:        "jwt_authn payload with iat only, after MFA",
			id:          &Identity{User: "auth0|bob", payload: payload(map[string]any{"sub": "auth0|bob", "iat": 1763900000})},
			mfa:         &MFAProof{SessionID: "s1", Realm: testRealm, Proofs: []Proof{{Factor: "otp", At: mfaAt}}},
			wantUser:    map[string]any{"sub": "auth0|bob", "iat": float64(1763900000), "user_id": "auth0|bob"},
			wantMethods: []rules.Method{{Name: "pwd", Timestamp: 1763900000 * 1000}, {Name: "mfa", Timestamp: mfaAt.UnixMilli()}},
		},
		{
			name:        "claims already materialized (header identity)",
			id:          &Identity{User: "carol", claims: map[string]any{"sub": "carol", "email": "carol@corp.example"}},
			wantUser:    map[string]any{"sub": "carol", "email": "carol@corp.example", "user_id": "carol"},
			wantMethods: []rules.Method{{Name: "pwd"}},
		},
		{
			name:        "no claims at all",
			id:          &Identity{User: "dave"},
			wantUser:    map[string]any{"user_id": "dave"},
			wantMethods: []rules.Method{{Name: "pwd"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.id.claims)
			if tc.id.payload != nil {
				before = tc.id.payload.AsMap()
			}
			p := NewRulesPolicy(nil, nil)
			r := &Request{Host: "app.corp.example", ClientID: "payroll", Headers: map[string]string{}}
			in := p.input(&PolicyInput{Req: r, Identity: tc.id, MFA: tc.mfa})
			if diff := cmp.Diff(tc.wantUser, in.User); diff != "" {
				t.Errorf("user (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantMethods, in.Context.AuthenticationMethods); diff != "" {
				t.Errorf("authenticationMethods (-want +got):\n%s", diff)
			}
			// The identity's own claims are left as they were (user_id
			// goes into the user object only).
			if diff := cmp.Diff(before, tc.id.Claims(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("input modified the identity's claims (-before +after):\n%s", diff)
			}
		})
	}
}

// BenchmarkRulesInput is the conversion of a request into the rules'
// user and context (before the rules engine turns them into JavaScript).
func BenchmarkRulesInput(b *testing.B) {
	s := newTestServer(b, nil)
	var r Request
	if err := s.fromCheckRequest(checkReq("203.0.113.7", withHeader("cookie", benchAppCookies)), &r); err != nil {
		b.Fatal(err)
	}
	p := NewRulesPolicy(nil, map[string]string{"payroll": "Payroll"})
	nets := []string{"corporate"}
	b.ReportAllocs()
	for b.Loop() {
		// A fresh identity per Check, as identify makes.
		id := &Identity{User: "auth0|alice", payload: r.JWTPayload}
		if in := p.input(&PolicyInput{Req: &r, Identity: id, Networks: nets}); in.User == nil {
			b.Fatal("no user")
		}
	}
}
