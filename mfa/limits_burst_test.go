package mfa

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/boltstore"
	"github.com/stepup-dev/stepup/session/memstore"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
	"github.com/stepup-dev/stepup/session/storetest"
)

// burstStores opens each real store kind for the burst tests; the fake
// clock drives the stores that take one.
var burstStores = []struct {
	name string
	open func(t *testing.T, clk *storetest.Clock) session.Store
}{
	{"memstore", func(t *testing.T, clk *storetest.Clock) session.Store {
		return memstore.New(memstore.Options{Now: clk.Now})
	}},
	{"boltstore", func(t *testing.T, clk *storetest.Clock) session.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "stepup.db"), boltstore.Options{Now: clk.Now, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"redisstore", func(t *testing.T, clk *storetest.Clock) session.Store {
		s, err := redisstore.New(redisstore.Options{Addrs: []string{redistest.Start(t)}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// newStoreEnv is newEnv on the given store.
func newStoreEnv(t *testing.T, open func(*testing.T, *storetest.Clock) session.Store) *env {
	t.Helper()
	e := &env{t: t, clk: storetest.NewClock(epoch), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	st := open(t, e.clk)
	t.Cleanup(func() { st.Close() })
	e.keys = []session.Key{testKey(t, "k1")}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	e.m, err = session.NewManager(session.Config{Keys: e.keys, Store: st, Now: e.clk.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.sealer, err = session.NewSealer(e.keys)
	if err != nil {
		t.Fatal(err)
	}
	e.opts = Options{Sessions: e.m, Store: st, Sealer: e.sealer, Now: e.clk.Now, Logger: log, Metrics: e.reg}
	e.h, err = New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestWrongCodeBurst posts a burst of wrong codes on one state at once,
// through a real HTTP server, and the right code once the limit's worth
// of wrong codes has been checked. However the requests interleave, no
// more codes are checked than the limit allows (DefaultUserFailures), and
// the right code, sent after them, is refused.
func TestWrongCodeBurst(t *testing.T) {
	const burst = 100
	for _, store := range burstStores {
		t.Run(store.name, func(t *testing.T) {
			e := newStoreEnv(t, store.open)
			secret, codes, _ := e.enrol(alice, anyRemember, false)
			srv := httptest.NewServer(e.h)
			t.Cleanup(srv.Close)
			client := srv.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			for _, method := range []string{"totp", "recovery"} {
				t.Run(method, func(t *testing.T) {
					e.clk.Advance(DefaultMaxLockout + DefaultLockout) // past any pause of the previous run
					right := e.code(secret, 0)
					wrong := "000000"
					factor := factorLabelTOTP
					if method == "recovery" {
						right, wrong, factor = codes[0], "aaaa-bbbb-cccc", factorLabelRecovery
					}
					if right == wrong {
						t.Skip("the right code happens to be 000000")
					}
					// Start from no count and no pause.
					ctx := context.Background()
					for _, k := range []string{
						failKey("user", userKey(alice.user)), lockKey("user", userKey(alice.user)),
						failKey("ip", "203.0.113.7"), lockKey("ip", "203.0.113.7"),
					} {
						if err := e.opts.Store.Delete(ctx, k); err != nil {
							t.Fatal(err)
						}
					}
					_, form := e.verifyForm(alice, anyRemember, returnURL, method, wrong)
					assertion := e.assertion(alice)
					post := func(code string) int {
						f := url.Values{}
						for k, v := range form {
							f[k] = v
						}
						f.Set("code", code)
						req, err := http.NewRequest(http.MethodPost, srv.URL+"/.stepup/mfa", strings.NewReader(f.Encode()))
						if err != nil {
							t.Error(err)
							return 0
						}
						req.Host = host
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
						req.Header.Set("User-Agent", chromeUA)
						req.Header.Set("Origin", "https://"+host)
						req.Header.Set("Sec-Fetch-Site", "same-origin")
						req.Header.Set(AssertionHeader, assertion)
						resp, err := client.Do(req)
						if err != nil {
							t.Error(err)
							return 0
						}
						resp.Body.Close()
						return resp.StatusCode
					}
					before := func(result string) float64 {
						return counterValue(e.h.metrics.verifications.WithLabelValues(factor, result))
					}
					failures0, successes0 := before(resultFailure), before(resultSuccess)

					// The wrong codes all at once; the right one as soon as
					// the limit's worth of wrong codes has been checked, while
					// the rest of the burst is still arriving.
					var wg sync.WaitGroup
					start := make(chan struct{})
					for range burst {
						wg.Go(func() {
							<-start
							post(wrong)
						})
					}
					burstDone := make(chan struct{})
					go func() { wg.Wait(); close(burstDone) }()
					close(start)
					for before(resultFailure)-failures0 < DefaultUserFailures {
						select {
						case <-burstDone:
						case <-time.After(time.Millisecond):
							continue
						}
						break
					}
					rightStatus := post(right)
					<-burstDone

					failures := before(resultFailure) - failures0
					successes := before(resultSuccess) - successes0
					t.Logf("burst of %d wrong codes and the right one: %v checked, right code answered %d", burst, failures+successes, rightStatus)
					if failures > DefaultUserFailures || failures+successes > DefaultUserFailures {
						t.Errorf("%v codes checked (%v wrong, %v right) in a burst of %d, want at most %d",
							failures+successes, failures, successes, burst+1, DefaultUserFailures)
					}
					if failures >= DefaultUserFailures && (rightStatus != http.StatusTooManyRequests || successes != 0) {
						t.Errorf("right code after %v wrong ones: answered %d, %v successes; want %d, 0",
							failures, rightStatus, successes, http.StatusTooManyRequests)
					}
				})
			}
		})
	}
}

// TestRightCodesDoNotCountAgainstTheAddress: every code is counted before
// it is checked, and a right one is taken back, so an office behind one
// address is not paused by its users' successful verifications.
func TestRightCodesDoNotCountAgainstTheAddress(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Limits = RateLimits{UserFailures: 5, IPFailures: 2} })
	const ip = "198.51.100.20"
	for i := range 5 {
		w := who{user: "office" + strconv.Itoa(i), ip: ip}
		secret, _, _ := e.enrol(w, anyRemember, false)
		e.clk.Advance(time.Minute)
		_, form := e.verifyForm(w, anyRemember, returnURL, "totp", e.code(secret, 0))
		if rec := e.post("/.stepup/mfa", w, form); rec.Code != http.StatusSeeOther {
			t.Fatalf("user %d from %s: %d %q", i, ip, rec.Code, pageError(rec.Body.String()))
		}
	}
	v, err := e.opts.Store.Get(context.Background(), failKey("ip", ip))
	if !errors.Is(err, session.ErrNotFound) && (err != nil || string(v) != "0") {
		t.Errorf("address count after 5 successes = %q, %v; want 0 or none", v, err)
	}
}

// TestPauseEndsByStepupsClock: a pause ends when stepup's clock says so,
// even when the store's clock runs behind and still holds it (the store
// here never sees time pass).
func TestPauseEndsByStepupsClock(t *testing.T) {
	storeClock := storetest.NewClock(epoch)
	e := newStoreEnv(t, func(*testing.T, *storetest.Clock) session.Store {
		return memstore.New(memstore.Options{Now: storeClock.Now})
	})
	secret, _, _ := e.enrol(alice, anyRemember, false)
	_, form := e.verifyForm(alice, anyRemember, returnURL, "totp", "000000")
	for range DefaultUserFailures {
		e.post("/.stepup/mfa", alice, form)
	}
	if got := pageError(e.post("/.stepup/mfa", alice, form).Body.String()); !strings.Contains(got, "Try again in 1 minute") {
		t.Fatalf("after %d wrong codes: %q, want a pause of 1 minute", DefaultUserFailures, got)
	}
	e.clk.Advance(61 * time.Second)
	if got := pageError(e.post("/.stepup/mfa", alice, form).Body.String()); got != "Too many wrong codes. Try again in 2 minutes." {
		t.Fatalf("wrong code after the pause: %q, want it checked and a pause of 2 minutes", got)
	}
	e.clk.Advance(2*time.Minute + time.Second)
	form.Set("code", e.code(secret, 0))
	if rec := e.post("/.stepup/mfa", alice, form); rec.Code != http.StatusSeeOther {
		t.Fatalf("right code after the second pause: %d %q", rec.Code, pageError(rec.Body.String()))
	}
}
