package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// problemLines splits a Parse or Validate error into its problems.
func problemLines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// TestParseReportsEveryProblem: structure and type errors are all
// reported in one run, in file order, each with its line and in the
// user's words (no Go type names).
func TestParseReportsEveryProblem(t *testing.T) {
	y := `server:
  http:
    listn: 127.0.0.1:1
  grpc:
    max_recv_bytes: lots
sessions:
  mfa_session_ttl: 12
  store:
    type: redis
    redis:
      addrs: 10.0.0.1:6379
      tls: maybe
networks:
  office: [10.0.0.0/8]
  lab: {cidr: [1.2.3.4]}
  lab: [10.0.0.0/8]
development: yes please
rules:
  list: {name: x}
  max_runtime_memory: lots
server:
  drain_delay: 5s
`
	_, err := Parse([]byte(y))
	want := []string{
		`line 3: server.http: unknown key "listn" (did you mean "listen"?)`,
		`line 5: server.grpc.max_recv_bytes: "lots" is not a whole number`,
		`line 7: sessions.mfa_session_ttl: "12" is not a duration (give a unit: 12s, 12m or 12h)`,
		`line 11: sessions.store.redis.addrs: expected a list, found "10.0.0.1:6379" (a list of one is written [10.0.0.1:6379])`,
		`line 12: sessions.store.redis.tls: "maybe" is not true or false`,
		`line 15: networks.lab: unknown key "cidr" (did you mean "cidrs"?)`,
		`line 16: networks: "lab" is written twice (first on line 15)`,
		`line 17: development: "yes please" is not true or false`,
		`line 19: rules.list: expected a list, found a mapping (key: value lines)`,
		`line 20: rules.max_runtime_memory: invalid size "lots" (use an integer with an optional unit: B, KiB, MiB, GiB, KB, MB, GB)`,
		`line 21: key "server" is written twice (first on line 1)`,
	}
	if diff := cmp.Diff(want, problemLines(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	for _, goish := range []string{"config.", "!!str", "unmarshal", "field "} {
		if err != nil && strings.Contains(err.Error(), goish) {
			t.Errorf("the problems speak Go (%q):\n%v", goish, err)
		}
	}
}

func TestParseSyntaxAndShape(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"syntax", "server:\n  grpc: [\n", "line 2: did not find expected node content"},
		{"tab indentation", "server:\n\tgrpc: {}\n", "line 2: found character that cannot start any token"},
		{"not a mapping", "- a\n- b\n", "line 1: a configuration is a mapping of keys"},
		{"scalar section", "server: on\n", `line 1: server: expected a mapping (key: value lines), found "on"`},
		{"list in a string", "data_dir: [a]\n", "line 1: data_dir: expected a string, found a list"},
		{"alias cycle", "networks: &n\n  a: *n\n", "line 2:"},
		{"unknown anchor", "data_dir: *nope\n", "unknown anchor 'nope' referenced"},
		{"top-level unknown", "netwroks: {}\n", `line 1: unknown key "netwroks" (did you mean "networks"?)`},
		{"negative duration", "server:\n  shutdown_timeout: -1s\n", `line 2: server.shutdown_timeout: "-1s" is negative`},
		{"secret shape", "sessions:\n  keys:\n    - id: a\n      secret: [x]\n", "line 4: sessions.keys[0].secret: expected a value, {env: NAME} or {file: PATH}, found a list"},
		{"network shape", "networks:\n  a: 10.0.0.0/8\n", `line 2: networks.a: expected a list of CIDRs or {cidrs: [...], files: [...]}, found "10.0.0.0/8"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Parse error = %v\nwant it to start with %q", err, tc.want)
			}
		})
	}
}

func TestAliasBombRefused(t *testing.T) {
	y := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		y += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	_, err := Parse([]byte("networks:\n  corporate: [10.0.0.0/8]\nrules:\n  configuration:\n" + indent(y, "    ")))
	if err == nil || !strings.Contains(err.Error(), "more than 100000 values") {
		t.Fatalf("Parse = %v, want the expansion refused", err)
	}
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = by + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestAliasesAndMergeKeys(t *testing.T) {
	y := `networks:
  corporate: &corp [10.0.0.0/8]
  vpn: *corp
server:
  grpc: &listener
    listen: 127.0.0.1:7000
  http:
    <<: *listener
    listen: 127.0.0.1:7001
`
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Networks["vpn"].CIDRs; !slices.Equal(got, []string{"10.0.0.0/8"}) {
		t.Errorf("vpn = %v", got)
	}
	if c.Server.HTTP.Listen != "127.0.0.1:7001" {
		t.Errorf("http listen = %q: the mapping's own key must win over the merged one", c.Server.HTTP.Listen)
	}
}

// TestValidationNamesLines: validation messages carry the line of the key
// the file wrote, and none for values that came from the default.
func TestValidationNamesLines(t *testing.T) {
	y := `networks:
  corporate: [10.0.0.0/8, 300.0.0.0/8]
identity:
  login_url: nope
sessions:
  store:
    type: postgres
`
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 2: networks.corporate[1]: invalid CIDR "300.0.0.0/8"`,
		"line 4: identity.login_url: must be an absolute URL",
		`line 7: sessions.store.type: must be bolt, redis or memory, not "postgres"`,
	}
	if diff := cmp.Diff(want, problemLines(c.Validate())); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestLoadFormatsSeveralProblems(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stepup.yaml")
	if err := os.WriteFile(path, []byte("server:\n  http:\n    listn: x\nlog:\n  level: loud\n  decision: all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := "config " + path + ": 2 problems:\n" +
		`  line 3: server.http: unknown key "listn" (did you mean "listen"?)` + "\n" +
		`  line 6: log: unknown key "decision" (did you mean "decisions"?)`
	if err == nil || err.Error() != want {
		t.Errorf("Load error:\n%v\nwant:\n%s", err, want)
	}
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != path {
		t.Errorf("Load error is not a *FileError for %s: %#v", path, err)
	}
}

// TestPartialFileTakesDefaults: what a file does not write is the
// embedded default's; sections merge key by key, lists and maps of names
// replace the default's whole.
func TestPartialFileTakesDefaults(t *testing.T) {
	def := Default()
	c, err := Parse([]byte("server:\n  grpc:\n    listen: 0.0.0.0:9191\nclient_ip:\n  trusted_proxies: [10.1.1.1/32]\nlog:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a partial file does not validate: %v", err)
	}
	if c.Server.GRPC.Listen != "0.0.0.0:9191" || c.Server.HTTP.Listen != def.Server.HTTP.Listen {
		t.Errorf("server: grpc %q, http %q", c.Server.GRPC.Listen, c.Server.HTTP.Listen)
	}
	if diff := cmp.Diff(def.Networks, c.Networks); diff != "" {
		t.Errorf("networks not written must be the default's (-default +got):\n%s", diff)
	}
	if diff := cmp.Diff(def.Rules.List, c.Rules.List); diff != "" {
		t.Errorf("rules.list not written must be the default's (-default +got):\n%s", diff)
	}
	if !slices.Equal(c.ClientIP.TrustedProxies, []string{"10.1.1.1/32"}) {
		t.Errorf("trusted_proxies = %v: a list replaces the default's, it is not merged", c.ClientIP.TrustedProxies)
	}
	if !c.ClientIP.TrustEnvoyExternalAddress() {
		t.Error("client_ip.envoy_external_address lost the default's true")
	}
	if c.Log.Level != "info" {
		t.Errorf("an empty section (log:) must keep the defaults: level %q", c.Log.Level)
	}

	// A map of names replaces the default's whole.
	c, err = Parse([]byte("networks:\n  corporate: [10.9.0.0/16]\n  lab: [192.0.2.0/24]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Networks{"corporate": {CIDRs: []string{"10.9.0.0/16"}}, "lab": {CIDRs: []string{"192.0.2.0/24"}}}
	if diff := cmp.Diff(want, c.Networks); diff != "" {
		t.Errorf("networks (-want +got):\n%s", diff)
	}
	// With a corporate network of its own the default rule applies to it.
	if diff := cmp.Diff(def.Rules.List, c.Rules.List); diff != "" {
		t.Errorf("rules.list (-default +got):\n%s", diff)
	}

	// trusted_hops withdraws the default's envoy_external_address: true,
	// which cannot be combined with it.
	c, err = Parse([]byte("client_ip:\n  trusted_hops: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ClientIP.TrustEnvoyExternalAddress() {
		t.Error("trusted_hops without envoy_external_address must not trust the header")
	}
	c, err = Parse([]byte("client_ip:\n  trusted_hops: 2\n  envoy_external_address: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "line 3: client_ip.envoy_external_address: must not be true") {
		t.Errorf("Validate = %v, want the written combination refused", err)
	}
}

// TestDefaultsNamingReplacedNetworks: the default's rule list and policy
// name its network "corporate"; a file whose networks have none must say
// what it wants, and is told exactly why.
func TestDefaultsNamingReplacedNetworks(t *testing.T) {
	office := "networks:\n  office: [10.0.0.0/8]\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string // nil: valid
	}{
		{"rules.list not set", office, []string{
			`rules.list: not set in this file, so the default applies: the built-in rule extranet-mfa, which asks for MFA outside the network "corporate"; but this file's networks replace the default's (a map of names is replaced whole, not merged) and define no network "corporate": set rules.list (your own rules, or [] for the built-in policy of policy.mfa_exempt_networks), or name one of your networks corporate`,
		}},
		{"built-in policy, exempt networks not set", office + "rules:\n  list: []\n", []string{
			`policy.mfa_exempt_networks: not set in this file, so the default [corporate] applies to the built-in policy (rules.list is empty), but this file's networks replace the default's (a map of names is replaced whole, not merged) and define no network "corporate": set policy.mfa_exempt_networks to the networks whose clients need no MFA (for example [office]), or [] to ask for MFA everywhere`,
		}},
		{"built-in policy, exempt networks set", office + "rules:\n  list: []\npolicy:\n  mfa_exempt_networks: [office]\n", nil},
		{"built-in policy, MFA everywhere", office + "rules:\n  list: []\npolicy:\n  mfa_exempt_networks: []\n", nil},
		{"own rules: the policy's default is not in force", office + "rules:\n  list:\n    - builtin: extranet-mfa\n", nil},
		{"a written unknown network", office + "rules:\n  list: []\npolicy:\n  mfa_exempt_networks: [office, corprate]\n", []string{
			`line 6: policy.mfa_exempt_networks[1]: unknown network "corprate"`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, problemLines(c.Validate())); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"listen", "tls", "max_recv_bytes", "keepalive_min_time"}
	for in, want := range map[string]string{
		"listn": "listen", "lisetn": "listen", "tsl": "tls", "max_recv": "max_recv_bytes",
		"keepalive": "keepalive_min_time", "port": "", "x": "",
	} {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParse: the decoder reads files written by people and must never
// panic, whatever it is given; neither may validation of what it accepts.
func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte("networks:\n  corp: [10.0.0.0/8]\n"))
	f.Add([]byte("server: {grpc: {listen: ':0'}}"))
	f.Add([]byte("server:\n  http:\n    listn: x\nsessions:\n  mfa_session_ttl: 12\n"))
	f.Add([]byte("networks: &n\n  a: *n\n"))
	f.Add([]byte("server:\n  grpc: &g {listen: a:1}\n  http: {<<: *g}\n"))
	f.Add([]byte("sessions:\n  keys:\n    - {id: a, secret: {env: X}}\n  store: {type: redis, redis: {addrs: [a:1], cache_ttl: 1s}}\n"))
	f.Add([]byte("runtime: {memory_limit: 1GiB}\nrules: {max_runtime_memory: 2MiB, configuration: {A: b, B: {file: x}}}\n"))
	f.Add([]byte("mfa:\n  redirect:\n    verify: {secret: x}\n    services: [{name: a, url: 'https://x', verified_by_rule: true}]\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		_ = c.Validate()
	})
}
