package e2e

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
	"github.com/stepup-dev/stepup/e2e/internal/harness"
)

// Addresses used throughout: 192.168.1.140 is inside the embedded
// default's corporate network (and inside the Auth0 seed's 192.168.1.134/26
// example); 203.0.113.7 and 198.51.100.9 are documentation addresses that no
// corporate network contains.
const (
	corpIP     = "192.168.1.140"
	extranetIP = "203.0.113.7"
	loginURL   = "https://idp.example.com/login?return_to={url}"
)

// aliceHeaders are the identity headers the upstream gets for Alice on the
// corporate network without MFA.
var aliceHeaders = map[string]string{
	"x-stepup-user":    "auth0|alice",
	"x-stepup-email":   "alice@corp.example",
	"x-stepup-mfa":     "none",
	"x-stepup-network": "corporate",
}

// want describes the outcome of one Check as Envoy applies it.
type want struct {
	// status: 200 allowed, else the denied HTTP status.
	status int
	// upstream: for allowed checks, the x-stepup-* headers the upstream
	// receives (nil: not checked).
	upstream map[string]string
	// mfaStep: the denial redirects (302) or points (401) to the MFA step
	// on the request's own scheme and authority.
	mfaStep bool
	// login: the 302 goes to the login URL with the original URL in
	// return_to.
	login bool
	// wwwAuth is a substring the WWW-Authenticate header must contain.
	wwwAuth string
}

func verify(t *testing.T, r *envoyreq.Request, req *authv3.CheckRequest, resp *authv3.CheckResponse, w want) {
	t.Helper()
	if got := httpStatus(resp); got != w.status {
		t.Fatalf("HTTP status %d, want %d\nresponse: %v", got, w.status, resp)
	}
	if allowed(resp) {
		if w.upstream != nil {
			if diff := cmp.Diff(w.upstream, stepupHeaders(upstreamHeaders(req, resp))); diff != "" {
				t.Errorf("x-stepup-* headers the upstream receives (-want +got):\n%s\nresponse: %v", diff, resp)
			}
		}
		return
	}
	locs := deniedHeader(resp, "location")
	switch {
	case w.status == http.StatusFound && len(locs) != 1:
		t.Errorf("302 with %d location headers, want 1: %v", len(locs), resp)
	case w.status != http.StatusFound && len(locs) != 0:
		t.Errorf("%d with a location header %q", w.status, locs)
	}
	target := strings.Join(locs, "")
	if w.status == http.StatusUnauthorized && w.mfaStep {
		// API clients learn where the MFA step is from a header and the
		// JSON body instead of a redirect.
		target = strings.Join(deniedHeader(resp, "x-stepup-location"), "")
	}
	if w.mfaStep {
		u, err := url.Parse(target)
		if err != nil || u.Scheme != r.Scheme || u.Host != r.Authority || u.Path != "/.stepup/mfa" {
			t.Errorf("step-up target %q, want %s://%s/.stepup/mfa[?...] (the MFA step on the same host)", target, r.Scheme, r.Authority)
		}
	}
	if w.login {
		u, err := url.Parse(target)
		wantReturn := r.Scheme + "://" + r.Authority + r.Path
		if err != nil || !strings.HasPrefix(target, "https://idp.example.com/login?") || u.Query().Get("return_to") != wantReturn {
			t.Errorf("login redirect %q, want https://idp.example.com/login?return_to=%s", target, url.QueryEscape(wantReturn))
		}
	}
	if w.status == http.StatusFound {
		if cc := deniedHeader(resp, "cache-control"); len(cc) != 1 || !strings.Contains(cc[0], "no-store") {
			t.Errorf("302 cache-control %q, want no-store (a redirect to a login or MFA step must not be cached)", cc)
		}
	}
	if w.wwwAuth != "" {
		if got := strings.Join(deniedHeader(resp, "www-authenticate"), "\n"); !strings.Contains(got, w.wwwAuth) {
			t.Errorf("www-authenticate %q, want it to contain %q", got, w.wwwAuth)
		}
	}
}

