package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/stepup-dev/stepup/config"
)

// minAutoMemoryLimit is the floor of runtime.memory_limit: auto.
const minAutoMemoryLimit = 128 << 20

// runtimeTuner applies the runtime section of the configuration: the GC
// percentage and the soft memory limit. Environment variables win: with
// GOGC set the percentage is left alone, with GOMEMLIMIT set the limit is.
type runtimeTuner struct {
	log *slog.Logger
	// getenv is os.LookupEnv; replaced in tests.
	getenv func(string) (string, bool)
	// setGC and setLimit are debug.SetGCPercent and debug.SetMemoryLimit;
	// replaced in tests.
	setGC    func(int) int
	setLimit func(int64) int64
	// liveHeap measures the live heap after a collection; replaced in tests.
	liveHeap func() uint64

	mu  sync.Mutex
	cfg config.Runtime
}

func newRuntimeTuner(log *slog.Logger) *runtimeTuner {
	return &runtimeTuner{
		log:      log,
		getenv:   os.LookupEnv,
		setGC:    debug.SetGCPercent,
		setLimit: debug.SetMemoryLimit,
		liveHeap: measureLiveHeap,
	}
}

// apply sets the GC percentage and the memory limit from rc. It is called
// at start-up and after each reload (an "auto" limit follows the live heap,
// which the networks and rules make).
func (t *runtimeTuner) apply(rc config.Runtime) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cfg = rc
	if v, ok := t.getenv("GOGC"); ok {
		t.log.Debug("GOGC is set: runtime.gc_percent ignored", "GOGC", v)
	} else {
		t.setGC(rc.GCPercent)
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
		limit = autoMemoryLimit(live)
		t.log.Info("runtime tuned", "gc_percent", rc.GCPercent, "memory_limit", config.FormatByteSize(limit), "live_heap_bytes", live)
	}
	t.setLimit(limit)
}

// autoMemoryLimit is the "auto" memory limit for a live heap: twice the
// live heap, at least minAutoMemoryLimit, rounded up to a MiB.
func autoMemoryLimit(live uint64) int64 {
	l := int64(minAutoMemoryLimit)
	if live <= math.MaxInt64/4 && int64(2*live) > l {
		l = int64(2 * live)
	}
	return (l + 1<<20 - 1) &^ (1<<20 - 1)
}

// measureLiveHeap runs a collection and reads the live heap it found.
func measureLiveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	return s[0].Value.Uint64()
}

// pprofEnv names a loopback address on which `stepup serve` exposes
// net/http/pprof for profiling (docs/performance.md). Unset: no endpoint.
const pprofEnv = "STEPUP_PPROF"

// startPprof serves net/http/pprof on the loopback address in $STEPUP_PPROF
// until ctx ends. Any other address is refused: profiles reveal memory.
func startPprof(ctx context.Context, log *slog.Logger, getenv func(string) (string, bool)) (net.Addr, error) {
	addr, ok := getenv(pprofEnv)
	if !ok || addr == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", pprofEnv, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s=%q: the profiling endpoint listens on loopback addresses only", pprofEnv, addr)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pprofEnv, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof endpoint stopped", "error", err.Error())
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Warn("profiling endpoint enabled", "address", lis.Addr().String())
	return lis.Addr(), nil
}
