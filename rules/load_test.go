package rules

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGallerySeed(t *testing.T) {
	g, err := ParseGallery(mustRead(t, filepath.Join("testdata", "auth0-examples", "000_duo.md")))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{Value: "DUO_MFA:CLIENT_ID", Description: "The client_id of the Auth0 client for which you want to require MFA.", Type: "auth0:client", Mandatory: true},
		{Value: "DUO_MFA:DUO_IKEY", Description: "Your DUO ikey. Get if from here.", Type: "string", Mandatory: true},
		{Value: "DUO_MFA:DUO_SKEY", Description: "Your DUO skey. Get if from here.", Type: "string", Mandatory: true},
		{Value: "DUO_MFA:DUO_API_HOSTNAME", Description: "Your DUO API hostname (e.g. api-XXXXXXXX.duosecurity.com)", Type: "string", Mandatory: true},
	}
	if diff := cmp.Diff(want, g.FrontMatter.Fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"multifactor"}, g.FrontMatter.Categories); diff != "" {
		t.Errorf("categories: %s", diff)
	}
	if g.FrontMatter.Raw["image"] != "https://cldup.com/FvmMZUtEaF.png" {
		t.Errorf("raw = %v", g.FrontMatter.Raw)
	}
	lines := strings.Split(string(mustRead(t, filepath.Join("testdata", "auth0-examples", "000_duo.md"))), "\n")
	if lines[g.CodeLine-1] != "function (user, context, callback) {" || !strings.HasPrefix(g.Code, lines[g.CodeLine-1]) {
		t.Errorf("CodeLine %d points at %q", g.CodeLine, lines[g.CodeLine-1])
	}
	if !strings.HasSuffix(g.Code, "  callback(null, user, context);\n}") {
		t.Errorf("code ends with %q", g.Code[len(g.Code)-40:])
	}
}

func TestParseGallery(t *testing.T) {
	for _, tc := range []struct {
		name     string
		text     string
		wantCode string
		wantLine int
		wantErr  string
	}{
		{name: "no front matter", text: "# T\n```js\nfunction (u, c, cb) {}\n```\n", wantCode: "function (u, c, cb) {}", wantLine: 3},
		{name: "javascript info", text: "---\ntitle: x\n---\n```javascript\nA\n```", wantCode: "A", wantLine: 5},
		{name: "upper case and tildes", text: "~~~JS\nA\n~~~\n", wantCode: "A", wantLine: 2},
		{name: "CRLF and BOM", text: "\ufeff---\r\ngallery: true\r\n---\r\n```js\r\nA\r\nB\r\n```\r\n", wantCode: "A\nB", wantLine: 5},
		{name: "other blocks ignored", text: "```sh\nls\n```\n```js\nA\n```\n```json\n{}\n```", wantCode: "A", wantLine: 5},
		{name: "unterminated block", text: "```js\nA\nB", wantCode: "A\nB", wantLine: 2},
		{name: "no js block", text: "---\na: 1\n---\ntext", wantErr: "no ```js code block"},
		{name: "two js blocks", text: "```js\nA\n```\n```js\nB\n```", wantErr: "2 ```js code blocks"},
		{name: "unclosed front matter", text: "---\na: 1\n```js\nA\n```", wantErr: "no closing ---"},
		{name: "bad yaml", text: "---\na: [1\n---\n```js\nA\n```", wantErr: "front matter"},
		{name: "front matter not a mapping", text: "---\n- a\n- b\n---\n```js\nA\n```", wantErr: "not a mapping"},
		{name: "field without value", text: "---\nfields:\n  - description: x\n---\n```js\nA\n```", wantErr: "has no value"},
		{name: "bad mandatory", text: "---\nfields:\n  - value: K\n    mandatory: sometimes\n---\n```js\nA\n```", wantErr: "front matter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := ParseGallery([]byte(tc.text))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrGallery) {
					t.Fatalf("err = %v, want %q wrapping ErrGallery", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.Code != tc.wantCode || g.CodeLine != tc.wantLine {
				t.Errorf("got %q at line %d, want %q at %d", g.Code, g.CodeLine, tc.wantCode, tc.wantLine)
			}
		})
	}
}

func TestLoadShapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		code    string
		wantErr string
	}{
		{name: "anonymous", code: "function (user, context, callback) { callback(null, user, context); }"},
		{name: "named", code: "function myRule(user, context, callback) { callback(null, user, context); }"},
		{name: "trailing semicolon", code: "function (user, context, callback) { callback(null, user, context); };\n"},
		{name: "comments around", code: "/* header */\n// more\nfunction (user, context, callback) {\n  callback(null, user, context);\n} // trailer\n"},
		{name: "semicolon and comment", code: "function (user, context, callback) { callback(null, user, context); }; // done"},
		{name: "fewer parameters", code: "function (user, context) { }"},
		{name: "arrow", code: "(user, context, callback) => callback(null, user, context)"},
		{name: "async", code: "async function (user, context, callback) { callback(null, user, context); }"},
		{name: "four parameters", code: "function (a, b, c, d) {}", wantErr: "declares 4 parameters, at most 3"},
		{name: "syntax error", code: "function (user, context, callback) {\n  callback(null, user,, context);\n}", wantErr: "syntax error: r.js: Line 2:"},
		{name: "statement", code: "var x = 1;", wantErr: "single function expression"},
		{name: "two functions", code: "function (u) {}\nfunction (v) {}", wantErr: "syntax error"},
		{name: "trailing code", code: "function (u, c, cb) {};\nrequire('ipaddr.js');", wantErr: "single function expression"},
		{name: "call expression", code: "function (u, c, cb) {}\n(1)", wantErr: "single function expression"},
		{name: "comma expression", code: "function (u, c, cb) {}, 1", wantErr: "syntax error: r.js: Line 1:25 Unexpected number"},
		{name: "empty", code: "  \n", wantErr: "no code"},
		{name: "declaration", code: "function rule(user, context, callback) {}\nrule;", wantErr: "single function expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{Rules: []Source{{Name: "r", Path: "r.js", Code: []byte(tc.code), Enabled: true}}})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `rule "r"`) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestLoadReportsEveryProblem: New lists all problems at once.
func TestLoadReportsEveryProblem(t *testing.T) {
	_, err := New(Options{Rules: []Source{
		jsSource("a", "function (u, c, cb) { require('fs'); require('net'); }"),
		jsSource("b", "function ("),
		jsSource("a", "function (u, c, cb) {}"),
		{Name: "off", Code: []byte("not even javascript ("), Enabled: false},
	}})
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v", err)
	}
	var msgs []string
	for _, f := range le.Findings {
		msgs = append(msgs, f.Rule+": "+f.Message)
	}
	want := []string{`a: module "fs" is not available`, `a: module "net" is not available`, `b: syntax error`, `a: duplicate rule name`}
	if len(msgs) != len(want) {
		t.Fatalf("findings = %q", msgs)
	}
	for i := range want {
		if !strings.HasPrefix(msgs[i], want[i]) {
			t.Errorf("finding %d = %q, want prefix %q", i, msgs[i], want[i])
		}
	}
}

// TestGalleryErrorLines: positions in gallery rules refer to the Markdown
// file's lines.
func TestGalleryErrorLines(t *testing.T) {
	md := "---\ngallery: true\n---\n\n# Broken\n\n```js\nfunction (user, context, callback) {\n  callback(null, user,, context);\n}\n```\n"
	_, err := New(Options{Rules: []Source{{Name: "g", Path: "g.md", Code: []byte(md), Enabled: true}}})
	if err == nil || !strings.Contains(err.Error(), "g.md: Line 9:") {
		t.Fatalf("err = %v, want a position on line 9 of g.md", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "extranet.rule.js")
	if err := os.WriteFile(js, []byte("function (u, c, cb) { cb(null, u, c); }"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := LoadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	if src.Name != "extranet.rule" || !src.Enabled || src.Path != js {
		t.Errorf("src = %+v", src)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.js")); err == nil {
		t.Error("missing file loaded")
	}
	big := filepath.Join(dir, "big.js")
	if err := os.WriteFile(big, make([]byte, maxSourceBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
	// A .txt gallery file is recognised by its front matter.
	txt := filepath.Join(dir, "duo.txt")
	if err := os.WriteFile(txt, mustRead(t, filepath.Join("testdata", "auth0-examples", "000_duo.md")), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err = LoadFile(txt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Rules: []Source{src}, Configuration: duoConfig}); err != nil {
		t.Errorf("gallery .txt: %v", err)
	}
}

func TestLint(t *testing.T) {
	duo := seedSource(t, "000_duo.md")
	undeclared := func(read, closest string) Finding {
		return Finding{Rule: "000_duo", Path: duo.Path, Severity: SeverityWarning,
			Message: `the code reads configuration key "` + read + `", which the front matter does not declare (closest declared key: "` + closest + `")`}
	}
	unset := func(read string) Finding {
		return Finding{Rule: "000_duo", Path: duo.Path, Severity: SeverityWarning,
			Message: `the code reads configuration key "` + read + `", which is not set`}
	}
	declaredOnly := map[string]string{
		"DUO_MFA:CLIENT_ID": "c", "DUO_MFA:DUO_IKEY": "i", "DUO_MFA:DUO_SKEY": "s", "DUO_MFA:DUO_API_HOSTNAME": "h",
	}
	for _, tc := range []struct {
		name string
		opts Options
		want []Finding
	}{
		{name: "duo seed without configuration", opts: Options{Rules: []Source{duo}}, want: []Finding{
			undeclared("DUO_MFA:IKEY", "DUO_MFA:DUO_IKEY"),
			undeclared("DUO_MFA:SKEY", "DUO_MFA:DUO_SKEY"),
			undeclared("DUO_MFA:API_HOSTNAME", "DUO_MFA:DUO_API_HOSTNAME"),
		}},
		{name: "duo seed configured as documented", opts: Options{Rules: []Source{duo}, Configuration: declaredOnly}, want: []Finding{
			undeclared("DUO_MFA:IKEY", "DUO_MFA:DUO_IKEY"),
			undeclared("DUO_MFA:SKEY", "DUO_MFA:DUO_SKEY"),
			undeclared("DUO_MFA:API_HOSTNAME", "DUO_MFA:DUO_API_HOSTNAME"),
			unset("DUO_MFA:IKEY"), unset("DUO_MFA:SKEY"), unset("DUO_MFA:API_HOSTNAME"),
		}},
		{name: "duo seed missing mandatory", opts: Options{Rules: []Source{duo}, Configuration: map[string]string{"DUO_MFA:IKEY": "i", "DUO_MFA:SKEY": "s", "DUO_MFA:API_HOSTNAME": "h"}}, want: []Finding{
			{Rule: "000_duo", Path: duo.Path, Severity: SeverityError, Message: `mandatory configuration key "DUO_MFA:CLIENT_ID" is not set`},
			{Rule: "000_duo", Path: duo.Path, Severity: SeverityError, Message: `mandatory configuration key "DUO_MFA:DUO_IKEY" is not set`},
			{Rule: "000_duo", Path: duo.Path, Severity: SeverityError, Message: `mandatory configuration key "DUO_MFA:DUO_SKEY" is not set`},
			{Rule: "000_duo", Path: duo.Path, Severity: SeverityError, Message: `mandatory configuration key "DUO_MFA:DUO_API_HOSTNAME" is not set`},
			undeclared("DUO_MFA:IKEY", "DUO_MFA:DUO_IKEY"),
			undeclared("DUO_MFA:SKEY", "DUO_MFA:DUO_SKEY"),
			undeclared("DUO_MFA:API_HOSTNAME", "DUO_MFA:DUO_API_HOSTNAME"),
			unset("DUO_MFA:CLIENT_ID"),
		}},
		{name: "clean seeds", opts: Options{Rules: []Source{seedSource(t, "003_extranet.js"), seedSource(t, "003_frequency.js")}}},
		{name: "modules and shape", opts: Options{Rules: []Source{
			jsSource("fs", "function (u, c, cb) { require('fs'); var m = 'x'; require(m); }"),
			jsSource("arity", "function (a, b, c, d) {}"),
			{Name: "disabled", Code: []byte("var x"), Enabled: false},
			jsSource("fs", "function (u, c, cb) {}"),
		}}, want: []Finding{
			{Rule: "fs", Severity: SeverityError, Message: `module "fs" is not available`},
			{Rule: "fs", Severity: SeverityWarning, Message: "require() with a non-literal argument can only be checked when the rule runs"},
			{Rule: "arity", Severity: SeverityError, Message: "rule function declares 4 parameters, at most 3 (user, context, callback)"},
			{Rule: "disabled", Severity: SeverityError, Message: "rule must be a single function expression, such as function (user, context, callback) { ... }"},
			{Rule: "fs", Severity: SeverityError, Message: "duplicate rule name"},
		}},
		{name: "configuration dot access", opts: Options{
			Rules:         []Source{jsSource("dot", "function (u, c, cb) { var a = configuration.API_KEY, b = configuration['OTHER']; cb(null, u, c); }")},
			Configuration: map[string]string{"API_KEY": "k"},
		}, want: []Finding{{Rule: "dot", Severity: SeverityWarning, Message: `the code reads configuration key "OTHER", which is not set`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Lint(tc.opts)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestTry(t *testing.T) {
	out, err := Try(context.Background(), Options{Rules: []Source{seedSource(t, "003_extranet.js")}},
		Input{User: map[string]any{"user_id": "u"}, Context: Context{Request: Request{IP: "203.0.113.7"}}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Outcome != "continue" || out.Rule != nil || out.Error != nil || out.Multifactor == nil || out.Multifactor.AllowRememberBrowser {
		t.Errorf("out = %+v", out)
	}
	if out.Context["multifactor"] == nil || out.User["user_id"] != "u" {
		t.Errorf("user/context = %v / %v", out.User, out.Context)
	}
	out, err = Try(context.Background(), Options{Rules: []Source{jsSource("deny", "function (u, c, cb) { c.multifactor = {provider: 'duo', ikey: 'i', skey: 'secret', host: 'h'}; cb(new UnauthorizedError('nope')); }")}}, Input{})
	if err != nil {
		t.Fatal(err)
	}
	if out.Outcome != "error" || out.Rule == nil || *out.Rule != "deny" || out.Error.Name != "UnauthorizedError" || out.Error.Message != "nope" {
		t.Errorf("out = %+v", out)
	}
	if mf := out.Context["multifactor"].(map[string]any); mf["skey"] != "[redacted]" {
		t.Errorf("skey not redacted: %v", mf)
	}
	if _, err := Try(context.Background(), Options{Rules: []Source{jsSource("bad", "function (")}}, Input{}); err == nil {
		t.Error("Try accepted a syntax error")
	}
}

func TestLintNativeObjects(t *testing.T) {
	const suffix = ": every rule then gets user and context as plain objects built before it runs, instead of on first access, which costs about twice the rules' CPU per check (docs/performance.md)"
	for _, tc := range []struct {
		name, code, want string // want: "" = no such warning
	}{
		{"freeze", "function (u, c, cb) { Object.freeze(c); cb(null, u, c); }", `the rule mentions "freeze"` + suffix},
		{"in a comment", "function (u, c, cb) { /* Reflect */ cb(null, u, c); }", `the rule mentions "Reflect"` + suffix},
		{"unicode escape", "function (u, c, cb) { var s = '\\u0041'; cb(null, u, c); }", `the rule mentions an escape sequence (\u)` + suffix},
		{"part of a word", "function (u, c, cb) { var freezer = 1; cb(null, u, c); }", ""},
		{"plain rule", "function (u, c, cb) { cb(null, u, c); }", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, f := range Lint(Options{Rules: []Source{jsSource("r", tc.code)}}) {
				if strings.Contains(f.Message, "plain objects") {
					if f.Severity != SeverityWarning {
						t.Errorf("severity %q, want warning", f.Severity)
					}
					got = append(got, f.Message)
				}
			}
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("unexpected warning %q", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Errorf("warnings %q, want [%q]", got, tc.want)
			}
		})
	}
}
