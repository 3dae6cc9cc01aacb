package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"testing"

	"github.com/stepup-dev/stepup/config"
)

func TestRuntimeTunerApply(t *testing.T) {
	const live = 300 << 20
	tests := []struct {
		name      string
		env       map[string]string
		rc        config.Runtime
		wantGC    int   // -1: not called
		wantLimit int64 // -1: not called
	}{
		{"defaults auto small heap", nil, config.Runtime{GCPercent: 400, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitAuto}}, 400, 2 * live},
		{"fixed", nil, config.Runtime{GCPercent: 150, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitFixed, Bytes: 64 << 20}}, 150, 64 << 20},
		{"off", nil, config.Runtime{GCPercent: 400, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitOff}}, 400, math.MaxInt64},
		{"GOGC wins", map[string]string{"GOGC": "100"}, config.Runtime{GCPercent: 400, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitOff}}, -1, math.MaxInt64},
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "1GiB"}, config.Runtime{GCPercent: 400, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitAuto}}, 400, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotGC, gotLimit := -1, int64(-1)
			tu := newRuntimeTuner(slog.New(slog.NewJSONHandler(io.Discard, nil)))
			tu.getenv = func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			tu.setGC = func(p int) int { gotGC = p; return 100 }
			tu.setLimit = func(l int64) int64 { gotLimit = l; return math.MaxInt64 }
			tu.liveHeap = func() uint64 { return live }
			tu.apply(tt.rc)
			if gotGC != tt.wantGC || gotLimit != tt.wantLimit {
				t.Errorf("gc=%d limit=%d, want gc=%d limit=%d", gotGC, gotLimit, tt.wantGC, tt.wantLimit)
			}
		})
	}
}

func TestAutoMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int64
	}{
		{0, 128 << 20},
		{44 << 20, 128 << 20},
		{64 << 20, 128 << 20},
		{100 << 20, 200 << 20},
		{100<<20 + 1, 200<<20 + 1<<20},
		{math.MaxUint64, 128 << 20}, // absurd reading: keep the floor, never overflow
	} {
		if got := autoMemoryLimit(tt.live); got != tt.want {
			t.Errorf("autoMemoryLimit(%d) = %d, want %d", tt.live, got, tt.want)
		}
	}
}

func TestStartPprof(t *testing.T) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	env := func(v string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if k == pprofEnv && v != "" {
				return v, true
			}
			return "", false
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, bad := range []string{"0.0.0.0:0", ":0", "192.0.2.1:6060", "example.org:6060", "nonsense"} {
		if _, err := startPprof(ctx, log, env(bad)); err == nil {
			t.Errorf("%s=%q accepted, want refused", pprofEnv, bad)
		}
	}
	if addr, err := startPprof(ctx, log, env("")); err != nil || addr != nil {
		t.Fatalf("unset: addr=%v err=%v, want no endpoint", addr, err)
	}
	addr, err := startPprof(ctx, log, env("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("pprof cmdline: %d %q", resp.StatusCode, body)
	}
}