func withPath(r *envoyreq.Request, p string) *envoyreq.Request {
	c := r.Clone()
	c.Path = p
	return c
}

func withoutIdentity(r *envoyreq.Request) *envoyreq.Request {
	c := r.Clone()
	c.Claims = nil
	return c
}

func spoofXFF(r *envoyreq.Request, xff string) *envoyreq.Request {
	c := r.Clone()
	c.ClientXFF = xff
	return c
}

// TestGRPCCheck drives the Envoy ext_authz gRPC service of the real binary
// with CheckRequests shaped as Envoy sends them (docs/envoy.md#example-checkrequest).
func TestGRPCCheck(t *testing.T) {
	t.Parallel()
	srv := startStepup(t, serverConfig{LoginURL: loginURL})
	client := authv3.NewAuthorizationClient(srv.Dial(t))

	notEdge := spoofXFF(envoyreq.Browser(extranetIP), "10.1.2.3")
	notEdge.Edge = false
	withPort := envoyreq.Browser(extranetIP)
	withPort.Authority = "app.corp.example:8443"
	noSub := envoyreq.API(corpIP)
	noSub.Claims = map[string]any{"email": "x@corp.example", "iss": "https://idp.example.com/"}

	stepUp302 := want{status: 302, mfaStep: true}
	stepUp401 := want{status: 401, mfaStep: true, wwwAuth: `error="insufficient_user_authentication"`}
	tests := []struct {
		name string
		req  *envoyreq.Request
		want want
	}{
		{"corporate IP with identity is allowed with identity headers", envoyreq.Browser(corpIP), want{status: 200, upstream: aliceHeaders}},
		{"corporate API client is allowed too", envoyreq.API(corpIP), want{status: 200, upstream: aliceHeaders}},
		{"corporate IPv6 (fc00::/7)", envoyreq.Browser("fd00::17"), want{status: 200, upstream: aliceHeaders}},
		{"IPv4-mapped IPv6 corporate peer is unmapped", envoyreq.Browser("::ffff:" + corpIP), want{status: 200, upstream: aliceHeaders}},
		{"HTTP/2 request", func() *envoyreq.Request { r := envoyreq.Browser(corpIP); r.Protocol = "HTTP/2"; return r }(), want{status: 200, upstream: aliceHeaders}},

		{"extranet browser is sent to the MFA step with a 302", envoyreq.Browser(extranetIP), stepUp302},
		{"the MFA step keeps the authority's port", withPort, stepUp302},
		{"extranet IPv6", envoyreq.Browser("2001:db8::7"), stepUp302},
		{"extranet API client gets 401 insufficient_user_authentication", envoyreq.API(extranetIP), stepUp401},
		{"XMLHttpRequest is an API client", envoyreq.Browser(extranetIP).With("x-requested-with", "XMLHttpRequest"), stepUp401},
		{"fetch() from a page is an API client", envoyreq.Browser(extranetIP).With("sec-fetch-mode", "cors"), stepUp401},

		{"no identity, browser: 302 to the login URL", withoutIdentity(envoyreq.Browser(corpIP)), want{status: 302, login: true}},
		{"no identity from the extranet: login first, not MFA", withoutIdentity(envoyreq.Browser(extranetIP)), want{status: 302, login: true}},
		{"no identity, API client: 401", withoutIdentity(envoyreq.API(corpIP)), want{status: 401, wwwAuth: "Bearer"}},
		{"jwt_authn payload without sub: 401", noSub, want{status: 401, wwwAuth: "Bearer"}},

		// docs/envoy.md#client-address: the left-most x-forwarded-for entry is whatever the
		// client wrote; only the peer (x-envoy-external-address) counts.
		{"client-spoofed x-forwarded-for 10.1.2.3 from an extranet peer is not corporate", spoofXFF(envoyreq.Browser(extranetIP), "10.1.2.3"), stepUp302},
		{"client-spoofed x-forwarded-for with spaces and a corporate chain", spoofXFF(envoyreq.Browser(extranetIP), "192.168.1.140, 10.0.0.1"), stepUp302},
		{"client-spoofed x-forwarded-for, API client", spoofXFF(envoyreq.API(extranetIP), "10.1.2.3"), stepUp401},
		{"client-spoofed x-forwarded-for without x-envoy-external-address", notEdge, stepUp302},
		{"client-spoofed x-real-ip and forwarded headers", envoyreq.Browser(extranetIP).With("x-real-ip", "10.1.2.3").With("forwarded", "for=10.1.2.3").With("true-client-ip", "10.1.2.3"), stepUp302},

		// The MFA step itself must never be stepped up (the browser would
		// loop), but only paths that really are under the prefix.
		{"the MFA step's own path is not stepped up", withPath(envoyreq.Browser(extranetIP), "/.stepup/mfa?state=abc"), want{status: 200}},
		{"dot segments out of the MFA prefix are not exempt", withPath(envoyreq.Browser(extranetIP), "/.stepup/../payroll/report"), notAllowed},
		{"encoded dot segments out of the MFA prefix are not exempt", withPath(envoyreq.Browser(extranetIP), "/.stepup/%2e%2e/payroll/report"), notAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req.MustProto()
			resp := mustCheck(t, client, req)
			if tc.want.status == notAllowedStatus {
				if allowed(resp) {
					t.Fatalf("allowed (%v); want a step-up or a denial: a path that leaves the MFA prefix after normalization reaches the application", resp.GetDynamicMetadata())
				}
				return
			}
			verify(t, tc.req, req, resp, tc.want)
		})
	}

	t.Run("without login_url a browser without identity gets 401", func(t *testing.T) {
		t.Parallel()
		plain := startStepup(t, serverConfig{})
		c := authv3.NewAuthorizationClient(plain.Dial(t))
		r := withoutIdentity(envoyreq.Browser(corpIP))
		req := r.MustProto()
		verify(t, r, req, mustCheck(t, c, req), want{status: 401, wwwAuth: "Bearer"})
	})
}

