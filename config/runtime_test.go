package config

import (
	"strings"
	"testing"
)

func TestRuntimeSection(t *testing.T) {
	tests := []struct {
		name, yaml string
		wantGC     int
		want       ByteSizeOrAuto
		wantErr    string // substring of Parse or Validate; "" = valid
	}{
		{"defaults", "", 3000, ByteSizeOrAuto{Mode: MemoryLimitAuto}, ""},
		{"auto", "runtime: {memory_limit: auto}\n", 3000, ByteSizeOrAuto{Mode: MemoryLimitAuto}, ""},
		{"off", "runtime: {memory_limit: off}\n", 400, ByteSizeOrAuto{Mode: MemoryLimitOff}, ""},
		{"off with gc", "runtime: {memory_limit: off, gc_percent: 200}\n", 200, ByteSizeOrAuto{Mode: MemoryLimitOff}, ""},
		{"MiB", "runtime: {gc_percent: 100, memory_limit: 512MiB}\n", 100, ByteSizeOrAuto{Mode: MemoryLimitFixed, Bytes: 512 << 20}, ""},
		{"GiB", "runtime: {memory_limit: 2GiB}\n", 3000, ByteSizeOrAuto{Mode: MemoryLimitFixed, Bytes: 2 << 30}, ""},
		{"MB", "runtime: {memory_limit: 300MB}\n", 3000, ByteSizeOrAuto{Mode: MemoryLimitFixed, Bytes: 300e6}, ""},
		{"bytes", "runtime: {memory_limit: 67108864}\n", 3000, ByteSizeOrAuto{Mode: MemoryLimitFixed, Bytes: 64 << 20}, ""},
		{"too small", "runtime: {memory_limit: 1MiB}\n", 0, ByteSizeOrAuto{}, "runtime.memory_limit: must be at least 32MiB"},
		{"negative", "runtime: {memory_limit: -5MiB}\n", 0, ByteSizeOrAuto{}, "invalid size"},
		{"unit only", "runtime: {memory_limit: MiB}\n", 0, ByteSizeOrAuto{}, "invalid size"},
		{"unknown unit", "runtime: {memory_limit: 5 parsecs}\n", 0, ByteSizeOrAuto{}, "invalid size"},
		{"overflow", "runtime: {memory_limit: 99999999999TiB}\n", 0, ByteSizeOrAuto{}, "too large"},
		{"list", "runtime: {memory_limit: [1]}\n", 0, ByteSizeOrAuto{}, "expected"},
		{"gc too low", "runtime: {gc_percent: 5}\n", 0, ByteSizeOrAuto{}, "runtime.gc_percent: must be between 25 and 10000"},
		{"gc negative", "runtime: {gc_percent: -1}\n", 0, ByteSizeOrAuto{}, "runtime.gc_percent"},
		{"unknown key", "runtime: {gomaxprocs: 2}\n", 0, ByteSizeOrAuto{}, `runtime: unknown key "gomaxprocs"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("networks: {corporate: [10.0.0.0/8]}\n" + tc.yaml))
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Runtime.GCPercentFor(false) != tc.wantGC || c.Runtime.MemoryLimit != tc.want {
				t.Errorf("runtime = %+v, want gc %d limit %+v", c.Runtime, tc.wantGC, tc.want)
			}
		})
	}
}

func TestByteSizeRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, 1023, 1 << 10, 3 << 20, 5 << 30, 1<<20 + 1} {
		s := FormatByteSize(n)
		got, err := ParseByteSize(s)
		if err != nil || got != n {
			t.Errorf("ParseByteSize(FormatByteSize(%d) = %q) = %d, %v", n, s, got, err)
		}
	}
}

func TestRulesLimits(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		mem        ByteSize
		waiting    int
		wantErr    string
	}{
		{"defaults", "", 64 << 20, 0, ""},
		{"set", "rules: {max_runtime_memory: 128MiB, max_waiting_runs: 32}\n", 128 << 20, 32, ""},
		{"too small", "rules: {max_runtime_memory: 1KiB}\n", 0, 0, "rules.max_runtime_memory: must be at least 1MiB"},
		{"not a size", "rules: {max_runtime_memory: lots}\n", 0, 0, "invalid size"},
		{"negative waiting", "rules: {max_waiting_runs: -1}\n", 0, 0, "rules.max_waiting_runs"},
		{"too many waiting", "rules: {max_waiting_runs: 10001}\n", 0, 0, "rules.max_waiting_runs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("networks: {corporate: [10.0.0.0/8]}\n" + tc.yaml))
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Rules.MaxRuntimeMemory != tc.mem || c.Rules.MaxWaitingRuns != tc.waiting {
				t.Errorf("rules = %v, %d; want %v, %d", c.Rules.MaxRuntimeMemory, c.Rules.MaxWaitingRuns, tc.mem, tc.waiting)
			}
		})
	}
}
