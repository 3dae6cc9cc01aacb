package gotune

import (
	"io"
	"log/slog"
	"math"
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
		{"GOMEMLIMIT: configured gc kept", map[string]string{"GOMEMLIMIT": "off"}, config.Runtime{GCPercent: 3000, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitAuto}}, 3000, -1},
		{"GOMEMLIMIT: default gc bounded", map[string]string{"GOMEMLIMIT": "off"}, config.Runtime{GCPercent: 3000, GCPercentDefault: true, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitAuto}}, 400, -1},
		{"default gc, limit off", nil, config.Runtime{GCPercent: 3000, GCPercentDefault: true, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitOff}}, 400, math.MaxInt64},
		{"default gc with auto limit", nil, config.Runtime{GCPercent: 3000, GCPercentDefault: true, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitAuto}}, 3000, 2 * live},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotGC, gotLimit := -1, int64(-1)
			tu := New(slog.New(slog.NewJSONHandler(io.Discard, nil)))
			tu.getenv = func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			tu.setGC = func(p int) int { gotGC = p; return 100 }
			tu.setLimit = func(l int64) int64 { gotLimit = l; return math.MaxInt64 }
			tu.liveHeap = func() uint64 { return live }
			tu.container = func() uint64 { return 0 }
			tu.Apply(tt.rc)
			if gotGC != tt.wantGC || gotLimit != tt.wantLimit {
				t.Errorf("gc=%d limit=%d, want gc=%d limit=%d", gotGC, gotLimit, tt.wantGC, tt.wantLimit)
			}
		})
	}
}

func TestAutoMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		live, container uint64
		want            int64
	}{
		{0, 0, 120 << 20},
		{44 << 20, 0, 120 << 20},
		{60 << 20, 0, 120 << 20},
		{100 << 20, 0, 200 << 20},
		{100<<20 + 1, 0, 200<<20 + 1<<20},
		{math.MaxUint64, 0, 120 << 20}, // absurd reading: keep the floor, never overflow
		{0, 1 << 30, 120 << 20},        // a roomy container changes nothing
		{0, 128 << 20, 128 << 20 / 10 * 9},
		{300 << 20, 512 << 20, 512 << 20 / 10 * 9},
		{0, math.MaxUint64, 120 << 20}, // "max" read as a number: no cap
	} {
		if got := autoMemoryLimit(tt.live, tt.container); got != tt.want {
			t.Errorf("autoMemoryLimit(%d, %d) = %d, want %d", tt.live, tt.container, got, tt.want)
		}
	}
}

func TestRuntimeTunerRetune(t *testing.T) {
	auto := config.Runtime{GCPercent: 1000, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitAuto}}
	fixed := config.Runtime{GCPercent: 1000, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitFixed, Bytes: 256 << 20}}
	steps := []struct {
		name      string
		env       map[string]string
		rc        *config.Runtime // apply this first, when set
		last      uint64          // live heap of the last collection
		wantLimit int64           // -1: setLimit not called
	}{
		{"start-up: floor", nil, &auto, 0, 120 << 20},
		{"no collection yet", nil, nil, 0, -1},
		{"heap grew", nil, nil, 100 << 20, 200 << 20},
		{"wobble kept", nil, nil, 104 << 20, -1},
		{"grew again", nil, nil, 150 << 20, 300 << 20},
		{"shrank to the floor", nil, nil, 10 << 20, 120 << 20},
		{"fixed limit untouched", nil, &fixed, 500 << 20, 256 << 20},
		{"fixed: retune does nothing", nil, nil, 500 << 20, -1},
		{"GOMEMLIMIT wins", map[string]string{"GOMEMLIMIT": "1GiB"}, &auto, 500 << 20, -1},
		{"GOMEMLIMIT: retune does nothing", map[string]string{"GOMEMLIMIT": "1GiB"}, nil, 500 << 20, -1},
	}
	tu := New(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	tu.setGC = func(int) int { return 100 }
	tu.liveHeap = func() uint64 { return 50 << 20 }
	tu.container = func() uint64 { return 0 }
	var cycles uint64
	tu.cycles = func() uint64 { return cycles }
	tu.reclaim = func() uint64 { t.Error("reclaimed although collections ran"); return 0 }
	for _, st := range steps {
		cycles++
		gotLimit := int64(-1)
		tu.getenv = func(k string) (string, bool) { v, ok := st.env[k]; return v, ok }
		tu.setLimit = func(l int64) int64 { gotLimit = l; return math.MaxInt64 }
		tu.lastLive = func() uint64 { return st.last }
		if st.rc != nil {
			tu.Apply(*st.rc)
		} else {
			tu.retune()
		}
		if gotLimit != st.wantLimit {
			t.Errorf("%s: limit set to %d, want %d", st.name, gotLimit, st.wantLimit)
		}
	}
}

// TestRuntimeTunerComesBackDown: after a spike raised the auto limit, an
// idle process (no collection since) still gets its limit, and its
// memory, back down: retune collects and measures.
func TestRuntimeTunerComesBackDown(t *testing.T) {
	auto := config.Runtime{GCPercent: 1000, MemoryLimit: config.ByteSizeOrAuto{Mode: config.MemoryLimitAuto}}
	tu := New(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	tu.getenv = func(string) (string, bool) { return "", false }
	tu.setGC = func(int) int { return 100 }
	tu.container = func() uint64 { return 0 }
	tu.liveHeap = func() uint64 { return 10 << 20 }
	var limit int64
	tu.setLimit = func(l int64) int64 { limit = l; return math.MaxInt64 }
	cycles, last, reclaimed := uint64(1), uint64(0), 0
	tu.cycles = func() uint64 { return cycles }
	tu.lastLive = func() uint64 { return last }
	tu.reclaim = func() uint64 { reclaimed++; cycles++; last = 12 << 20; return last }
	tu.Apply(auto)

	// A rule's spike: the last collection saw 1 GiB live.
	cycles, last = 2, 1<<30
	tu.retune()
	if limit != 2<<30 {
		t.Fatalf("after the spike: limit %d, want 2GiB", limit)
	}
	// Idle: no collection since; the spike's memory is garbage by now.
	tu.retune()
	if reclaimed != 1 || limit != minAutoMemoryLimit {
		t.Errorf("idle after the spike: %d reclaims, limit %d; want 1 and the floor %d", reclaimed, limit, minAutoMemoryLimit)
	}
	// At the floor, an idle process is left alone.
	tu.retune()
	if reclaimed != 1 {
		t.Errorf("at the floor: %d reclaims, want still 1", reclaimed)
	}
}