// notAllowed marks cases whose only requirement is that the request does
// not reach the upstream (step-up or denial are both acceptable).
const notAllowedStatus = -1

var notAllowed = want{status: notAllowedStatus}

// TestGRPCAllowedIdentityHeaders checks what reaches the upstream on an
// allow when the client sent its own copies of stepup's headers.
func TestGRPCAllowedIdentityHeaders(t *testing.T) {
	t.Parallel()
	srv := startStepup(t, serverConfig{})
	client := authv3.NewAuthorizationClient(srv.Dial(t))

	spoofed := envoyreq.Browser(corpIP).
		With("x-stepup-user", "mallory").
		With("x-stepup-email", "ceo@corp.example").
		With("x-stepup-mfa", "webauthn").
		With("x-stepup-network", "corporate").
		With("x-stepup-claim-role", "admin").
		With("x-stepup-assertion", "forged")
	noEmail := spoofed.Clone()
	delete(noEmail.Claims, "email")

	tests := []struct {
		name string
		req  *envoyreq.Request
		want map[string]string
	}{
		{"spoofed identity headers are overwritten or removed", spoofed, aliceHeaders},
		{"a user without email: the spoofed email does not survive", noEmail, map[string]string{
			"x-stepup-user": "auth0|alice", "x-stepup-mfa": "none", "x-stepup-network": "corporate",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req.MustProto()
			resp := mustCheck(t, client, req)
			if !allowed(resp) {
				t.Fatalf("denied: %v", resp)
			}
			got := upstreamHeaders(req, resp)
			if diff := cmp.Diff(tc.want, stepupHeaders(got)); diff != "" {
				t.Errorf("x-stepup-* headers the upstream receives (-want +got):\n%s", diff)
			}
			set := map[string]bool{}
			for _, h := range resp.GetOkResponse().GetHeaders() {
				set[strings.ToLower(h.GetHeader().GetKey())] = true
			}
			for _, k := range resp.GetOkResponse().GetHeadersToRemove() {
				if set[strings.ToLower(k)] {
					t.Errorf("%s is both set and in headers_to_remove: Envoy removes it after setting it (docs/envoy.md#headers-on-allow)", k)
				}
			}
		})
	}
}

