package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/internal/admin"
	"github.com/stepup-dev/stepup/internal/sessions"
	"github.com/stepup-dev/stepup/mfa"
	"github.com/stepup-dev/stepup/session"
)

// factorsConfig writes the default configuration with its data directory
// in a temporary directory.
func factorsConfig(t *testing.T) (*config.Config, string) {
	t.Helper()
	dir := t.TempDir()
	yaml := strings.Replace(string(config.DefaultYAML()), "data_dir: stepup-data", "data_dir: data", 1)
	path := filepath.Join(dir, "stepup.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(mustDataDir(cfg), 0o700); err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

// seedFactors gives user an authenticator, two recovery codes and an MFA
// session, as the MFA step would.
func seedFactors(t *testing.T, store session.Store, m *session.Manager, user string) {
	t.Helper()
	ctx := context.Background()
	for _, r := range []struct{ kind, id string }{{mfa.KindFactor, "totp"}, {mfa.KindRecoveryCode, "rc_a"}, {mfa.KindRecoveryCode, "rc_b"}} {
		if err := store.PutUser(ctx, user, r.kind, r.id, []byte(`{}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := m.IssueMFASession(ctx, session.Grant{User: user, SID: "", Realm: "app.example.com", Factors: []string{"otp"}, UserAgent: ""}); err != nil {
		t.Fatal(err)
	}
}

func TestFactorsReset(t *testing.T) {
	cfg, path := factorsConfig(t)
	log := newLogger(io.Discard, "error")
	store, err := sessions.OpenStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sessions.NewManager(cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	seedFactors(t, store, m, "auth0|alice")
	seedFactors(t, store, m, "auth0|bob")
	store.Close()

	var out, errOut bytes.Buffer
	if err := runFactors(context.Background(), []string{"reset", "--user", "auth0|alice", "--config", path}, &out, &errOut); err != nil {
		t.Fatalf("reset: %v\n%s", err, errOut.String())
	}
	if want := "reset auth0|alice: removed 1 authenticator(s) and 2 recovery code(s), revoked 1 session(s) and remembered browser(s)\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}

	// While a server holds the store, the CLI goes through its admin
	// endpoint.
	store, err = sessions.OpenStore(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, err = sessions.NewManager(cfg, store, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sessions.OpenStore(cfg, log); !sessions.IsLocked(err) {
		t.Fatalf("second open: %v, want locked", err)
	}
	token, err := admin.EnsureToken(mustDataDir(cfg))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	admin.Register(mux, admin.Options{Token: token, Ops: admin.StoreOps{Manager: m, Store: store}, Logger: log})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := admin.WriteAddress(mustDataDir(cfg), strings.TrimPrefix(srv.URL, "http://")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runFactors(context.Background(), []string{"reset", "--json", "--user", "auth0|bob", "--config", path}, &out, &errOut); err != nil {
		t.Fatalf("reset through the admin endpoint: %v", err)
	}
	if !strings.Contains(out.String(), `"recovery_codes": 2`) {
		t.Errorf("admin reset output %q", out.String())
	}
	recs, err := store.ListUser(context.Background(), "auth0|bob", "")
	if err != nil || len(recs) != 0 {
		t.Errorf("bob after reset: %d records, %v", len(recs), err)
	}

	// A wrong token is refused.
	if err := os.WriteFile(filepath.Join(mustDataDir(cfg), admin.TokenFile), []byte(strings.Repeat("0", 64)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runFactors(context.Background(), []string{"reset", "--user", "auth0|bob", "--config", path}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("wrong admin token: %v", err)
	}
}

func TestFactorsUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"list"}, {"reset"}, {"reset", "--user"}, {"reset", "--user", "u", "extra"}} {
		err := runFactors(context.Background(), args, io.Discard, io.Discard)
		if !errors.Is(err, errUsage) {
			t.Errorf("runFactors(%q) = %v, want a usage error", args, err)
		}
	}
}
