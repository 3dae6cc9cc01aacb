package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadClockOffset(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    time.Duration
		wantErr bool
	}{
		{"zero", "0s", 0, false},
		{"days with a newline", "696h\n", 696 * time.Hour, false},
		{"negative", " -90s ", -90 * time.Second, false},
		{"compound", "744h1m30s", 744*time.Hour + 90*time.Second, false},
		{"empty", "", 0, true},
		{"not a duration", "tomorrow", 0, true},
		{"a bare number", "3600", 0, true},
		{"too far", "876000h", 0, true},
		{"too long", strings.Repeat(" ", 70) + "1s", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "clock")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readClockOffset(path)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errTestClock) {
				t.Errorf("err = %v, want errTestClock", err)
			}
			if got != tt.want {
				t.Errorf("offset %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := readClockOffset(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, errTestClock) {
		t.Errorf("missing file: err = %v, want errTestClock", err)
	}
}

// TestTestClockFollowsTheFile: the offset is re-read on every call, and a
// broken file keeps the last good one.
func TestTestClockFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("1h")
	var logs bytes.Buffer
	c, err := newTestClock(path, newLogger(&logs, "info"))
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c.real = func() time.Time { return base }
	steps := []struct {
		file string
		want time.Duration
	}{
		{"", time.Hour},
		{"696h", 696 * time.Hour},
		{"garbage", 696 * time.Hour},
		{"also garbage", 696 * time.Hour},
		{"744h", 744 * time.Hour},
	}
	for _, s := range steps {
		if s.file != "" {
			write(s.file)
		}
		if got := c.Now().Sub(base); got != s.want {
			t.Errorf("after writing %q: offset %v, want %v", s.file, got, s.want)
		}
	}
	if n := strings.Count(logs.String(), "test clock file unusable"); n != 1 {
		t.Errorf("%d warnings for one bad spell, want 1:\n%s", n, logs.String())
	}
	if _, err := newTestClock(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("a missing clock file was accepted at start")
	}
}

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
