package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesLintServeConfig: `stepup rules lint --config` lints the rules
// of rules.list with rules.configuration, as serve loads them: a rule that
// needs a module the sandbox does not provide, or the Auth0 management
// object, is an error; a configuration key the code reads is found.
func TestRulesLintServeConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("good.js", `function (user, context, callback) { if (configuration.LEVEL === 'high') { context.multifactor = {provider: 'any'}; } callback(null, user, context); }`)
	write("request.js", `function (user, context, callback) { var r = require('request'); callback(null, user, context); }`)
	write("mgmt.js", `function (user, context, callback) { auth0.users.getUsersByEmail(user.email); callback(null, user, context); }`)
	cfg := func(files ...string) string {
		var b strings.Builder
		b.WriteString("networks:\n  corporate: [10.0.0.0/8]\nrules:\n  configuration:\n    LEVEL: high\n  list:\n")
		for _, f := range files {
			b.WriteString("    - file: " + f + "\n")
		}
		return write("stepup-"+strings.Join(files, "-")+".yaml", b.String())
	}
	for _, tc := range []struct {
		files []string
		code  int
		want  string
	}{
		{[]string{"good.js"}, 0, ""},
		{[]string{"good.js", "request.js"}, 1, "request"},
		{[]string{"mgmt.js"}, 1, "auth0"},
	} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"rules", "lint", "--config", cfg(tc.files...)}, &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("lint --config with %v: exit %d (want %d)\nstdout: %s\nstderr: %s", tc.files, code, tc.code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"rules", "lint", "--config", filepath.Join(dir, "missing.yaml")}, &out, &errb); code != 2 {
		t.Errorf("a missing configuration file: exit %d, want 2", code)
	}
}
