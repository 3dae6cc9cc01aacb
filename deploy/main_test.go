package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// root is the repository's root, relative to this package's directory.
const root = ".."

// stepupBin is the stepup binary built from this module by TestMain.
var stepupBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stepup-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	stepupBin = filepath.Join(dir, "stepup")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", stepupBin, "./cmd/stepup")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: go build ./cmd/stepup: %v\n%s", err, out.String())
		return 1
	}
	code := m.Run()
	stopStepup()
	return code
}

// inCI reports whether the tests run in CI (CI=true), where a missing
// external program is a failure rather than a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

// requireProgram returns the path of an external program the test needs;
// without it the test fails in CI and is skipped elsewhere.
func requireProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found in PATH (apt-get install %s)", name, pkg)
	if inCI() {
		t.Fatal(msg + "; CI=true, so this is a failure")
	}
	t.Skip(msg)
	return ""
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
