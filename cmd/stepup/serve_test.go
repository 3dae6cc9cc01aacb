package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesTestClockOutsideDevelopment: the hook cannot shift the
// clock of a production configuration.
func TestServeRefusesTestClockOutsideDevelopment(t *testing.T) {
	dir := t.TempDir()
	clock := filepath.Join(dir, "clock")
	if err := os.WriteFile(clock, []byte("720h"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "stepup.yaml")
	yaml := "data_dir: " + filepath.Join(dir, "data") + "\n" +
		"server:\n  grpc:\n    listen: 127.0.0.1:0\n  http:\n    listen: 127.0.0.1:0\n" +
		"networks:\n  corporate: [\"10.0.0.0/8\"]\n" +
		"sessions:\n  store:\n    type: memory\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--config", cfg, "--" + testClockFlag, clock}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "refused unless the configuration says development: true") {
		t.Errorf("exit %d, stderr %q; want 2 and the refusal", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("serve created its data directory before refusing")
	}
}
