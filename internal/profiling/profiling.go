// Package profiling serves net/http/pprof on a loopback address named by
// the environment, for profiling a running stepup.
package profiling

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Env names a loopback address on which `stepup serve` exposes
// net/http/pprof for profiling (docs/performance.md). Unset: no endpoint.
const Env = "STEPUP_PPROF"

// Start serves net/http/pprof on the loopback address in $STEPUP_PPROF
// until ctx ends. Any other address is refused: profiles reveal memory.
func Start(ctx context.Context, log *slog.Logger, getenv func(string) (string, bool)) (net.Addr, error) {
	addr, ok := getenv(Env)
	if !ok || addr == "" {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", Env, addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%s=%q: the profiling endpoint listens on loopback addresses only", Env, addr)
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Env, err)
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
