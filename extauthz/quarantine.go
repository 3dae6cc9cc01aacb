package extauthz

import (
	"sync"
	"sync/atomic"
	"time"
)

// quarantine keeps an application (client id) whose rules keep running
// out of time from taking the rules' capacity from everyone else. A rule
// that loops or waits past its budget holds a runtime (and a core) until
// the budget ends; sent again and again, a few such Checks use up the
// pool. An application whose runs time out persistently — at least
// quarantineMinTimeouts in a window of quarantineWindow, and at least
// half of its runs there — is quarantined for quarantineFor: it may run
// its rules once at a time, and a Check that finds that one place taken
// is denied at once (overloaded). An occasional timeout, as on a busy
// machine, quarantines nothing.
type quarantine struct {
	clients sync.Map // client id → *clientRuns
	n       atomic.Int32
	now     func() time.Time
}

type clientRuns struct {
	mu       sync.Mutex
	window   time.Time // start of the counting window
	runs     int
	timeouts int
	until    atomic.Int64 // unix nanoseconds: quarantined until then
	running  atomic.Int32 // runs admitted while quarantined
}

const (
	// quarantineFor is how long an application stays limited.
	quarantineFor = 10 * time.Second
	// quarantineWindow and quarantineMinTimeouts decide when timeouts are
	// persistent.
	quarantineWindow      = time.Second
	quarantineMinTimeouts = 3
	// maxQuarantineClients bounds the applications tracked (client ids
	// come from the configuration and routes: a guard).
	maxQuarantineClients = 10000
)

// entry returns the client's record, or nil when too many are tracked.
func (q *quarantine) entry(client string) *clientRuns {
	if v, ok := q.clients.Load(client); ok {
		return v.(*clientRuns)
	}
	if q.n.Load() >= maxQuarantineClients {
		return nil
	}
	v, loaded := q.clients.LoadOrStore(client, &clientRuns{})
	if !loaded {
		q.n.Add(1)
	}
	return v.(*clientRuns)
}

// enter reports whether a run for client may start, and whether it was
// counted as the client's one run while quarantined (pass that to leave).
func (q *quarantine) enter(client string) (ok, counted bool) {
	c := q.entry(client)
	if c == nil || q.now().UnixNano() >= c.until.Load() {
		return true, false
	}
	if !c.running.CompareAndSwap(0, 1) {
		return false, false
	}
	return true, true
}

// leave ends a run that enter admitted, recording whether it timed out.
func (q *quarantine) leave(client string, counted, timedOut bool) {
	c := q.entry(client)
	if c == nil {
		return
	}
	if counted {
		c.running.Add(-1)
	}
	now := q.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.window) >= quarantineWindow {
		c.window, c.runs, c.timeouts = now, 0, 0
	}
	c.runs++
	if timedOut {
		c.timeouts++
	}
	if c.timeouts >= quarantineMinTimeouts && 2*c.timeouts >= c.runs {
		c.until.Store(now.Add(quarantineFor).UnixNano())
	}
}
