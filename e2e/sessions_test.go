package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// sessionsYAML configures stepup's sessions with one fixed key and the
// given store block.
func sessionsYAML(key session.Key, store string) string {
	return fmt.Sprintf("sessions:\n  keys:\n    - id: %s\n      secret: %q\n  store:\n%s",
		key.ID, strings.SplitN(session.FormatKeys([]session.Key{key}), ":", 2)[1], store)
}

// reasonOf sends an extranet browser Check with cookie and returns the
// decision's reason.
func reasonOf(t *testing.T, s *harness.Stepup, cookie string) string {
	t.Helper()
	conn := s.Dial(t)
	req := envoyreq.Browser(extranetIP)
	if cookie != "" {
		req = req.With("cookie", cookie)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req.MustProto())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
}

// TestSharedRedis: two stepup processes sharing one Redis honour each
// other's MFA sessions and remembered browsers, and a revocation through
// the CLI takes effect on both (issue 4).
func TestSharedRedis(t *testing.T) {
	addr := redistest.Start(t)
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig{Extra: sessionsYAML(key, fmt.Sprintf("    type: redis\n    redis:\n      addrs: [%q]\n", addr))}
	cfgPath := writeConfig(t, cfg)
	a := harness.StartStepup(t, stepupBin, harness.StepupOptions{Args: []string{"--config", cfgPath}})
	b := startStepup(t, cfg)

	// Until the MFA step exists, the test creates the artefacts through the
	// session API, as the step will, against the same Redis and keys.
	store, err := redisstore.New(redisstore.Options{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, err := session.NewManager(session.Config{Keys: []session.Key{key}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mfaCookie, _, err := m.IssueMFASession(ctx, session.Grant{User: "auth0|alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"})
	if err != nil {
		t.Fatal(err)
	}
	rbCookie, _, err := m.IssueRemember(ctx, session.Grant{User: "auth0|alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"})
	if err != nil {
		t.Fatal(err)
	}
	mfa := mfaCookie.Name + "=" + mfaCookie.Value
	rb := rbCookie.Name + "=" + rbCookie.Value
	if !strings.HasPrefix(mfaCookie.Name, "__Host-") {
		t.Errorf("cookie %s lacks the __Host- prefix outside development mode", mfaCookie.Name)
	}

	for name, s := range map[string]*harness.Stepup{"a": a, "b": b} {
		if got := reasonOf(t, s, ""); got != "mfa_required" {
			t.Errorf("%s without cookies: %s", name, got)
		}
		if got := reasonOf(t, s, mfa); got != "mfa_session" {
			t.Errorf("%s with the MFA session: %s", name, got)
		}
		if got := reasonOf(t, s, rb); got != "remembered" {
			t.Errorf("%s with the remembered browser: %s", name, got)
		}
	}

	list, err := exec.Command(stepupBin, "sessions", "list", "--user", "auth0|alice", "--config", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("sessions list: %v\n%s", err, list)
	}
	if !strings.Contains(string(list), "1 MFA session(s), 1 remembered browser(s)") || !strings.Contains(string(list), "Chrome on Linux") {
		t.Errorf("sessions list:\n%s", list)
	}
	out, err := exec.Command(stepupBin, "sessions", "revoke", "--user", "auth0|alice", "--config", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("sessions revoke: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "revoked 2") {
		t.Errorf("sessions revoke: %s", out)
	}
	for name, s := range map[string]*harness.Stepup{"a": a, "b": b} {
		for _, c := range []string{mfa, rb} {
			if got := reasonOf(t, s, c); got != "mfa_required" {
				t.Errorf("%s after revocation: %s", name, got)
			}
		}
	}
}

// TestBoltRestart: on the embedded store, a restart keeps MFA sessions and
// remembered browsers; while the server runs, the CLI reaches the store
// through the server (the file is locked).
func TestBoltRestart(t *testing.T) {
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := serverConfig{Extra: sessionsYAML(key, "    type: bolt\n")}
	cfgPath := writeConfig(t, cfg)
	dbPath := filepath.Join(filepath.Dir(cfgPath), "data", "sessions.db")

	store, err := boltstore.Open(dbPath, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.NewManager(session.Config{Keys: []session.Key{key}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mc, _, err := m.IssueMFASession(ctx, session.Grant{User: "auth0|alice", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := m.IssueRemember(ctx, session.Grant{User: "auth0|alice", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	mfa, rb := mc.Name+"="+mc.Value, rc.Name+"="+rc.Value

	for round := 1; round <= 2; round++ {
		s := harness.StartStepup(t, stepupBin, harness.StepupOptions{Args: []string{"--config", cfgPath}})
		if got := reasonOf(t, s, mfa); got != "mfa_session" {
			t.Errorf("round %d, MFA session: %s", round, got)
		}
		if got := reasonOf(t, s, rb); got != "remembered" {
			t.Errorf("round %d, remembered browser: %s", round, got)
		}
		if round == 2 {
			// The store is locked by the server: the CLI goes through it.
			out, err := exec.Command(stepupBin, "sessions", "revoke", "--user", "auth0|alice", "--config", cfgPath).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "revoked 2") {
				t.Fatalf("sessions revoke with the server running: %v\n%s", err, out)
			}
			if got := reasonOf(t, s, rb); got != "mfa_required" {
				t.Errorf("after revocation: %s", got)
			}
		}
		if code := s.Stop(t); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
}

// testRealm is the realm of the Envoy-shaped requests the tests send
// (envoyreq's authority).
const testRealm = "app.corp.example"
