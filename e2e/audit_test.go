package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
)

// auditLines reads the audit file at path; a missing file has no lines.
func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: not a JSON line: %s", path, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// TestAuditTrail runs the binary with log.audit: every Check is a line
// with the decision log's fields, the file is rotated (renamed, then
// SIGHUP) without losing a line, revocations by the command line are
// audited by the server (through the admin endpoint) and by the command
// line itself (on the store), and no cookie, token or query value
// appears in any line.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := writeConfig(t, serverConfig{Audit: "audit/stepup-audit.log", Extra: sessionsYAML(key, "    type: bolt\n")})
	dir := filepath.Dir(cfgPath)
	if err := os.Mkdir(filepath.Join(dir, "audit"), 0o700); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit", "stepup-audit.log")

	// A remembered browser, issued on the store before the server opens it.
	store, err := boltstore.Open(filepath.Join(dir, "data", "sessions.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := session.NewManager(session.Config{Keys: []session.Key{key}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := m.IssueRemember(context.Background(), session.Grant{User: "auth0|alice", Realm: testRealm, Factors: []string{"otp"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	const bearer = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln"
	secrets := []string{rc.Value, bearer, "month=11", "123456"}

	srv := harness.StartStepup(t, stepupBin, harness.StepupOptions{Args: []string{"--config", cfgPath}})
	client := authv3.NewAuthorizationClient(srv.Dial(t))
	check := func(req *envoyreq.Request) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := client.Check(ctx, req.MustProto())
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetDynamicMetadata().GetFields()["decision_id"].GetStringValue()
	}
	withSecrets := func(peer string) *envoyreq.Request {
		r := envoyreq.Browser(peer).With("cookie", rc.Name+"="+rc.Value).With("authorization", "Bearer "+bearer)
		r.Path = "/payroll/report?month=11&code=123456"
		return r
	}
	var before []string
	before = append(before, check(withSecrets(extranetIP)), check(envoyreq.Browser(extranetIP)), check(envoyreq.Browser(corpIP)))

	lines := auditLines(t, auditPath)
	if len(lines) != 3 {
		t.Fatalf("%d audit lines after 3 checks, want 3:\n%v", len(lines), lines)
	}
	first := lines[0]
	for k, v := range map[string]any{"event": "decision", "decision_id": before[0], "request_id": "5f8a3a2e-1c1b-4d57-9f1e-0d6a9c1c3b11",
		"mode": "grpc", "host": "app.corp.example", "method": "GET", "path": "/payroll/report", "user": "auth0|alice",
		"client_ip": extranetIP, "client_id": "payroll", "decision": "allow", "reason": "remembered"} {
		if first[k] != v {
			t.Errorf("audit %s = %v, want %v", k, first[k], v)
		}
	}
	if _, ok := first["latency_ms"].(float64); !ok {
		t.Errorf("no latency_ms: %v", first)
	}
	if lines[1]["decision"] != "mfa_required" || lines[2]["network"] != "corporate" {
		t.Errorf("second and third lines: %v", lines[1:])
	}
	if fi, err := os.Stat(auditPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode: %v %v, want 0600", fi.Mode().Perm(), err)
	}

	// Log rotation: rename, check while the server still writes to the
	// renamed file, SIGHUP, check again.
	rotated := auditPath + ".1"
	if err := os.Rename(auditPath, rotated); err != nil {
		t.Fatal(err)
	}
	before = append(before, check(envoyreq.Browser(extranetIP)))
	if err := srv.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(srv.Stderr(), "audit trail reopened") {
		if time.Now().After(deadline) {
			t.Fatalf("no reopen within 10s:\n%s", srv.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := []string{check(envoyreq.Browser(extranetIP)), check(withSecrets(extranetIP))}

	// Revoked through the running server's admin endpoint.
	out, err := exec.Command(stepupBin, "sessions", "revoke", "--user", "auth0|alice", "--config", cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "revoked 1") {
		t.Fatalf("sessions revoke with the server running: %v\n%s", err, out)
	}
	if code := srv.Stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Revoked by the command line on the store, with the server stopped.
	out, err = exec.Command(stepupBin, "sessions", "revoke", "--user", "auth0|alice", "--config", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("sessions revoke on the store: %v\n%s", err, out)
	}

	ids := func(ls []map[string]any) []string {
		var out []string
		for _, l := range ls {
			if l["event"] == "decision" {
				out = append(out, l["decision_id"].(string))
			}
		}
		return out
	}
	old, cur := auditLines(t, rotated), auditLines(t, auditPath)
	if got := ids(old); !slices.Equal(got, before) {
		t.Errorf("rotated file holds decisions %v, want those before the SIGHUP %v", got, before)
	}
	if got := ids(cur); !slices.Equal(got, after) {
		t.Errorf("new file holds decisions %v, want those after the SIGHUP %v", got, after)
	}
	var revocations []string
	for _, l := range cur {
		if l["event"] == "sessions_revoked" {
			if l["user"] != "auth0|alice" {
				t.Errorf("revocation of %v", l["user"])
			}
			revocations = append(revocations, l["by"].(string))
		}
	}
	if !slices.Equal(revocations, []string{"admin", "cli"}) {
		t.Errorf("revocations by %v, want admin (through the server) then cli (on the store)", revocations)
	}
	for _, f := range []string{rotated, auditPath} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(raw), s) {
				t.Errorf("%s contains %q", filepath.Base(f), s)
			}
		}
	}
}
