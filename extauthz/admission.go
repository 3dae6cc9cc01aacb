package extauthz

import (
	"runtime"
	"sync/atomic"
)

// DefaultMaxInFlight is the bound on Checks in flight when Options leaves
// it at 0: 64 per CPU that Go may use. A Check takes well under a
// millisecond of CPU, so a full house is worked off in a few tens of
// milliseconds, inside Envoy's deadline; past it, waiting longer only
// turns answers into deadline expiries.
func DefaultMaxInFlight() int { return 64 * runtime.GOMAXPROCS(0) }

// admission bounds the Checks in flight, over every mode together. Past
// the bound a Check is refused at once instead of queuing: it is denied
// with 503 and reason "overloaded", so the Checks already admitted keep
// their deadlines and Envoy gets a fail-closed answer rather than a
// timeout.
type admission struct {
	max      int64
	inFlight atomic.Int64
	metrics  *Metrics
}

// enter admits a Check and reports true, or reports false when the bound
// is reached. An admitted Check must call leave.
func (a *admission) enter(mode Mode) bool {
	if a.inFlight.Add(1) > a.max {
		a.inFlight.Add(-1)
		if a.metrics != nil {
			a.metrics.rejected.WithLabelValues(string(mode)).Inc()
		}
		return false
	}
	if a.metrics != nil {
		a.metrics.inFlight.Inc()
	}
	return true
}

func (a *admission) leave() {
	a.inFlight.Add(-1)
	if a.metrics != nil {
		a.metrics.inFlight.Dec()
	}
}

// overloadedDecision is the answer to a Check over the bound.
func overloadedDecision() Decision {
	return Decision{Kind: Deny, Status: 503, Reason: ReasonOverloaded, Message: "too many checks in flight"}
}
