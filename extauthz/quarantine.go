package extauthz

import (
	"sync"
	"sync/atomic"
	"time"
)

// quarantine keeps a client whose rules run out of time from taking the
// rules' capacity from everyone else. A rule that loops or waits past its
// budget holds a runtime (and a core) until the budget ends; sent again
// and again, a few such Checks use up the pool. After a timeout a client
// is quarantined for quarantineFor: it may run its rules once at a time,
// and a Check that finds its one place taken is denied at once
// (overloaded). Clients whose rules end in time are never limited.
type quarantine struct {
	n       atomic.Int32 // len(clients), read without the lock
	mu      sync.Mutex
	clients map[string]*quarantined
	now     func() time.Time
}

type quarantined struct {
	until   time.Time
	running int
}

// quarantineFor is how long a client stays limited after a timeout.
const quarantineFor = 10 * time.Second

// maxQuarantined bounds the clients tracked (client ids come from the
// configuration and routes: a guard, not a limit that matters).
const maxQuarantined = 10000

// enter reports whether a run for client may start, and whether it was
// counted as the client's one run (pass that to leave).
func (q *quarantine) enter(client string) (ok, counted bool) {
	if q.n.Load() == 0 {
		return true, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.clients[client]
	switch {
	case c == nil:
		return true, false
	case !q.now().Before(c.until):
		if c.running == 0 {
			q.drop(client)
		}
		return true, false
	case c.running > 0:
		return false, false
	}
	c.running++
	return true, true
}

// leave ends a run that enter admitted; timedOut puts the client in
// quarantine (again).
func (q *quarantine) leave(client string, counted, timedOut bool) {
	if !counted && !timedOut {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.clients[client]
	if counted && c != nil {
		c.running--
	}
	if !timedOut {
		return
	}
	if c == nil {
		if q.clients == nil {
			q.clients = make(map[string]*quarantined)
		}
		if len(q.clients) >= maxQuarantined {
			for k, v := range q.clients {
				if v.running == 0 {
					q.drop(k)
					break
				}
			}
		}
		c = &quarantined{}
		q.clients[client] = c
		q.n.Store(int32(len(q.clients)))
	}
	c.until = q.now().Add(quarantineFor)
}

func (q *quarantine) drop(client string) {
	delete(q.clients, client)
	q.n.Store(int32(len(q.clients)))
}
