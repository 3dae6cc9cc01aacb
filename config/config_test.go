package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefault(t *testing.T) {
	c := Default()
	if got := c.Server.GRPC.Listen; got != "127.0.0.1:9191" {
		t.Errorf("grpc listen = %q", got)
	}
	if got := c.Server.HTTP.Listen; got != "127.0.0.1:9192" {
		t.Errorf("http listen = %q", got)
	}
	want := []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128", "fc00::/7"}
	if diff := cmp.Diff(want, c.Networks["corporate"].CIDRs); diff != "" {
		t.Errorf("corporate (-want +got):\n%s", diff)
	}
	if c.Identity.JWTAuthn.Namespace != "envoy.filters.http.jwt_authn" || c.Identity.JWTAuthn.Key != "jwt_payload" || !c.Identity.JWTAuthn.On() {
		t.Errorf("identity = %+v", c.Identity.JWTAuthn)
	}
	if c.MFA.Prefix != "/.stepup/" {
		t.Errorf("prefix = %q", c.MFA.Prefix)
	}
	if c.Development {
		t.Error("the default must not be in development mode (cookies would not be Secure)")
	}
	if c.Sessions.RememberTTL.D() != 30*24*time.Hour {
		t.Errorf("remember ttl = %v", c.Sessions.RememberTTL)
	}
}

