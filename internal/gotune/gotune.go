// Package gotune sets the Go runtime's garbage collector percentage and
// soft memory limit from the runtime section of the configuration, and
// keeps an "auto" limit following the live heap. GOGC and GOMEMLIMIT in the
// environment win over the configuration.
package gotune

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/stepup-dev/stepup/config"
)

// minAutoMemoryLimit is the floor of runtime.memory_limit: auto. The
// process's RSS runs about 13 MB above the limit (the binary and what the
// Go runtime does not count), so this keeps stepup with 100,000 prefixes
// under 150 MB (docs/performance.md, scenario 6).
const minAutoMemoryLimit = 120 << 20

// Tuner applies the runtime section of the configuration: the GC
// percentage and the soft memory limit. Environment variables win: with
// GOGC set the percentage is left alone, with GOMEMLIMIT set the limit is.
type Tuner struct {
	log *slog.Logger
	// getenv is os.LookupEnv; replaced in tests.
	getenv func(string) (string, bool)
	// setGC and setLimit are debug.SetGCPercent and debug.SetMemoryLimit;
	// replaced in tests.
	setGC    func(int) int
	setLimit func(int64) int64
	// liveHeap measures the live heap after a collection; replaced in tests.
	liveHeap func() uint64
	// lastLive reads the live heap as of the last collection, without
	// forcing one (0 before the first); replaced in tests.
	lastLive func() uint64
	// container reads the cgroup's memory limit (0: none); replaced in
	// tests.
	container func() uint64
	// cycles reads the number of completed collections; reclaim collects,
	// returns what it can to the OS and reads the live heap. Replaced in
	// tests.
	cycles  func() uint64
	reclaim func() uint64

	mu  sync.Mutex
	cfg config.Runtime
	// limit is the auto limit in force (0 when the limit is not auto).
	limit int64
	// cgroup is the container's memory limit read by the last apply.
	cgroup uint64
	// lastCycles is cycles() at the last retune.
	lastCycles uint64
}

// New returns a Tuner that logs to log.
func New(log *slog.Logger) *Tuner {
	return &Tuner{
		log:       log,
		getenv:    os.LookupEnv,
		setGC:     debug.SetGCPercent,
		setLimit:  debug.SetMemoryLimit,
		liveHeap:  measureLiveHeap,
		lastLive:  readLiveHeap,
		container: cgroupLimit,
		cycles:    gcCycles,
		reclaim:   reclaimHeap,
	}
}

// Apply sets the GC percentage and the memory limit from rc. It is called
// at start-up and after each reload (an "auto" limit follows the live heap,
// which the networks and rules make).
func (t *Tuner) Apply(rc config.Runtime) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cfg = rc
	t.limit = 0
	// gcLog is what the "runtime tuned" line reports as gc_percent.
	var gcLog any
	if v, ok := t.getenv("GOGC"); ok {
		t.log.Debug("GOGC is set: runtime.gc_percent ignored", "GOGC", v)
		gcLog = "GOGC=" + v
	} else {
		_, envLimit := t.getenv("GOMEMLIMIT")
		gc := rc.GCPercentFor(envLimit)
		t.setGC(gc)
		gcLog = gc
	}
	if v, ok := t.getenv("GOMEMLIMIT"); ok {
		t.log.Debug("GOMEMLIMIT is set: runtime.memory_limit ignored", "GOMEMLIMIT", v)
		return
	}
	var limit int64
	switch rc.MemoryLimit.Mode {
	case config.MemoryLimitOff:
		limit = math.MaxInt64
	case config.MemoryLimitFixed:
		limit = rc.MemoryLimit.Bytes
	default: // auto
		live := t.liveHeap()
		t.cgroup = t.container()
		limit = autoMemoryLimit(live, t.cgroup)
		t.limit = limit
		t.log.Info("runtime tuned", "gc_percent", gcLog, "memory_limit", config.FormatByteSize(limit), "live_heap_bytes", live, "cgroup_limit_bytes", t.cgroup)
	}
	t.setLimit(limit)
}

// RetuneInterval is how often the auto memory limit follows the live heap.
const RetuneInterval = 15 * time.Second

// retune moves the auto memory limit to twice the live heap of the last
// collection (never below its floor; when no collection ran since the
// last retune and the limit is above the floor, it collects and returns
// free memory to the OS first, so that the limit and the process's
// memory come back down after a spike) when that differs from the limit in
// force by an eighth or more. Sized once at start-up, the limit
// would stay put while the live heap grows (sessions in the memory store,
// a longer network list after a reload): with a high gc_percent the
// collector would then run nearly constantly just under the limit. It
// does nothing unless the limit is auto and GOMEMLIMIT is unset.
func (t *Tuner) retune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limit == 0 {
		return
	}
	live := t.lastLive()
	if c := t.cycles(); c == t.lastCycles && t.limit > minAutoMemoryLimit {
		// No collection since the last retune: an idle process (no
		// allocation, so no collection for up to two minutes) would keep
		// the limit a spike raised, and the memory with it. Measure now.
		live = t.reclaim()
	}
	t.lastCycles = t.cycles()
	if live == 0 {
		return
	}
	limit := autoMemoryLimit(live, t.cgroup)
	// Small moves are left alone: the live heap wobbles between
	// collections, and each change is logged.
	if d := limit - t.limit; d < t.limit/8 && -d < t.limit/8 {
		return
	}
	t.log.Info("runtime retuned", "memory_limit", config.FormatByteSize(limit), "previous", config.FormatByteSize(t.limit), "live_heap_bytes", live)
	t.limit = limit
	t.setLimit(limit)
}

// Watch calls retune every interval until ctx ends.
func (t *Tuner) Watch(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.retune()
		}
	}
}

// autoMemoryLimit is the "auto" memory limit for a live heap: twice the
// live heap, at least minAutoMemoryLimit, rounded up to a MiB, and never
// more than 90% of container, the memory limit of the process's cgroup
// (0: none), so that the collector works harder before the kernel's OOM
// killer steps in.
func autoMemoryLimit(live, container uint64) int64 {
	l := int64(minAutoMemoryLimit)
	if live <= math.MaxInt64/4 && int64(2*live) > l {
		l = int64(2 * live)
	}
	l = (l + 1<<20 - 1) &^ (1<<20 - 1)
	if container > 0 && container <= math.MaxInt64/10*9 {
		if c := int64(container / 10 * 9); c < l {
			l = c
		}
	}
	return l
}

// cgroupLimit returns the memory limit of the process's cgroup (v1 or
// v2), or 0 when there is none or it cannot be read.
func cgroupLimit() uint64 {
	l, err := memlimit.FromCgroup()
	if err != nil {
		return 0
	}
	return l
}

// measureLiveHeap runs a collection and reads the live heap it found.
func measureLiveHeap() uint64 {
	runtime.GC()
	return readLiveHeap()
}

// gcCycles returns the number of completed collections.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// reclaimHeap collects, returns free memory to the OS and reads the live
// heap the collection found.
func reclaimHeap() uint64 {
	debug.FreeOSMemory()
	return readLiveHeap()
}

// readLiveHeap returns the live heap as of the last collection.
func readLiveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	return s[0].Value.Uint64()
}
