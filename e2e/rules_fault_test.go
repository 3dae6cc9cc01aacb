package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
)

// faultRule misbehaves for some clients: "slow" waits 80 ms on a timer,
// "loop" never ends, "spike" builds a string of 256 MiB and an array of
// ten million elements; every other client gets the extranet MFA rule's
// answer at once.
const faultRule = `function (user, context, callback) {
  if (context.clientID === 'slow') {
    return setTimeout(function () { callback(null, user, context); }, 80);
  }
  if (context.clientID === 'loop') {
    while (true) {}
  }
  if (context.clientID === 'spike') {
    var s = 'x'.repeat(256 * 1024 * 1024);
    var a = [];
    for (var i = 0; i < 10000000; i++) { a.push(i); }
    return callback(null, user, context);
  }
  context.multifactor = { provider: 'any' };
  callback(null, user, context);
}
`

func startFaultStepup(t *testing.T) (authv3.AuthorizationClient, int) {
	t.Helper()
	dir := t.TempDir()
	rule := filepath.Join(dir, "fault.js")
	if err := os.WriteFile(rule, []byte(faultRule), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startStepup(t, serverConfig{Extra: fmt.Sprintf("rules:\n  list:\n    - name: fault\n      file: %q\n  watch: false\n", rule) +
		"sessions:\n  store:\n    type: memory\n"})
	return authv3.NewAuthorizationClient(srv.Dial(t)), srv.Proc.Pid()
}

// TestFaultRulesOthersServed: while slow and looping rules hold Checks,
// other clients are still answered with decisions within Envoy's
// deadline, and the misbehaving Checks fail closed. It prints the other
// clients' Checks per second without and with the fault (FAULT lines).
func TestFaultRulesOthersServed(t *testing.T) {
	client, _ := startFaultStepup(t)
	other := envoyreq.Browser(extranetIP).MustProto()
	measure := func(d time.Duration) (answered, late int) {
		deadline := time.Now().Add(d)
		var ok, bad atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					ctx, cancel := context.WithTimeout(context.Background(), envoyCheckDeadline)
					resp, err := client.Check(ctx, other)
					cancel()
					if err != nil || allowed(resp) {
						bad.Add(1)
						continue
					}
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		return int(ok.Load()), int(bad.Load())
	}
	mustCheck(t, client, other) // warm up
	base, baseLate := measure(time.Second)

	// The fault: 8 slow and 2 looping Checks at a time, for as long as the
	// others are measured.
	stop := make(chan struct{})
	var faults sync.WaitGroup
	var faultAllowed atomic.Int64
	for i := range 10 {
		cid := "slow"
		if i < 2 {
			cid = "loop"
		}
		req := envoyreq.Browser(extranetIP)
		req.ContextExtensions = map[string]string{"client_id": cid}
		pr := req.MustProto()
		faults.Add(1)
		go func() {
			defer faults.Done()
			for n := 0; n < 10000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				resp, err := client.Check(ctx, pr)
				cancel()
				if err == nil && allowed(resp) && cid == "loop" {
					faultAllowed.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	during, duringLate := measure(time.Second)
	close(stop)
	faults.Wait()
	t.Logf("FAULT other clients' Checks/s: %d without the fault, %d with 8 slow and 2 looping rules (%.0f%%); errors or allows: %d, %d",
		base, during, 100*float64(during)/float64(max(base, 1)), baseLate, duringLate)
	if faultAllowed.Load() > 0 {
		t.Errorf("a looping rule's Check was allowed %d times", faultAllowed.Load())
	}
	if duringLate > 0 || during == 0 {
		t.Errorf("other clients during the fault: %d answered, %d errors (deadline) or allows", during, duringLate)
	}
}

// TestFaultRulesMemorySpike: a rule that builds 256 MiB strings and huge
// arrays fails closed; the process stays far from a gigabyte, and its
// memory comes back down afterwards. It prints the RSS figures.
func TestFaultRulesMemorySpike(t *testing.T) {
	client, pid := startFaultStepup(t)
	normal := envoyreq.Browser(extranetIP).MustProto()
	mustCheck(t, client, normal)
	before := rssBytes(t, pid)
	req := envoyreq.Browser(extranetIP)
	req.ContextExtensions = map[string]string{"client_id": "spike"}
	spike := req.MustProto()
	peak := before
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := client.Check(ctx, spike)
		cancel()
		if err == nil && allowed(resp) {
			t.Fatalf("the memory-spiking rule was allowed: %v", resp)
		}
		peak = max(peak, rssBytes(t, pid))
	}
	// Normal traffic goes on; the memory limit follows the heap down.
	var after int64
	for i := 0; i < 40; i++ {
		mustCheck(t, client, normal)
		time.Sleep(500 * time.Millisecond)
		after = rssBytes(t, pid)
		if after < before+64<<20 {
			break
		}
	}
	t.Logf("FAULT RSS around a memory spike: %d MiB before, %d MiB at the peak, %d MiB afterwards", before>>20, peak>>20, after>>20)
	if peak > 1<<30 {
		t.Errorf("RSS reached %d MiB", peak>>20)
	}
}

// rssBytes reads a process's resident set size from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
