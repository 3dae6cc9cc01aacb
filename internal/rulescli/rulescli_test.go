package rulescli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const seedDir = "../../rules/testdata/auth0-examples"

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runRules(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, &out, &errb, nil)
	return code, out.String(), errb.String()
}

func TestRulesTry(t *testing.T) {
	dir := t.TempDir()
	user := writeFile(t, dir, "user.json", `{"user_id": "auth0|1", "email": "jo@example.com", "app_metadata": {"roles": ["dev"]}, "logins": 12345678901234567}`)
	outside := writeFile(t, dir, "outside.json", `{
  "clientID": "app", "protocol": "oidc-basic-profile",
  "request": {"ip": "203.0.113.7", "hostname": "app.example.com", "query": {"a": "1"}, "networks": []},
  "authentication": {"methods": [{"name": "pwd", "timestamp": 1700000000000}]},
  "stats": {"loginsCount": 3},
  "primaryUser": "auth0|1"
}`)
	inside := writeFile(t, dir, "inside.json", `{"request": {"ip": "192.168.1.140"}}`)
	callback := writeFile(t, dir, "callback.json", `{"protocol": "redirect-callback"}`)
	cfg := writeFile(t, dir, "cfg.json", `{"ALWAYS": "yes"}`)
	harness := writeFile(t, dir, "harness.js", "function (user, context, callback) {\n  global.condition = function () { return configuration.ALWAYS === 'yes'; };\n  console.log('harness for', user.user_id);\n  callback(null, user, context);\n}\n")
	deny := writeFile(t, dir, "deny.js", "function (user, context, callback) { callback(new UnauthorizedError('not from here')); }")
	extranet := filepath.Join(seedDir, "003_extranet.js")
	redirect := filepath.Join(seedDir, "003_redirect.js")

	type result struct {
		Outcome     string         `json:"outcome"`
		Rule        *string        `json:"rule"`
		Error       map[string]any `json:"error"`
		Multifactor map[string]any `json:"multifactor"`
		Redirect    map[string]any `json:"redirect"`
		User        map[string]any `json:"user"`
		Context     map[string]any `json:"context"`
	}
	decode := func(t *testing.T, s string) result {
		t.Helper()
		var r result
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("output is not the expected JSON: %v\n%s", err, s)
		}
		return r
	}

	t.Run("extranet outside", func(t *testing.T) {
		code, out, errOut := runRules("try", "--rule", extranet, "--user", user, "--context", outside)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		r := decode(t, out)
		if r.Outcome != "continue" || r.Rule != nil || r.Error != nil || r.Redirect != nil {
			t.Errorf("result = %+v", r)
		}
		if diff := cmp.Diff(map[string]any{"provider": "any", "allowRememberBrowser": false, "ignoreCookie": false}, r.Multifactor); diff != "" {
			t.Errorf("multifactor (-want +got):\n%s", diff)
		}
		req := r.Context["request"].(map[string]any)
		if req["ip"] != "203.0.113.7" || r.Context["clientID"] != "app" || r.Context["primaryUser"] != "auth0|1" {
			t.Errorf("context = %v", r.Context)
		}
		methods := r.Context["authentication"].(map[string]any)["methods"].([]any)
		if methods[0].(map[string]any)["timestamp"] != float64(1700000000000) {
			t.Errorf("methods = %v", methods)
		}
		if r.User["email"] != "jo@example.com" || r.User["logins"] != float64(12345678901234567) {
			t.Errorf("user = %v", r.User)
		}
		if !strings.HasPrefix(out, "{\n  \"outcome\"") {
			t.Errorf("output is not indented JSON: %q", out[:20])
		}
	})
	t.Run("extranet inside", func(t *testing.T) {
		code, out, errOut := runRules("try", "--rule", extranet, "--context", inside)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if r := decode(t, out); r.Outcome != "continue" || r.Multifactor != nil {
			t.Errorf("result = %+v", r)
		}
	})
	t.Run("redirect pipeline", func(t *testing.T) {
		code, out, errOut := runRules("try", "--rule", harness, "--rule", redirect, "--user", user, "--configuration", cfg)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if r := decode(t, out); r.Redirect["url"] != "https://your_custom_mfa" {
			t.Errorf("result = %+v", r)
		}
		if !strings.Contains(errOut, "harness for auth0|1") || !strings.Contains(errOut, "rule=harness") {
			t.Errorf("console output missing from stderr: %q", errOut)
		}
		code, out, _ = runRules("try", "--rule", harness, "--rule", redirect, "--context", callback, "--configuration", cfg)
		if r := decode(t, out); code != 0 || r.Redirect != nil {
			t.Errorf("redirect-callback: exit %d, %+v", code, r)
		}
	})
	t.Run("rule error is an outcome", func(t *testing.T) {
		code, out, errOut := runRules("try", "--rule", extranet, "--rule", deny, "--context", inside)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		r := decode(t, out)
		want := map[string]any{"name": "UnauthorizedError", "message": "not from here", "kind": "unauthorized"}
		if r.Outcome != "error" || r.Rule == nil || *r.Rule != "deny" {
			t.Errorf("result = %+v", r)
		}
		if diff := cmp.Diff(want, r.Error); diff != "" {
			t.Errorf("error (-want +got):\n%s", diff)
		}
	})
	t.Run("exception is an outcome", func(t *testing.T) {
		code, out, _ := runRules("try", "--rule", redirect)
		r := decode(t, out)
		if code != 0 || r.Outcome != "error" || r.Error["name"] != "ReferenceError" {
			t.Errorf("exit %d, %+v", code, r)
		}
	})

	bad := writeFile(t, dir, "bad.js", "function (user, context, callback) {\n  callback(null, user,, context);\n}")
	fsRule := writeFile(t, dir, "fs.js", "function (user, context, callback) { require('fs'); }")
	badJSON := writeFile(t, dir, "bad.json", `{"user_id": `)
	array := writeFile(t, dir, "array.json", `[1, 2]`)
	badCfg := writeFile(t, dir, "badcfg.json", `{"N": 1}`)
	badCtx := writeFile(t, dir, "badctx.json", `{"clientID": 7, "request": {"ip": ["x"]}}`)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no rule", []string{"try"}, "at least one --rule"},
		{"missing rule file", []string{"try", "--rule", filepath.Join(dir, "nope.js")}, "no such file"},
		{"syntax error", []string{"try", "--rule", bad}, "bad.js: error: syntax error: " + bad + ": Line 2:"},
		{"unavailable module", []string{"try", "--rule", fsRule}, `fs.js: error: module "fs" is not available`},
		{"invalid user JSON", []string{"try", "--rule", extranet, "--user", badJSON}, "invalid JSON"},
		{"user not an object", []string{"try", "--rule", extranet, "--user", array}, "want a JSON object"},
		{"bad configuration", []string{"try", "--rule", extranet, "--configuration", badCfg}, `configuration value "N" must be a string`},
		{"bad context", []string{"try", "--rule", extranet, "--context", badCtx}, "clientID must be a string"},
		{"unknown flag", []string{"try", "--rules", extranet}, "flag provided but not defined"},
		{"stray argument", []string{"try", "--rule", extranet, "extra.js"}, "unexpected argument"},
		{"unknown subcommand", []string{"frobnicate"}, "unknown subcommand"},
		{"nothing", nil, "Usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runRules(tc.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tc.want)
			}
		})
	}
}

