package session_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/session"
)

func TestSealOption(t *testing.T) {
	k1, k2 := testKey("k1", 1), testKey("k2", 2)
	s := mustSealer(t, k1)
	const secret = "fakeduoclientsecretfakeduoclientsecret01"

	var req session.Requirement
	if err := s.SealOption(&req, "auth0|alice", "skey", secret); err != nil {
		t.Fatal(err)
	}
	sealed, ok := req.Options["skey_sealed"]
	if !ok || strings.Contains(sealed, secret) || len(req.Options) != 1 {
		t.Fatalf("options %v: want only skey_sealed, without the secret in plain", req.Options)
	}
	renamed := session.Requirement{Options: map[string]string{"other_sealed": sealed}}

	for _, tc := range []struct {
		name    string
		s       *session.Sealer
		req     session.Requirement
		user    string
		opt     string
		want    string
		wantErr error
	}{
		{"round trip", s, req, "auth0|alice", "skey", secret, nil},
		{"after rotation", mustSealer(t, k2, k1), req, "auth0|alice", "skey", secret, nil},
		{"another user", s, req, "auth0|bob", "skey", "", session.ErrBadSignature},
		{"user with a NUL", s, req, "auth0|alice\x00", "skey", "", session.ErrBadSignature},
		{"moved to another name", s, renamed, "auth0|alice", "other", "", session.ErrBadSignature},
		{"absent", s, session.Requirement{}, "auth0|alice", "skey", "", session.ErrNotFound},
		{"empty", s, session.Requirement{Options: map[string]string{"skey_sealed": ""}}, "auth0|alice", "skey", "", session.ErrNotFound},
		{"key removed", mustSealer(t, k2), req, "auth0|alice", "skey", "", session.ErrUnknownKey},
		{"garbage", s, session.Requirement{Options: map[string]string{"skey_sealed": "plain"}}, "auth0|alice", "skey", "", session.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.s.OpenOption(tc.req, tc.user, tc.opt)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("OpenOption = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}

	if err := s.SealOption(&req, "", "skey", secret); err == nil {
		t.Error("sealed for an empty user")
	}
	if err := s.SealOption(&req, "auth0|alice", "", secret); err == nil {
		t.Error("sealed under an empty name")
	}
}
