// Package readiness is what stepup reports to the proxies and the
// orchestrator in front of it: the gRPC health of the server and of its
// services, and the HTTP /readyz. Both say "not serving" while the session
// store is unreachable, and from the moment the server starts draining.
package readiness

import (
	"io"
	"net/http"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// State is a server's readiness. It starts serving.
type State struct {
	hs                  *health.Server
	services            []string
	draining, storeDown atomic.Bool
}

// New returns a serving State for the server ("") and services, the full
// names of the gRPC services it serves.
func New(services ...string) *State {
	s := &State{hs: health.NewServer(), services: append([]string{""}, services...)}
	s.set(true)
	return s
}

// Register serves gRPC health (grpc.health.v1.Health) on gs.
func (s *State) Register(gs *grpc.Server) { healthpb.RegisterHealthServer(gs, s.hs) }

func (s *State) set(up bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !up {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	for _, name := range s.services {
		s.hs.SetServingStatus(name, st)
	}
}

// SetStore records whether the session store answers; it changes nothing
// once draining.
func (s *State) SetStore(up bool) {
	s.storeDown.Store(!up)
	if !s.draining.Load() {
		s.set(up)
	}
}

// Drain turns every status to NOT_SERVING for good.
func (s *State) Drain() {
	s.draining.Store(true)
	s.hs.Shutdown()
}

// Readyz answers 200 "ready", or 503 with the reason.
func (s *State) Readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining\n")
	case s.storeDown.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "session store unavailable\n")
	default:
		_, _ = io.WriteString(w, "ready\n")
	}
}
