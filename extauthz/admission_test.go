package extauthz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// blockingPolicy holds every evaluation until release is closed.
type blockingPolicy struct {
	inner   Policy
	entered chan struct{}
	release chan struct{}
}

func (p *blockingPolicy) Evaluate(ctx context.Context, in *PolicyInput) PolicyResult {
	p.entered <- struct{}{}
	select {
	case <-p.release:
	case <-ctx.Done():
	}
	return p.inner.Evaluate(ctx, in)
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func counterVal(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestAdmissionControl: with the bound at N and N Checks held by the
// policy, the next Check, over gRPC or HTTP, is denied at once with 503
// and reason "overloaded" (a decision, not an error); once the held ones
// finish, Checks are decided again.
func TestAdmissionControl(t *testing.T) {
	const bound = 3
	pol := &blockingPolicy{entered: make(chan struct{}, bound), release: make(chan struct{})}
	m := NewMetrics(prometheus.NewRegistry())
	s := newTestServer(t, func(o *Options) {
		pol.inner = o.Policy
		o.Policy = pol
		o.MaxInFlight = bound
		o.Metrics = m
		o.Identity.Header = "x-user"
		o.Identity.HeaderPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	client := bufconnClient(t, s)
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	forwardAuth := func() *http.Response {
		req, err := http.NewRequest(http.MethodGet, srv.URL+ForwardAuthPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/report")
		req.Header.Set("X-Forwarded-Host", "app.corp.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-For", "192.168.1.140")
		req.Header.Set("X-User", "alice")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	// Fill the bound: two gRPC Checks and one HTTP check, all held.
	var held sync.WaitGroup
	grpcDecisions := make(chan int32, bound)
	for range bound - 1 {
		held.Go(func() {
			resp, err := client.Check(context.Background(), checkReq("192.168.1.140"))
			if err != nil {
				t.Error(err)
				return
			}
			grpcDecisions <- resp.GetStatus().GetCode()
		})
	}
	held.Go(func() { forwardAuth() })
	for range bound {
		select {
		case <-pol.entered:
		case <-time.After(30 * time.Second):
			t.Fatal("the held checks never reached the policy")
		}
	}
	if got := gaugeValue(t, m.inFlight); got != bound {
		t.Errorf("in-flight gauge = %v, want %d", got, bound)
	}

	// Over the bound: answered while the others are still held.
	resp, err := client.Check(context.Background(), checkReq("192.168.1.140"))
	if err != nil {
		t.Fatalf("Check over the bound = %v, want a denial", err)
	}
	if resp.GetOkResponse() != nil || resp.GetStatus().GetCode() == 0 {
		t.Fatalf("Check over the bound allowed: %v", resp)
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 503 {
		t.Errorf("denied with %d, want 503", got)
	}
	if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != "overloaded" {
		t.Errorf("reason %q, want overloaded", got)
	}
	if got := forwardAuth().StatusCode; got != http.StatusServiceUnavailable {
		t.Errorf("forward-auth check over the bound: %d, want 503", got)
	}
	if got := counterVal(t, m.rejected.WithLabelValues(string(ModeGRPC))); got != 1 {
		t.Errorf("rejected{grpc} = %v, want 1", got)
	}
	if got := counterVal(t, m.rejected.WithLabelValues(string(ModeForwardAuth))); got != 1 {
		t.Errorf("rejected{forward_auth} = %v, want 1", got)
	}

	// Released, the held Checks are decided on their merits, and new ones
	// are admitted again.
	close(pol.release)
	held.Wait()
	close(grpcDecisions)
	for code := range grpcDecisions {
		if code != 0 {
			t.Errorf("held corporate Check decided %d, want OK", code)
		}
	}
	resp, err = client.Check(context.Background(), checkReq("192.168.1.140"))
	if err != nil || resp.GetOkResponse() == nil {
		t.Errorf("Check after the release = %v, %v; want allowed", resp, err)
	}
	if got := gaugeValue(t, m.inFlight); got != 0 {
		t.Errorf("in-flight gauge after = %v, want 0", got)
	}
}

func TestDefaultMaxInFlight(t *testing.T) {
	if n := DefaultMaxInFlight(); n < 64 {
		t.Errorf("DefaultMaxInFlight = %d, want at least 64", n)
	}
}