// TestGRPCMalformedRequests sends requests Envoy would never send, or that
// exceed stepup's limits: each is a successful RPC denying with 400 and a
// reason, and the server keeps answering good requests.
func TestGRPCMalformedRequests(t *testing.T) {
	t.Parallel()
	srv := startStepup(t, serverConfig{})
	client := authv3.NewAuthorizationClient(srv.Dial(t))
	good := envoyreq.Browser(corpIP).MustProto()

	mod := func(f func(*envoyreq.Request)) *authv3.CheckRequest {
		r := envoyreq.Browser(corpIP)
		f(r)
		return r.MustProto()
	}
	protoMod := func(f func(*authv3.CheckRequest)) *authv3.CheckRequest {
		r := envoyreq.Browser(corpIP).MustProto()
		f(r)
		return r
	}
	manyHeaders := envoyreq.Browser(corpIP)
	for i := range 100 {
		manyHeaders.Headers["x-filler-"+strings.Repeat("a", 3)+string(rune('a'+i%26))+string(rune('a'+i/26))] = strings.Repeat("v", 1000)
	}

	tests := []struct {
		name string
		req  *authv3.CheckRequest
		// reason is a substring the denial body must contain: the client
		// and the operator learn what was wrong.
		reason string
	}{
		{"empty CheckRequest", &authv3.CheckRequest{}, "attributes"},
		{"attributes without request", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, "attributes"},
		{"request without http", protoMod(func(r *authv3.CheckRequest) { r.Attributes.Request.Http = nil }), "attributes"},
		{"no source address", protoMod(func(r *authv3.CheckRequest) {
			r.Attributes.Source = nil
			delete(r.Attributes.Request.Http.Headers, "x-envoy-external-address")
		}), "address"},
		{"garbage source IP", mod(func(r *envoyreq.Request) { r.Peer = "not-an-ip"; r.Edge = false }), "address"},
		{"garbage x-envoy-external-address", protoMod(func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.Headers["x-envoy-external-address"] = "999.1.1.1"
		}), "x-envoy-external-address"},
		{"no host", mod(func(r *envoyreq.Request) { r.Authority = "" }), "host"},
		{"host with a path in it", mod(func(r *envoyreq.Request) { r.Authority = "evil.example/x" }), "host"},
		{"no method", mod(func(r *envoyreq.Request) { r.Method = "" }), "method"},
		{"relative path", mod(func(r *envoyreq.Request) { r.Path = "payroll/report" }), "path"},
		{"unknown scheme", mod(func(r *envoyreq.Request) { r.Scheme = "gopher" }), "scheme"},
		{"jwt_authn payload is not an object", protoMod(func(r *authv3.CheckRequest) {
			r.Attributes.MetadataContext.FilterMetadata[envoyreq.JWTAuthnNamespace].Fields[envoyreq.JWTPayloadKey] = structpb.NewStringValue("eyJ...")
		}), "metadata"},
		{"a 1 MB header", envoyreq.Browser(corpIP).With("x-big", strings.Repeat("a", 1<<20)).MustProto(), "x-big"},
		{"a 1 MB path", mod(func(r *envoyreq.Request) { r.Path = "/" + strings.Repeat("a", 1<<20) }), "path"},
		{"100 KB of headers", manyHeaders.MustProto(), "headers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := mustCheck(t, client, tc.req)
			if allowed(resp) {
				t.Fatalf("a malformed request was allowed: %v", resp.GetOkResponse())
			}
			if got := httpStatus(resp); got != http.StatusBadRequest {
				t.Errorf("HTTP status %d, want 400", got)
			}
			if body := resp.GetDeniedResponse().GetBody(); !strings.Contains(body, tc.reason) {
				t.Errorf("denial body %q does not say what is wrong (want it to mention %q)", body, tc.reason)
			}
			if !allowed(mustCheck(t, client, good)) {
				t.Fatal("a good Check right after the malformed one was not allowed")
			}
		})
	}

	t.Run("a message over max_recv_bytes is denied with 413 and the server keeps serving", func(t *testing.T) {
		// A gRPC error here would be an allow under failure_mode_allow.
		huge := envoyreq.Browser(corpIP).With("x-huge", strings.Repeat("a", 5<<20)).MustProto()
		resp := mustCheck(t, client, huge)
		if allowed(resp) {
			t.Fatal("a 5 MiB request was allowed")
		}
		if got := httpStatus(resp); got != http.StatusRequestEntityTooLarge {
			t.Errorf("5 MiB request: HTTP status %d, want 413", got)
		}
		if !allowed(mustCheck(t, client, good)) {
			t.Fatal("a good Check after the oversized one was not allowed")
		}
	})
}

