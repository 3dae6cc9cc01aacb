package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
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
		mfa, _, err := m.IssueMFASession(context.Background(), session.Grant{User: "auth0|alice", Realm: testRealm, Factors: []string{"otp"}})
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

// unsafeSettingMsg is the message of stepup's start-up warning about a
// Redis setting that can lose sessions.
const unsafeSettingMsg = "redis session store: unsafe redis setting"

// TestRedisSettingsWarning starts stepup on a Redis that keeps nothing on
// disk and evicts keys under memory pressure: a restart would lose every
// session and an eviction could drop rate-limit counters. stepup must say
// so at start-up, in its JSON log, once per unsafe setting; on a Redis
// with AOF and noeviction it must not.
func TestRedisSettingsWarning(t *testing.T) {
	t.Parallel()
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// warnings starts stepup on addr and returns the settings its start-up
	// log warned about, waiting until the log shows the check ran.
	warnings := func(addr string) []string {
		t.Helper()
		srv := startStepup(t, serverConfig{Extra: sessionsYAML(key,
			fmt.Sprintf("    type: redis\n    redis:\n      addrs: [%q]\n", addr))})
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(srv.Stderr(), "redis session store: checked redis settings") {
			if time.Now().After(deadline) {
				t.Fatalf("stepup did not log that it checked the Redis settings:\n%s", srv.Stderr())
			}
			time.Sleep(20 * time.Millisecond)
		}
		var out []string
		for _, line := range strings.Split(srv.Stderr(), "\n") {
			var rec struct{ Level, Msg, Setting, Value string }
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != unsafeSettingMsg {
				continue
			}
			if rec.Level != "WARN" {
				t.Errorf("level %q for %q, want WARN", rec.Level, line)
			}
			out = append(out, rec.Setting+"="+rec.Value)
		}
		slices.Sort(out)
		return out
	}
	unsafe := redistest.NewWithArgs(t, "--maxmemory-policy", "allkeys-lru")
	got := warnings(unsafe.Addr())
	t.Logf("warnings on an unsafe Redis: %q", got)
	want := []string{`maxmemory-policy=allkeys-lru`, `persistence=appendonly no, save ""`}
	if !slices.Equal(got, want) {
		t.Errorf("unsafe Redis: warnings %q, want %q", got, want)
	}
	safe := redistest.NewWithArgs(t, "--appendonly", "yes")
	if got := warnings(safe.Addr()); len(got) != 0 {
		t.Errorf("Redis with AOF and noeviction: warnings %q, want none", got)
	}
}
