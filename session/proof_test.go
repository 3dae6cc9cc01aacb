package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/session"
)

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"app.example.com":            "app.example.com",
		"App.Example.COM":            "app.example.com",
		"app.example.com.":           "app.example.com",
		"PAYROLL.example.org.:443":   "payroll.example.org",
		"app.example.com:8443":       "app.example.com",
		"[2001:DB8::1]:443":          "2001:db8::1",
		"[::1]":                      "::1",
		"127.0.0.1:9192":             "127.0.0.1",
		"":                           "",
		"xn--bcher-kva.example.":     "xn--bcher-kva.example",
		"localhost.":                 "localhost",
		"app.example.com.:https-bad": "app.example.com",
	} {
		if got := session.CanonicalHost(in); got != want {
			t.Errorf("CanonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRealms(t *testing.T) {
	r, err := session.NewRealms(map[string][]string{
		"corp":  {"app.corp.example", "*.intra.example"},
		"inner": {"*.secret.intra.example"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{
		"app.corp.example":         "realm:corp",
		"APP.corp.example.:443":    "realm:corp",
		"wiki.intra.example":       "realm:corp",
		"a.b.intra.example":        "realm:corp",
		"intra.example":            "intra.example",
		"x.secret.intra.example":   "realm:inner",
		"other.example":            "other.example",
		"evilapp.corp.example":     "evilapp.corp.example",
		"app.corp.example.evil.io": "app.corp.example.evil.io",
	} {
		if got := r.Of(host); got != want {
			t.Errorf("Of(%q) = %q, want %q", host, got, want)
		}
	}
	var none *session.Realms
	if got := none.Of("App.Example."); got != "app.example" {
		t.Errorf("nil realms: %q", got)
	}
	for _, bad := range []map[string][]string{
		{"a b": {"x.example"}},
		{"a": {}},
		{"a": {"x.example"}, "b": {"x.example"}},
		{"a": {"*"}},
		{"a": {"x.*.example"}},
		{"a": {"https://x.example/"}},
	} {
		if _, err := session.NewRealms(bad); err == nil {
			t.Errorf("NewRealms(%v) accepted", bad)
		}
	}
}

// TestGrantCarriesProofs: a new session carries what the browser's
// current session proves on the same realm for the same user, and the
// old session is revoked; nothing is carried across realms, users or IdP
// sessions, and proofs past the session lifetime are dropped.
func TestGrantCarriesProofs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, func(c *session.Config) { c.MFASessionIdle = session.NoTimeout })
	issue := func(g session.Grant) (string, session.MFASession) {
		t.Helper()
		c, s, err := e.m.IssueMFASession(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		return c.Value, s
	}
	done := session.CompletedRedirect("https://terms.example/accept")
	first, s1 := issue(session.Grant{User: "alice", SID: "s", Realm: testRealm, Factors: []string{done}})
	e.clk.Advance(time.Minute)
	second, s2 := issue(session.Grant{User: "alice", SID: "s", Realm: testRealm, Factors: []string{"otp"}, Carry: first})
	if got := s2.Factors(); !slices.Equal(got, []string{"otp", done}) {
		t.Fatalf("carried %v", got)
	}
	if s2.Proofs[1].At != s1.Proofs[0].At || !s2.AuthTime.Equal(epoch.Add(time.Minute)) {
		t.Errorf("proof times %+v", s2.Proofs)
	}
	if _, err := e.m.VerifyMFASession(ctx, first, "alice", "s"); !errors.Is(err, session.ErrRevoked) {
		t.Errorf("the replaced session still verifies: %v", err)
	}
	if _, err := e.m.VerifyMFASession(ctx, second, "alice", "s"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		g    session.Grant
	}{
		{"another realm", session.Grant{User: "alice", SID: "s", Realm: "other.example", Factors: []string{"duo"}, Carry: second}},
		{"another IdP session", session.Grant{User: "alice", SID: "t", Realm: testRealm, Factors: []string{"duo"}, Carry: second}},
		{"another user", session.Grant{User: "bob", SID: "s", Realm: testRealm, Factors: []string{"duo"}, Carry: second}},
	} {
		if _, s := issue(tc.g); !slices.Equal(s.Factors(), []string{"duo"}) {
			t.Errorf("%s: carried %v", tc.name, s.Factors())
		}
	}
	// The otp proof outlives neither the session lifetime nor its own.
	e.clk.Advance(12*time.Hour - 30*time.Second)
	_, s4 := issue(session.Grant{User: "alice", SID: "s", Realm: testRealm, Factors: []string{"duo"}, Carry: second})
	if got := s4.Factors(); !slices.Equal(got, []string{"duo", "otp"}) {
		t.Errorf("near the end of the lifetime: %v", got)
	}
}

func TestGrantRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	for _, g := range []session.Grant{
		{Realm: testRealm, Factors: []string{"otp"}},
		{User: "alice", Factors: []string{"otp"}},
		{User: "alice", Realm: testRealm},
		{User: "alice", Realm: testRealm, Factors: []string{"otp,duo"}},
		{User: "alice", Realm: testRealm, Factors: []string{"otp@1"}},
		{User: "alice", Realm: testRealm, Factors: []string{""}},
	} {
		if _, _, err := e.m.IssueMFASession(ctx, g); err == nil {
			t.Errorf("IssueMFASession(%+v) accepted", g)
		}
	}
	// Only second factors are remembered.
	if _, _, err := e.m.IssueRemember(ctx, session.Grant{User: "alice", Realm: testRealm, Factors: []string{session.CompletedRedirect("https://x.example")}}); err == nil {
		t.Error("a completed redirect was remembered")
	}
	_, d, err := e.m.IssueRemember(ctx, session.Grant{User: "alice", Realm: testRealm, Factors: []string{"otp", session.FactorDuoFallback}})
	if err != nil || len(d.Proofs) != 1 || d.Proofs[0].Factor != "otp" {
		t.Errorf("remembered %+v, %v", d, err)
	}
}

// TestOutdatedRecords: records written before records named their
// factors and realm prove nothing, are listed (so that they can be
// revoked), and are the first a per-user cap forgets.
func TestOutdatedRecords(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	mc, ms := issueMFA(t, e.m, "alice", "")
	rc, d := issueRemember(t, e.m, "alice")
	oldMFA := []byte(`{"m":"otp","at":1772366400,"iat":1772366400,"exp":1772409600,"ls":1772366400,"ua":"Chrome on Linux"}`)
	oldDevice := []byte(`{"h":"` + hashOf(t, e, rc.Value) + `","c":1772366400,"lu":1772366400,"exp":1774958400}`)
	if err := e.store.UpdateUser(ctx, "alice", session.KindMFA, ms.ID, oldMFA, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := e.store.UpdateUser(ctx, "alice", session.KindDevice, d.ID, oldDevice, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.VerifyMFASession(ctx, mc.Value, "alice", ""); !errors.Is(err, session.ErrOutdated) {
		t.Errorf("outdated MFA session: %v", err)
	}
	if _, err := e.m.VerifyRemember(ctx, rc.Value, "alice"); !errors.Is(err, session.ErrOutdated) {
		t.Errorf("outdated remembered browser: %v", err)
	}
	if session.Reason(session.ErrOutdated) != "outdated" {
		t.Error("reason")
	}
	list, err := e.m.ListUser(ctx, "alice")
	if err != nil || len(list.MFA) != 1 || len(list.MFA[0].Proofs) != 0 || len(list.Devices) != 1 || len(list.Devices[0].Proofs) != 0 {
		t.Errorf("listing %+v, %v", list, err)
	}
}

// hashOf returns the device hash stored for the remembered browser whose
// cookie is value (the only device of alice).
func hashOf(t *testing.T, e *env, _ string) string {
	t.Helper()
	recs, err := e.mem.ListUser(context.Background(), "alice", session.KindDevice)
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	var rec struct {
		H string `json:"h"`
	}
	if err := json.Unmarshal(recs[0].Value, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.H
}