// TestGRPCHealth checks grpc.health.v1 for the services Envoy's health
// checks and Kubernetes probe.
func TestGRPCHealth(t *testing.T) {
	t.Parallel()
	srv := startStepup(t, serverConfig{})
	hc := healthpb.NewHealthClient(srv.Dial(t))
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		cancel()
		if err != nil {
			t.Errorf("health %q: %v", svc, err)
			continue
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, want SERVING", svc, resp.GetStatus())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("health of an unknown service: %v, want NOT_FOUND", err)
	}
}

// TestGracefulShutdown follows docs/envoy.md#health-checks-and-draining: on SIGTERM stepup reports
// NOT_SERVING, drains for server.drain_delay while /readyz says so, then
// stops and exits 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			srv := startStepup(t, serverConfig{DrainDelay: "1s"})
			conn := srv.Dial(t)
			hc := healthpb.NewHealthClient(conn)
			client := authv3.NewAuthorizationClient(conn)
			if !allowed(mustCheck(t, client, envoyreq.Browser(corpIP).MustProto())) {
				t.Fatal("a corporate Check was not allowed")
			}

			// Watch is a stream: the NOT_SERVING update arrives however
			// short the drain is, without polling against the clock.
			wctx, wcancel := context.WithTimeout(context.Background(), harness.StartTimeout)
			defer wcancel()
			watch, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
			if err != nil {
				t.Fatal(err)
			}
			first, err := watch.Recv()
			if err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("first health update %v, %v; want SERVING", first.GetStatus(), err)
			}
			if err := srv.Signal(sig); err != nil {
				t.Fatal(err)
			}
			next, err := watch.Recv()
			if err != nil || next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("health update after %v: %v, %v; want NOT_SERVING", sig, next.GetStatus(), err)
			}
			// Let the server finish: an open Watch would hold GracefulStop.
			wcancel()

			// During the drain /readyz says so; once the drain is over the
			// listener is gone, which is fine too.
			hclient := &http.Client{Timeout: 10 * time.Second}
			if resp, err := hclient.Get(srv.HTTPURL("/readyz")); err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("/readyz while draining: %d, want 503", resp.StatusCode)
				}
			}
			if code := srv.Stop(t); code != 0 {
				t.Errorf("exit status %d after %v, want 0", code, sig)
			}
		})
	}
}

