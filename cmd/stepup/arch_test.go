package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/stepup-dev/stepup"

// TestPackageDirection keeps the dependency direction of DESIGN.md: the
// leaves (rules, cidr, session) import no other project package, extauthz
// never imports mfa, config or cmd, and mfa never imports extauthz or rules.
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
		"extauthz": {"mfa", "config", "cmd"},
		"mfa":      {"extauthz", "rules", "config", "cmd"},
		"config":   {"*"},
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
		rules, ok := forbidden[top]
		if !ok {
			continue
		}
		seen++
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			irel := strings.TrimPrefix(imp, module+"/")
			itop := strings.SplitN(irel, "/", 2)[0]
			if itop == top {
				continue // a package and its subpackages
			}
			for _, f := range rules {
				if f == "*" || f == itop {
					t.Errorf("%s imports %s: against the package direction of DESIGN.md", p.ImportPath, imp)
				}
			}
		}
	}
	if seen < 3 {
		t.Fatalf("checked only %d packages: is go list working?", seen)
	}
}
