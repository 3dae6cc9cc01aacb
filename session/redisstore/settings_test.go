package redisstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// warnings returns the messages l logged at WARN, each followed by its
// "setting" attribute when it has one, sorted.
func warnings(t *testing.T, l *logBuffer) []string {
	t.Helper()
	var out []string
	for _, r := range l.records(t) {
		if r["level"] == "WARN" {
			setting, _ := r["setting"].(string)
			out = append(out, strings.TrimSpace(fmt.Sprint(r["msg"])+" "+setting))
		}
	}
	slices.Sort(out)
	return out
}

const (
	warnUnsafe = "redis session store: unsafe redis setting"
	warnNoRead = "redis session store: could not check redis settings; make sure Redis persists its data (appendonly yes, or a save policy) and uses maxmemory-policy noeviction"
)

// TestCheckSettings starts real redis-servers with unsafe and safe
// settings and checks what the store warns about, in its JSON log.
func TestCheckSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want []string // sorted warnings
	}{
		{"nothing on disk, LRU eviction", []string{"--maxmemory-policy", "allkeys-lru"},
			[]string{warnUnsafe + " maxmemory-policy", warnUnsafe + " persistence"}},
		{"nothing on disk", nil, []string{warnUnsafe + " persistence"}},
		{"volatile eviction with AOF", []string{"--appendonly", "yes", "--maxmemory-policy", "volatile-ttl"},
			[]string{warnUnsafe + " maxmemory-policy"}},
		{"AOF, noeviction", []string{"--appendonly", "yes"}, nil},
		{"RDB snapshots, noeviction", []string{"--save", "900 1"}, nil},
		{"CONFIG disabled", []string{"--rename-command", "CONFIG", ""}, []string{warnNoRead}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.NewWithArgs(t, tc.args...)
			var log logBuffer
			s := newStoreOpts(t, redisstore.Options{Addrs: []string{srv.Addr()}, Logger: slog.New(slog.NewJSONHandler(&log, nil))})
			unsafe, err := s.CheckSettings(context.Background())
			if (err != nil) != slices.Contains(tc.want, warnNoRead) {
				t.Errorf("CheckSettings error = %v", err)
			}
			if got := warnings(t, &log); !slices.Equal(got, tc.want) {
				t.Errorf("warnings:\n%q\nwant\n%q", got, tc.want)
			}
			if len(unsafe) > 0 {
				t.Logf("%+v", unsafe)
			}
			if !log.has(t, "INFO", "checked redis settings") {
				t.Error("no log line saying the settings were checked")
			}
		})
	}
}
