package extauthz

import (
	"sync"
	"testing"
	"time"
)

// TestQuarantine: persistent timeouts limit an application to one run at
// a time; an occasional timeout among many runs does not; other
// applications are never limited; the limit ends after quarantineFor.
func TestQuarantine(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	q := quarantine{now: clock}

	// A busy application with a timeout now and then stays free.
	for i := range 100 {
		q.enter("busy")
		q.leave("busy", false, i%10 == 0)
	}
	if ok1, _ := q.enter("busy"); !ok1 {
		t.Fatal("occasional timeouts quarantined an application")
	}
	if ok2, _ := q.enter("busy"); !ok2 {
		t.Fatal("occasional timeouts limited an application to one run")
	}

	// A looping one is quarantined after its third timeout.
	for range quarantineMinTimeouts {
		if ok, counted := q.enter("loop"); !ok || counted {
			t.Fatalf("before the quarantine: %v %v", ok, counted)
		}
		q.leave("loop", false, true)
	}
	ok1, c1 := q.enter("loop")
	ok2, _ := q.enter("loop")
	if !ok1 || !c1 || ok2 {
		t.Fatalf("quarantined: first run %v (counted %v), second %v; want one at a time", ok1, c1, ok2)
	}
	if ok, counted := q.enter("other"); !ok || counted {
		t.Errorf("another application was limited")
	}
	q.leave("loop", c1, true)
	if ok, c := q.enter("loop"); !ok || !c {
		t.Fatalf("after its run ended, the next one: %v %v", ok, c)
	} else {
		q.leave("loop", c, false)
	}
	advance(quarantineFor + time.Second)
	ok3, c3 := q.enter("loop")
	ok4, _ := q.enter("loop")
	if !ok3 || c3 || !ok4 {
		t.Errorf("after the quarantine: %v %v %v", ok3, c3, ok4)
	}
}

// TestQuarantineThroughCheck: once a looping rule's application is
// quarantined, of two concurrent Checks for it one runs and one is denied
// at once; other applications are answered as usual.
func TestQuarantineThroughCheck(t *testing.T) {
	s := rulesServer(t, nil, nil, inline("loop", `function (user, context, callback) {
  if (context.clientID === 'loop') { while (true) {} }
  callback(null, user, context);
}`))
	for range quarantineMinTimeouts {
		if got, _ := run(t, s, checkReq("203.0.113.7", withExtension("client_id", "loop"))); got.status != 503 || got.reason != "rule_timeout" {
			t.Fatalf("looping Check: %+v", got)
		}
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
		t.Errorf("two concurrent Checks of a quarantined application: %v, want one run and one overloaded", reasons)
	}
	if got, _ := run(t, s, checkReq("10.1.2.3")); got.status != 200 {
		t.Errorf("another application: %+v", got)
	}
}
