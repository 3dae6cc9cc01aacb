package extauthz

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the check counters and histograms. Labels are fixed, small
// sets (mode, decision, reason): never a user, an IP or a path.
type Metrics struct {
	decisions *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	inFlight  prometheus.Gauge
	rejected  *prometheus.CounterVec
}

// NewMetrics registers the check metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_check_requests_total",
			Help: "Checks answered, by protocol, decision and reason.",
		}, []string{"mode", "decision", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stepup_check_duration_seconds",
			Help:    "Time to decide a check, inside stepup.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"mode"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_check_errors_total",
			Help: "Checks that failed closed because something went wrong, by reason (see extauthz.Reasons).",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stepup_check_in_flight",
			Help: "Checks being decided now, over every mode.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stepup_check_overloaded_total",
			Help: "Checks denied at once with reason overloaded because the bound on checks in flight was reached, by protocol.",
		}, []string{"mode"}),
	}
	reg.MustRegister(m.decisions, m.duration, m.errors, m.inFlight, m.rejected)
	// Exported at zero from the start, so that alerts and dashboards see
	// the series before the first overload.
	for _, mode := range []Mode{ModeGRPC, ModeEnvoyHTTP, ModeForwardAuth} {
		m.rejected.WithLabelValues(string(mode))
	}
	return m
}

func (m *Metrics) observe(mode Mode, d *Decision, elapsed time.Duration) {
	m.decisions.WithLabelValues(string(mode), d.Kind.String(), string(d.Reason)).Inc()
	m.duration.WithLabelValues(string(mode)).Observe(elapsed.Seconds())
	if reasonFault[d.Reason] {
		m.errors.WithLabelValues(string(d.Reason)).Inc()
	}
}
