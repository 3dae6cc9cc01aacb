package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzAnalyzeAction feeds the Action analyser (detection, the module
// wrapper, the export and auth0 scans) arbitrary files: it never panics,
// a file it accepts is an Action with an onExecutePostLogin export, and
// running what it accepts never panics and either continues or fails
// with an error (fail closed).
func FuzzAnalyzeAction(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "actions", "*.js"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "")
	}
	for _, s := range []string{
		"exports.onExecutePostLogin = 1;",
		"module.exports = {onExecutePostLogin: async () => {}};",
		"exports.onExecutePostLogin = async (e, api) => { auth0.x.y(); };",
		"exports.onExecutePostLogin = async (e, api) => {}\n})(); (function () {",
		"}); exports.onExecutePostLogin = 1; ({",
		"exports.onExecutePostLogin = () => { while (true) {} };",
		"for (;;) {} exports.onExecutePostLogin = 1",
	} {
		f.Add(s, "")
		f.Add(s, ScriptAction)
	}
	f.Fuzz(func(t *testing.T, code, kind string) {
		if len(code) > 4096 || strings.Contains(code, "while") || strings.Contains(code, "for") {
			// Budgets are tested elsewhere; keep each input fast.
			return
		}
		src := Source{Name: "f", Path: "f.js", Code: []byte(code), Enabled: true, Kind: kind}
		r, _ := analyze(src, 0, map[string]string{}, builtinModules)
		if r == nil {
			return
		}
		if r.action && r.program == nil {
			t.Fatal("accepted Action without a program")
		}
		if !r.action {
			return
		}
		e, err := New(Options{Rules: []Source{src}, PoolSize: 1})
		if err != nil {
			t.Fatalf("analyze accepted what New refuses: %v", err)
		}
		defer e.Close()
		res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "u"}})
		if res.Err != nil && res.Err.Kind == 0 {
			t.Fatalf("error without a kind: %+v", res.Err)
		}
	})
}
