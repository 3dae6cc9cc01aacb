package extauthz

import (
	"sync"
	"testing"
	"time"
)

// TestQuarantine: after a timeout a client runs once at a time, others
// are not limited, and the limit ends after quarantineFor.
func TestQuarantine(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	q := quarantine{now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	if ok, counted := q.enter("loop"); !ok || counted {
		t.Fatalf("a client never timed out: %v %v", ok, counted)
	}
	q.leave("loop", false, true) // its run timed out
	ok1, c1 := q.enter("loop")
	ok2, _ := q.enter("loop")
	if !ok1 || !c1 || ok2 {
		t.Fatalf("quarantined client: first run %v (counted %v), second %v; want one at a time", ok1, c1, ok2)
	}
	if ok, counted := q.enter("other"); !ok || counted {
		t.Errorf("another client was limited")
	}
	q.leave("loop", c1, false)
	if ok, c := q.enter("loop"); !ok || !c {
		t.Fatalf("after its run ended, the next one: %v %v", ok, c)
	} else {
		q.leave("loop", c, false)
	}
	mu.Lock()
	now = now.Add(quarantineFor + time.Second)
	mu.Unlock()
	ok3, c3 := q.enter("loop")
	ok4, _ := q.enter("loop")
	if !ok3 || c3 || !ok4 || q.n.Load() != 0 {
		t.Errorf("after the quarantine: %v %v %v, %d tracked", ok3, c3, ok4, q.n.Load())
	}
}

// TestQuarantineThroughCheck: a looping rule's client is denied at once
// while one of its Checks runs; other clients are answered as usual.
func TestQuarantineThroughCheck(t *testing.T) {
	s := rulesServer(t, nil, nil, inline("loop", `function (user, context, callback) {
  if (context.clientID === 'loop') { while (true) {} }
  callback(null, user, context);
}`))
	got, _ := run(t, s, checkReq("203.0.113.7", withExtension("client_id", "loop")))
	if got.status != 503 || got.reason != "rule_timeout" {
		t.Fatalf("first looping Check: %+v", got)
	}
	var wg sync.WaitGroup
	results := make(chan outcome, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, _ := run(t, s, checkReq("203.0.113.7", withExtension("client_id", "loop")))
			results <- o
		}()
	}
	wg.Wait()
	close(results)
	reasons := map[string]int{}
	for o := range results {
		if o.status == 200 {
			t.Fatalf("a looping rule's Check was allowed: %+v", o)
		}
		reasons[o.reason]++
	}
	if reasons["overloaded"] != 1 || reasons["rule_timeout"] != 1 {
		t.Errorf("two concurrent Checks of a quarantined client: %v, want one run and one overloaded", reasons)
	}
	if got, _ := run(t, s, checkReq("10.1.2.3")); got.status != 200 {
		t.Errorf("another client: %+v", got)
	}
}
