package rules

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitingRunsDoNotStarveOthers: runs parked in a setTimeout do not
// hold the places other runs need. Eight clients keep a rule waiting
// 80 ms in flight (four times the pool) while another client's runs must
// keep completing.
func TestWaitingRunsDoNotStarveOthers(t *testing.T) {
	rule := jsSource("maybe-slow", `function (user, context, callback) {
  if (user.slow) { return setTimeout(function () { callback(null, user, context); }, 80); }
  callback(null, user, context);
}`)
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 2, RuleTimeout: 5 * time.Second, PipelineTimeout: 10 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var slowDone, slowFailed atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if res := e.Run(context.Background(), Input{User: map[string]any{"slow": true}}); res.Err != nil {
					slowFailed.Add(1)
				} else {
					slowDone.Add(1)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // the slow runs fill the pool
	var fast, failed int
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		if res := e.Run(context.Background(), Input{User: map[string]any{"user_id": "fast"}}); res.Err != nil {
			failed++
		} else {
			fast++
		}
	}
	cancel()
	wg.Wait()
	t.Logf("other client: %d runs in 1s; slow runs: %d", fast, slowDone.Load())
	// Holding the two runtimes through their waits, the slow runs let
	// the other client through about 20 times a second.
	if fast < 200 || failed > 0 {
		t.Errorf("other client: %d runs completed, %d failed in 1s while 8 runs waited; want at least 200 and no failure", fast, failed)
	}
	if slowDone.Load() == 0 || slowFailed.Load() > 0 {
		t.Errorf("slow runs: %d completed, %d failed", slowDone.Load(), slowFailed.Load())
	}
}

// TestQueueWaitPastDeadlineFailsAtOnce: with every place held by runs
// that have been holding it for long, a run whose deadline comes before
// its expected turn fails closed at once instead of waiting it out.
func TestQueueWaitPastDeadlineFailsAtOnce(t *testing.T) {
	rule := jsSource("busy", `function (user, context, callback) {
  if (user.busy) { var end = Date.now() + 300; while (Date.now() < end) {} }
  callback(null, user, context);
}`)
	e := newEngine(t, Options{Rules: []Source{rule}, PoolSize: 1})
	busy := Input{User: map[string]any{"busy": true}}
	if res := e.Run(context.Background(), busy); res.Err != nil { // the average hold is now ~300ms
		t.Fatal(res.Err)
	}
	started := make(chan struct{})
	done := make(chan Result)
	go func() {
		close(started)
		done <- e.Run(context.Background(), busy)
	}()
	<-started
	for e.pool.queued.Load() == 0 && len(e.pool.cpu) == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res := e.Run(ctx, Input{})
	if res.Err == nil || res.Err.Kind != KindTimeout || !strings.Contains(res.Err.Message, "overloaded") {
		t.Errorf("got %v, want an immediate overloaded timeout", res.Err)
	}
	if r := <-done; r.Err != nil {
		t.Fatal(r.Err)
	}
}
