package main

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/stepup-dev/stepup"

// TestPackageDirection keeps the dependency direction: the leaves (rules,
// cidr, session) import no other project package; config imports only the
// leaves whose bounds and readers it uses; extauthz never imports mfa,
// config or cmd; mfa never imports extauthz, rules or config. Each package
// under internal/ imports only the project packages listed for it, and
// only cmd/stepup wires them together.
func TestPackageDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Doc", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	forbidden := map[string][]string{
		"rules":    {"*"},
		"cidr":     {"*"},
		"session":  {"*"},
		"extauthz": {"mfa", "config", "cmd", "internal"},
		"mfa":      {"extauthz", "rules", "config", "cmd", "internal"},
		"config":   {"rules", "extauthz", "mfa", "cmd", "internal"},
	}
	// allowed lists, for each internal package, every project package
	// (by its top directory) it may import.
	allowed := map[string][]string{
		"internal/admin":     {"session", "mfa"},
		"internal/audit":     {"config", "extauthz", "mfa"},
		"internal/buildinfo": nil,
		"internal/gotune":    {"config"},
		"internal/jwtkeys":   nil,
		"internal/mfaconfig": {"config", "internal", "mfa"},
		"internal/profiling": nil,
		"internal/readiness": nil,
		"internal/rulescli":  {"rules"},
		"internal/rulesload": {"config", "rules", "extauthz"},
		"internal/servertls": nil,
		"internal/sessions":  {"config", "session"},
		"internal/testclock": nil,
	}
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath, Doc string
			Imports         []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		top := strings.SplitN(rel, "/", 2)[0]
		if p.Doc == "" && !strings.HasPrefix(rel, "e2e") {
			t.Errorf("package %s has no package comment", p.ImportPath)
		}
		var check func(itop string) bool // reports a forbidden import
		if top == "internal" {
			may, ok := allowed[rel]
			if !ok {
				t.Errorf("package %s: add it, and the project packages it may import, to this test", p.ImportPath)
				continue
			}
			check = func(itop string) bool { return !slices.Contains(may, itop) }
		} else if rules, ok := forbidden[top]; ok {
			check = func(itop string) bool { return slices.Contains(rules, "*") || slices.Contains(rules, itop) }
		} else {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			irel := strings.TrimPrefix(imp, module+"/")
			itop := strings.SplitN(irel, "/", 2)[0]
			if itop == top && top != "internal" {
				continue // a package and its subpackages
			}
			if check(itop) {
				t.Errorf("%s imports %s: against the package direction", p.ImportPath, imp)
			}
		}
	}
	if seen < 3 {
		t.Fatalf("checked only %d packages: is go list working?", seen)
	}
}