func TestRulesLint(t *testing.T) {
	dir := t.TempDir()
	duo := filepath.Join(seedDir, "000_duo.md")
	extranet := filepath.Join(seedDir, "003_extranet.js")
	fsRule := writeFile(t, dir, "fs.js", "function (user, context, callback) { require('fs'); callback(null, user, context); }")
	cfg := writeFile(t, dir, "cfg.json", `{"DUO_MFA:IKEY": "i", "DUO_MFA:SKEY": "s", "DUO_MFA:API_HOSTNAME": "h"}`)

	code, out, errOut := runRules("lint", duo, extranet)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := duo + `: warning: the code reads configuration key "DUO_MFA:IKEY", which the front matter does not declare (closest declared key: "DUO_MFA:DUO_IKEY")`
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != want {
		t.Errorf("output:\n%s\nwant first line:\n%s", out, want)
	}

	code, out, _ = runRules("lint", fsRule, extranet)
	if code != 1 || strings.TrimSpace(out) != fsRule+`: error: module "fs" is not available` {
		t.Errorf("exit %d, output %q", code, out)
	}

	// Flags may follow the files.
	code, out, _ = runRules("lint", duo, "--configuration", cfg)
	if code != 1 || !strings.Contains(out, duo+`: error: mandatory configuration key "DUO_MFA:CLIENT_ID" is not set`) {
		t.Errorf("exit %d, output %q", code, out)
	}

	for _, args := range [][]string{{"lint"}, {"lint", filepath.Join(dir, "missing.js")}, {"lint", "--configuration", filepath.Join(dir, "nope.json"), extranet}} {
		if code, _, errOut := runRules(args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

func TestRulesTryActions(t *testing.T) {
	dir := t.TempDir()
	user := writeFile(t, dir, "user.json", `{"user_id": "auth0|1", "email": "jo@example.com"}`)
	ctxFile := writeFile(t, dir, "ctx.json", `{"clientID": "payroll", "request": {"ip": "203.0.113.7"}}`)
	event := writeFile(t, dir, "event.json", `{"request": {"geoip": {"countryCode": "FR"}}}`)
	writeFile(t, dir, "skey.txt", "file-skey\n")
	t.Setenv("STEPUP_TEST_IKEY", "DIENV")
	cfg := writeFile(t, dir, "cfg.json", `{"IKEY": {"env": "STEPUP_TEST_IKEY"}, "SKEY": {"file": "skey.txt"}}`)
	action := writeFile(t, dir, "duo.js", `exports.onExecutePostLogin = async (event, api) => {
  console.log('country', event.request.geoip.countryCode);
  api.multifactor.enable('duo', {providerOptions: {ikey: event.secrets.IKEY, skey: event.secrets.SKEY, host: 'api-1.duosecurity.com'}});
};`)
	rule := filepath.Join(seedDir, "003_extranet.js")

	code, stdout, stderr := runRules("try", "--rule", rule, "--rule", action, "--user", user, "--context", ctxFile, "--configuration", cfg, "--event", event)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"provider": "duo", "requestedProvider": "duo", "allowRememberBrowser": false, "ignoreCookie": false,
		"duo": map[string]any{"ikey": "DIENV", "skey": "[redacted]", "host": "api-1.duosecurity.com"}}
	if diff := cmp.Diff(want, out["multifactor"]); diff != "" || out["outcome"] != "continue" {
		t.Errorf("%v (-want +got):\n%s", out["outcome"], diff)
	}
	if strings.Contains(stdout, "file-skey") || strings.Contains(stderr, "file-skey") {
		t.Errorf("secret leaked:\n%s\n%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "country FR") {
		t.Errorf("console output missing: %s", stderr)
	}

	// A module the sandbox does not provide: the JSON still comes out.
	mod := writeFile(t, dir, "mod.js", "const fetch = require('node-fetch');\nexports.onExecutePostLogin = async (event, api) => {};\n")
	code, stdout, stderr = runRules("try", "--rule", rule, "--rule", mod, "--user", user, "--context", ctxFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	out = nil
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out["outcome"] != "error" || out["rule"] != "mod" || !strings.Contains(out["error"].(map[string]any)["message"].(string), `"node-fetch"`) {
		t.Errorf("module: %s", stdout)
	}

	// lint names the module, and the auth0 management object.
	mgmt := writeFile(t, dir, "mgmt.js", "function (user, context, callback) { auth0.users.getUsersByEmail(user.email, function () { callback(null, user, context); }); }")
	code, stdout, _ = runRules("lint", rule, action, mod, mgmt)
	if code != 1 || !strings.Contains(stdout, `mod.js: error: module "node-fetch" is not available`) ||
		!strings.Contains(stdout, "mgmt.js: error: auth0.users.getUsersByEmail is not available") {
		t.Errorf("lint exit %d:\n%s", code, stdout)
	}
}
