package session

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StoreMonitor pings a store and reports its health: the gauge
// stepup_session_store_up, the counter stepup_session_store_errors_total,
// a log line on every change, and a callback (a server's health and
// readiness). Checks fail closed on their own while the store is down; the
// monitor only makes the outage visible, and notices the recovery.
type StoreMonitor struct {
	store    Store
	log      *slog.Logger
	up       atomic.Bool
	gauge    prometheus.Gauge
	failures prometheus.Counter
	onChange func(up bool)
}

// NewStoreMonitor registers the monitor's metrics with reg; the store
// counts as up until a ping fails. onChange (may be nil) is called with
// the new state on every change.
func NewStoreMonitor(store Store, reg prometheus.Registerer, log *slog.Logger, onChange func(bool)) *StoreMonitor {
	m := &StoreMonitor{
		store: store, log: log, onChange: onChange,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_session_store_up",
			Help: "1 when the session store answers its health check.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stepup_session_store_errors_total",
			Help: "Failed session store health checks.",
		}),
	}
	reg.MustRegister(m.gauge, m.failures)
	m.up.Store(true)
	m.gauge.Set(1)
	return m
}

// Run pings every interval until ctx ends.
func (m *StoreMonitor) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *StoreMonitor) check(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	err := m.store.Ping(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	up := err == nil
	if !up {
		m.failures.Inc()
	}
	if m.up.Swap(up) != up {
		if up {
			m.gauge.Set(1)
			m.log.Info("session store is back")
		} else {
			m.gauge.Set(0)
			m.log.Error("session store unavailable: checks that need it fail closed", "error", err.Error())
		}
		if m.onChange != nil {
			m.onChange(up)
		}
	}
}