// TestServeWithoutFlags runs `stepup serve` exactly as the README's first
// command does: embedded defaults, fixed ports 9191/9192, data in the
// working directory.
func TestServeWithoutFlags(t *testing.T) {
	const grpcAddr, httpAddr = "127.0.0.1:9191", "127.0.0.1:9192"
	if err := harness.PortsFree(grpcAddr, httpAddr); err != nil {
		if harness.InCI() {
			t.Fatalf("the embedded default's ports are taken (%v); CI=true, so this is a failure", err)
		}
		t.Skipf("the embedded default's ports 9191/9192 are taken (%v): skipping the no-flags test", err)
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := harness.TryStartStepup(t, stepupBin, harness.StepupOptions{Dir: dir})
	if err != nil {
		if !harness.InCI() && strings.Contains(err.Error(), "address already in use") {
			t.Skipf("ports 9191/9192 were taken while starting: %v", err)
		}
		t.Fatal(err)
	}
	if srv.GRPCAddr != grpcAddr || srv.HTTPAddr != httpAddr {
		t.Errorf("listens on gRPC %s, HTTP %s; want %s and %s", srv.GRPCAddr, srv.HTTPAddr, grpcAddr, httpAddr)
	}
	// It prints what it listens on and where its data lives.
	out := srv.Stdout()
	for _, s := range []string{grpcAddr, httpAddr, dir} {
		if !strings.Contains(out, s) {
			t.Errorf("the start-up banner does not mention %s:\n%s", s, out)
		}
	}
	if got, err := filepath.EvalSymlinks(srv.DataDir); err != nil || !strings.HasPrefix(got, dir) {
		t.Errorf("data_dir %s is not under the working directory %s", srv.DataDir, dir)
	}

	conn := srv.Dial(t)
	if err := harness.WaitServing(context.Background(), conn, "envoy.service.auth.v3.Authorization"); err != nil {
		t.Fatal(err)
	}
	client := authv3.NewAuthorizationClient(conn)
	for _, tc := range []struct {
		name string
		req  *envoyreq.Request
		want want
	}{
		{"corporate", envoyreq.Browser(corpIP), want{status: 200, upstream: aliceHeaders}},
		{"extranet browser", envoyreq.Browser(extranetIP), want{status: 302, mfaStep: true}},
		{"extranet API", envoyreq.API(extranetIP), want{status: 401, mfaStep: true, wwwAuth: "insufficient_user_authentication"}},
		{"spoofed XFF", spoofXFF(envoyreq.Browser(extranetIP), "10.1.2.3"), want{status: 302, mfaStep: true}},
		{"no identity", withoutIdentity(envoyreq.API(corpIP)), want{status: 401}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req.MustProto()
			verify(t, tc.req, req, mustCheck(t, client, req), tc.want)
		})
	}
}

// TestDecisionLog checks the JSON decision log: one line per decision,
// correlated by x-request-id and Envoy's stream id (docs/envoy.md#dynamic-metadata-and-access-logs).
func TestDecisionLog(t *testing.T) {
	t.Parallel()
	srv := startStepup(t, serverConfig{})
	client := authv3.NewAuthorizationClient(srv.Dial(t))
	r := envoyreq.Browser(extranetIP)
	r.RequestID = "e2e-decision-log-1"
	r.StreamID = "424242"
	if resp := mustCheck(t, client, r.MustProto()); allowed(resp) {
		t.Fatal("extranet request allowed")
	}
	srv.Stop(t)
	var found bool
	for _, l := range srv.LogLines() {
		if raw, ok := l["unparsed"]; ok {
			t.Errorf("stderr line is not JSON: %v", raw)
			continue
		}
		if l["request_id"] == r.RequestID {
			found = true
			if l["stream_id"] != r.StreamID {
				t.Errorf("decision log line has stream_id %v, want %s: %v", l["stream_id"], r.StreamID, l)
			}
		}
	}
	if !found {
		t.Errorf("no log line carries request_id %s:\n%s", r.RequestID, srv.Stderr())
	}
}
