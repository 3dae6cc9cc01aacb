package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/stepup-dev/stepup/e2e/internal/browser"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// axeDir holds package.json pinning axe-core; `npm ci --prefix
// e2e/testdata/axe` (done by .ci/run) installs it.
const axeDir = "testdata/axe"

// axeChecker runs axe-core in pages.
type axeChecker struct{ src string }

// requireAxe loads axe.min.js from testdata/axe/node_modules (or
// $STEPUP_AXE_JS). Missing: the test fails under CI=true, else skips.
func requireAxe(t *testing.T) *axeChecker {
	t.Helper()
	path := os.Getenv("STEPUP_AXE_JS")
	if path == "" {
		path = filepath.Join(axeDir, "node_modules", "axe-core", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		msg := fmt.Sprintf("axe-core not found (%v): run `npm ci --prefix e2e/testdata/axe`", err)
		if harness.InCI() {
			t.Fatal(msg + "; CI=true, so this is a failure")
		}
		t.Skip(msg)
	}
	return &axeChecker{src: string(src)}
}

// axeViolation is one rule axe found broken, with where.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target []any `json:"target"`
	} `json:"nodes"`
}

// check injects axe into the current page (through DevTools, so the
// page's Content-Security-Policy does not apply to it), runs it, writes
// the report next to the screenshots and fails the test on any serious
// or critical violation.
func (a *axeChecker) check(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 4*browser.StepTimeout)
	defer cancel()
	if _, err := chromedp.Run(cctx, chromedp.Evaluate[bool](a.src+";true")); err != nil {
		t.Fatalf("axe on %s: inject: %v", name, err)
	}
	js := `axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(r.violations))`
	raw, err := chromedp.Run(cctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe on %s: run: %v", name, err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		t.Fatalf("axe on %s: %v", name, err)
	}
	dir := browser.ArtifactDir(ctx, t)
	if dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, "axe-"+name+".json"), []byte(raw), 0o644)
	}
	var bad []string
	for _, v := range vs {
		where := make([]string, 0, len(v.Nodes))
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target...))
		}
		line := fmt.Sprintf("%s (%s): %s at %s", v.ID, v.Impact, v.Help, strings.Join(where, ", "))
		if v.Impact == "serious" || v.Impact == "critical" {
			bad = append(bad, line)
		} else {
			t.Logf("axe on %s, %s", name, line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("axe on %s: serious or critical violations:\n  %s", name, strings.Join(bad, "\n  "))
	}
}
