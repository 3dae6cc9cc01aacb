package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// envoyCheckDeadline is Envoy's default ext_authz timeout, sent to stepup
// as the Check's gRPC deadline.
const envoyCheckDeadline = 200 * time.Millisecond

// TestFaultStoreCheck times Checks that need the store (an extranet
// browser with an MFA session cookie) as Envoy sends them, under its
// default 200 ms deadline, while Redis is hung (SIGSTOP) and then killed,
// with stepup's default Redis settings. Every Check must get its 503
// store_unavailable denial back before the deadline: a Check that runs
// out of time is a gRPC error to Envoy, which then applies
// failure_mode_allow. Nothing may be allowed.
func TestFaultStoreCheck(t *testing.T) {
	redis := redistest.New(t)
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := startStepup(t, serverConfig{Extra: sessionsYAML(key,
		fmt.Sprintf("    type: redis\n    redis:\n      addrs: [%q]\n", redis.Addr()))})
	store, err := redisstore.New(redisstore.Options{Addrs: []string{redis.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, err := session.NewManager(session.Config{Keys: []session.Key{key}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	client := authv3.NewAuthorizationClient(srv.Dial(t))
	// A fresh MFA session per phase, never checked while Redis was up, so
	// that no replica can have it cached.
	cookie := func() string {
		mfa, _, err := m.IssueMFASession(context.Background(), "auth0|alice", "", "otp", "")
		if err != nil {
			t.Fatal(err)
		}
		return mfa.Name + "=" + mfa.Value
	}
	// Warm up the connection and check the session is honoured.
	if resp := mustCheck(t, client, envoyreq.Browser(extranetIP).With("cookie", cookie()).MustProto()); !allowed(resp) {
		t.Fatalf("with Redis up, a valid MFA session was not allowed: %v", resp)
	}

	const n = 20
	phase := func(name, cookie string) {
		t.Helper()
		req := envoyreq.Browser(extranetIP).With("cookie", cookie).MustProto()
		var times []time.Duration
		answered, errs := 0, 0
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), envoyCheckDeadline)
			start := time.Now()
			resp, err := client.Check(ctx, req)
			times = append(times, time.Since(start))
			cancel()
			switch {
			case err != nil:
				errs++
			case allowed(resp):
				t.Fatalf("%s: a Check was allowed with the store down: %v", name, resp)
			case httpStatus(resp) == http.StatusServiceUnavailable:
				answered++
			default:
				t.Errorf("%s: status %d, reason %q, want 503 store_unavailable", name, httpStatus(resp),
					resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue())
			}
		}
		slices.Sort(times)
		t.Logf("FAULT check, %s: %d Checks under a %v deadline: %d answered 503, %d gRPC errors (deadline); median %v, max %v",
			name, n, envoyCheckDeadline, answered, errs, times[n/2].Round(time.Microsecond), times[n-1].Round(time.Millisecond))
		if answered != n {
			t.Errorf("%s: %d of %d Checks got their 503 before the deadline, want all", name, answered, n)
		}
	}
	hung, killed := cookie(), cookie()
	redis.Pause()
	phase("redis hung (SIGSTOP)", hung)
	redis.Resume()
	redis.Kill()
	phase("redis killed (refused)", killed)
}