func TestParseStrict(t *testing.T) {
	tests := []struct {
		name, yaml string
		wantErr    string // substring; "" = must succeed
	}{
		{"unknown top-level key", "netwroks: {}\n", `line 1: unknown key "netwroks" (did you mean "networks"?)`},
		{"unknown nested key", "server:\n  grpc:\n    listn: 1.2.3.4:5\n", `line 3: server.grpc: unknown key "listn" (did you mean "listen"?)`},
		{"unknown key in network object", "networks:\n  corp:\n    cidr: [10.0.0.0/8]\n", `line 3: networks.corp: unknown key "cidr" (did you mean "cidrs"?)`},
		{"bad duration", "server:\n  shutdown_timeout: ten\n", `line 2: server.shutdown_timeout: "ten" is not a duration`},
		{"negative duration", "server:\n  shutdown_timeout: -1s\n", "negative"},
		{"two documents", "log: {level: info}\n---\nlog: {level: debug}\n", "line 2: a second YAML document"},
		{"network as a list", "networks:\n  corp: [10.0.0.0/8]\n", ""},
		{"network as an object", "networks:\n  corp:\n    cidrs: [10.0.0.0/8]\n", ""},
		{"secret as env", "sessions:\n  keys:\n    - id: a\n      secret: {env: X}\n", ""},
		{"secret unknown key", "sessions:\n  keys:\n    - id: a\n      secret: {enve: X}\n", `line 4: sessions.keys[0].secret: unknown key "enve" (did you mean "env"?)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	y := `
server:
  grpc:
    listen: nonsense
networks:
  corporate: [10.0.0.0/8, 300.1.1.1/8, banana]
  "bad name!": [10.0.0.0/8]
client_ip:
  trusted_proxies: [nope]
identity:
  header:
    name: x-user
  login_url: /relative
mfa:
  prefix: stepup
policy:
  mfa_exempt_networks: [office]
sessions:
  store:
    type: postgres
  state_ttl: 100h
`
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken configuration")
	}
	for _, want := range []string{
		"server.grpc.listen:",
		"networks.corporate[1]:",
		"networks.corporate[2]:",
		"networks.bad name!:",
		"client_ip.trusted_proxies[0]:",
		"identity.header.trusted_peers:",
		"identity.login_url:",
		"mfa.prefix:",
		`policy.mfa_exempt_networks[0]: unknown network "office"`,
		"sessions.store.type:",
		"sessions.state_ttl:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validation errors lack %q; got:\n%v", want, err)
		}
	}
}

func TestNetworkFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "corp.txt"), []byte("# offices\n10.0.0.0/8\n\n192.0.2.1 # a bare address\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "stepup.yaml")
	if err := os.WriteFile(cfgPath, []byte("networks:\n  corporate:\n    cidrs: [172.16.0.0/12]\n    files: [corp.txt]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.NetworkCIDRs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"corporate": {"172.16.0.0/12", "10.0.0.0/8", "192.0.2.1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if err := os.WriteFile(filepath.Join(dir, "corp.txt"), []byte("10.0.0.0/8\nnot-a-cidr\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NetworkCIDRs(); err == nil || !strings.Contains(err.Error(), "corp.txt: line 2") {
		t.Errorf("bad file line: err = %v, want the file and line number", err)
	}
	// A file saved with a byte order mark and CRLF line ends reads as the
	// loader reads it.
	if err := os.WriteFile(filepath.Join(dir, "corp.txt"), []byte("\uFEFF10.0.0.0/8\r\n192.0.2.1\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := c.NetworkCIDRs(); err != nil || !cmp.Equal(got["corporate"], []string{"172.16.0.0/12", "10.0.0.0/8", "192.0.2.1"}) {
		t.Errorf("file with a BOM: %v, %v", got, err)
	}
}

func TestSecretResolve(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "s")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STEPUP_TEST_SECRET", "from-env")
	c := &Config{}
	for _, tc := range []struct {
		s    Secret
		want string
	}{
		{Secret{Value: "lit"}, "lit"},
		{Secret{Env: "STEPUP_TEST_SECRET"}, "from-env"},
		{Secret{File: f}, "from-file"},
	} {
		got, err := tc.s.Resolve(c)
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%+v) = %q, %v; want %q", tc.s, got, err, tc.want)
		}
	}
	if _, err := (Secret{Env: "STEPUP_TEST_UNSET_VARIABLE"}).Resolve(c); err == nil {
		t.Error("an unset environment variable resolved")
	}
}

// TestRedisStoreBudget: the Redis store's budget and breaker keys have
// defaults that keep headroom before Envoy's deadline, and values that
// would spend all of it (or never open the breaker) are refused.
func TestRedisStoreBudget(t *testing.T) {
	base := "networks:\n  corporate: [10.0.0.0/8]\nsessions:\n  store:\n    type: redis\n    redis:\n      addrs: [127.0.0.1:6379]\n"
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	r := c.Sessions.Store.Redis
	if r.Timeout.D() != 200*time.Millisecond || r.DeadlineFraction != 0.5 || r.Breaker.Failures != 3 || r.Breaker.Cooldown.D() != 500*time.Millisecond {
		t.Errorf("defaults = timeout %v, deadline_fraction %v, breaker %+v", r.Timeout, r.DeadlineFraction, r.Breaker)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"      deadline_fraction: 1\n", "sessions.store.redis.deadline_fraction:"},
		{"      deadline_fraction: 0.05\n", "sessions.store.redis.deadline_fraction:"},
		{"      breaker:\n        failures: -1\n", "sessions.store.redis.breaker.failures:"},
		{"      breaker:\n        cooldown: 1ms\n", "sessions.store.redis.breaker.cooldown:"},
		{"      breaker:\n        cooldown: 2m\n", "sessions.store.redis.breaker.cooldown:"},
		{"      timeout: 2m\n", "sessions.store.redis.timeout:"},
		{"      deadline_fraction: 0.9\n      breaker:\n        failures: 1\n        cooldown: 10ms\n", ""},
	} {
		c, err := Parse([]byte(base + tc.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		err = c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.yaml, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: Validate = %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

// TestAuditConfig: the audit trail is off by default; when on, every
// decision goes into it unless log.audit.decisions says otherwise.
func TestAuditConfig(t *testing.T) {
	if c := Default(); c.Log.Audit.File != "" || c.Log.Audit.Decisions != "all" {
		t.Errorf("default audit %+v, want no file and decisions all", c.Log.Audit)
	}
	c, err := Parse([]byte("log:\n  audit: {file: audit.log, decisions: non_allow}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Audit.File != "audit.log" || c.Log.Audit.Decisions != "non_allow" {
		t.Errorf("audit %+v", c.Log.Audit)
	}
	c.Log.Audit.Decisions = "some"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "log.audit.decisions") {
		t.Errorf("Validate: %v, want log.audit.decisions refused", err)
	}
}
