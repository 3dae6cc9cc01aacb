package testclock

import (
	"bytes"
	"errors"
	"log/slog"
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
			if err != nil && !errors.Is(err, ErrUnusable) {
				t.Errorf("err = %v, want ErrUnusable", err)
			}
			if got != tt.want {
				t.Errorf("offset %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := readClockOffset(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrUnusable) {
		t.Errorf("missing file: err = %v, want ErrUnusable", err)
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
	c, err := New(path, slog.New(slog.NewJSONHandler(&logs, nil)))
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
	if _, err := New(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("a missing clock file was accepted at start")
	}
}
