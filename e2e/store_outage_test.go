package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/redisstore"
	"github.com/stepup-dev/stepup/session/redisstore/redistest"
)

// TestStoreOutage is issue 4's "what the store being down means": with
// Redis gone, a check that needs the store (an MFA session cookie stepup
// has to look up) fails closed with 503 store_unavailable, an extranet
// browser is never let through, and a corporate check (no store needed)
// still passes; gRPC health, /readyz and stepup_session_store_up show the
// outage; and when Redis is back the same process recovers without a
// restart.
func TestStoreOutage(t *testing.T) {
	t.Parallel()
	redis := redistest.New(t)
	key, err := session.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := startStepup(t, serverConfig{Extra: sessionsYAML(key,
		fmt.Sprintf("    type: redis\n    redis:\n      addrs: [%q]\n      timeout: 300ms\n", redis.Addr()))})
	// An MFA session issued through the session API on the same Redis and
	// key, never shown to stepup before the outage (so nothing of it can
	// be cached).
	store, err := redisstore.New(redisstore.Options{Addrs: []string{redis.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m, err := session.NewManager(session.Config{Keys: []session.Key{key}, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	mfa, _, err := m.IssueMFASession(context.Background(), session.Grant{User: "auth0|alice", SID: "", Realm: testRealm, Factors: []string{"otp"}, UserAgent: ""})
	if err != nil {
		t.Fatal(err)
	}
	mfaCookie := mfa.Name + "=" + mfa.Value

	conn := srv.Dial(t)
	client := authv3.NewAuthorizationClient(conn)
	hc := healthpb.NewHealthClient(conn)

	type state struct {
		health          healthpb.HealthCheckResponse_ServingStatus
		readyz          int
		storeUp         string // the gauge's sample value
		extranetAllowed bool   // an extranet browser without cookies
		cookie          int    // HTTP status of an extranet check with the MFA session
		reason          string // its reason
	}
	// observe looks once; withCookie sends the MFA session cookie, which
	// must then not be used while the store is up (it would be cached).
	observe := func(withCookie bool) state {
		var s state
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		if r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: authv3.Authorization_ServiceDesc.ServiceName}); err == nil {
			s.health = r.GetStatus()
		}
		if res, err := http.Get(srv.HTTPURL("/readyz")); err == nil {
			s.readyz = res.StatusCode
			res.Body.Close()
		}
		if res, err := http.Get(srv.HTTPURL("/metrics")); err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			for _, l := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(l, "stepup_session_store_up "); ok {
					s.storeUp = v
				}
			}
		}
		s.extranetAllowed = allowed(mustCheck(t, client, envoyreq.Browser(extranetIP).MustProto()))
		if withCookie {
			resp := mustCheck(t, client, envoyreq.Browser(extranetIP).With("cookie", mfaCookie).MustProto())
			s.cookie = httpStatus(resp)
			s.reason = resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
		}
		if !allowed(mustCheck(t, client, envoyreq.Browser(corpIP).MustProto())) {
			t.Error("a corporate check, which needs no store, was not allowed")
		}
		return s
	}
	up := state{health: healthpb.HealthCheckResponse_SERVING, readyz: http.StatusOK, storeUp: "1"}
	down := state{health: healthpb.HealthCheckResponse_NOT_SERVING, readyz: http.StatusServiceUnavailable, storeUp: "0",
		cookie: http.StatusServiceUnavailable, reason: "store_unavailable"}
	// Restarted empty: the session is gone with the data.
	back := state{health: healthpb.HealthCheckResponse_SERVING, readyz: http.StatusOK, storeUp: "1",
		cookie: http.StatusFound, reason: "mfa_required"}
	// The monitor pings every 2 s; allow a few rounds.
	await := func(name string, want state) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			got := observe(want.cookie != 0)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %+v, want %+v", name, got, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	await("Redis up", up)
	redis.Stop()
	await("Redis down", down)
	redis.Restart()
	await("Redis back", back)
}
