package extauthz

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docHeadings returns the anchors of a Markdown file's headings, as
// GitHub derives them, outside code fences.
func docHeadings(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors := make(map[string]bool)
	fence := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, c := range strings.ToLower(title) {
			switch {
			case c == ' ':
				b.WriteByte('-')
			case c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
				b.WriteRune(c)
			}
		}
		anchors[b.String()] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return anchors
}

// docSection returns the lines of the section under the heading "## title".
func docSection(t *testing.T, path, title string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = line == "## "+title
			continue
		}
		if in {
			out = append(out, line)
		}
	}
	if !in {
		t.Fatalf("%s has no section %q", path, title)
	}
	return out
}

// TestReasonsDocumented: the table of docs/envoy.md#decisions-and-reasons
// lists exactly the reasons of [Reasons], each with its decision, so that
// the two cannot drift apart.
func TestReasonsDocumented(t *testing.T) {
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\| ([a-z_]+) \\|")
	documented := make(map[Reason]string)
	for _, line := range docSection(t, filepath.Join("..", "docs", "envoy.md"), "Decisions and reasons") {
		if m := row.FindStringSubmatch(line); m != nil {
			if _, dup := documented[Reason(m[1])]; dup {
				t.Errorf("docs/envoy.md lists reason %s twice", m[1])
			}
			documented[Reason(m[1])] = m[2]
		}
	}
	for _, r := range Reasons {
		kind, ok := documented[r.Reason]
		if !ok {
			t.Errorf("reason %s is in extauthz.Reasons but not in the table of docs/envoy.md#decisions-and-reasons", r.Reason)
			continue
		}
		if kind != r.Kind.String() {
			t.Errorf("docs/envoy.md gives reason %s the decision %s; extauthz.Reasons says %s", r.Reason, kind, r.Kind)
		}
		delete(documented, r.Reason)
	}
	for r := range documented {
		t.Errorf("docs/envoy.md lists reason %s, which extauthz.Reasons does not", r)
	}
}

// TestReasonsComplete: every Reason the package can give is in [Reasons]:
// each constant of type Reason, and no decision is made with a string
// literal as its reason.
func TestReasonsComplete(t *testing.T) {
	listed := make(map[string]bool)
	for _, r := range Reasons {
		if listed[string(r.Reason)] {
			t.Errorf("reason %s is listed twice in Reasons", r.Reason)
		}
		listed[string(r.Reason)] = true
	}
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				if id, ok := n.Type.(*ast.Ident); ok && id.Name == "Reason" {
					for _, v := range n.Values {
						if lit, ok := v.(*ast.BasicLit); ok {
							s, _ := strconv.Unquote(lit.Value)
							if !listed[s] {
								t.Errorf("%s: reason %q is not in Reasons (nor in docs/envoy.md)", fset.Position(lit.Pos()), s)
							}
						}
					}
				}
			case *ast.KeyValueExpr:
				if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
					if lit, ok := n.Value.(*ast.BasicLit); ok {
						t.Errorf("%s: reason given as the literal %s; use a Reason constant listed in Reasons", fset.Position(lit.Pos()), lit.Value)
					}
				}
			}
			return true
		})
	}
}

// TestDocLinks: every pointer of the form docs/NAME.md#anchor anywhere in
// the module names a file of docs/ and one of its headings, so that code
// comments keep pointing at something when a heading is renamed.
func TestDocLinks(t *testing.T) {
	root := ".."
	link := regexp.MustCompile(`docs/([a-z0-9_-]+\.md)#([a-z0-9_-]+)`)
	headings := make(map[string]map[string]bool)
	var broken []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".yaml", ".yml", ".conf", ".js", ".sh":
		default:
			if d.Name() != "Caddyfile" {
				return nil
			}
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range link.FindAllStringSubmatch(string(raw), -1) {
			doc, anchor := m[1], m[2]
			h, ok := headings[doc]
			if !ok {
				p := filepath.Join(root, "docs", doc)
				if _, err := os.Stat(p); err != nil {
					broken = append(broken, path+": "+m[0]+": no such file")
					continue
				}
				h = docHeadings(t, p)
				headings[doc] = h
			}
			if !h[anchor] {
				broken = append(broken, path+": "+m[0]+": no such heading")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(broken)
	for _, b := range slices.Compact(broken) {
		t.Error(b)
	}
}
