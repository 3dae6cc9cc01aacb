package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/internal/buildinfo"
)

// TestVersionCommand runs `stepup version` in the test binary, whose build
// information the toolchain embedded as it does in the real binary.
func TestVersionCommand(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("the test binary carries no build information")
	}
	for _, arg := range []string{"version", "--version"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, &stdout, &stderr); code != 0 {
			t.Fatalf("stepup %s: exit %d, stderr %q", arg, code, stderr.String())
		}
		got := strings.TrimSuffix(stdout.String(), "\n")
		if want := buildinfo.From(bi).String(); got != want {
			t.Errorf("stepup %s printed %q, want %q", arg, got, want)
		}
		if strings.Contains(got, "stepup dev ") || !strings.HasSuffix(got, " "+runtime.Version()) {
			t.Errorf("stepup %s printed %q: want the build's version and the Go version %s at the end", arg, got, runtime.Version())
		}
	}
}
