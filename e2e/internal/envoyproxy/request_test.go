package envoyproxy

import (
	"context"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/stepup-dev/stepup/e2e/internal/idp"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestCheckRequestHeaders: the header map of the CheckRequest is what the
// HCM made of the client's request (docs/envoy.md#client-address, docs/envoy.md#headers-and-cookies) for each XFF
// setting.
func TestCheckRequestHeaders(t *testing.T) {
	t.Parallel()
	// What every case's client sends.
	clientHeaders := http.Header{
		"Host":                     {"app.corp.example:8443"},
		"Cookie":                   {"a=1", "b=2"}, // two Cookie lines
		"X-Forwarded-For":          {"198.51.100.1, 10.0.0.1"},
		"X-Request-Id":             {"client-chosen-id"},
		"X-Envoy-Internal":         {"true"},
		"X-Envoy-External-Address": {"10.9.9.9"},
		"X-Envoy-Debug":            {"1"},
		"Accept":                   {"text/html"},
	}
	base := map[string]string{
		":authority":        "app.corp.example:8443",
		":method":           "GET",
		":path":             "/payroll/report?month=11&to=%2Fhome",
		":scheme":           "http",
		"accept":            "text/html",
		"cookie":            "a=1,b=2",
		"user-agent":        "envoyproxy-test",
		"x-forwarded-proto": "http",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		cfg  Config
		want map[string]string
		// keepRequestID: the client's x-request-id survives.
		keepRequestID bool
	}{
		{"edge, no trusted hops: the peer is the client",
			Config{UseRemoteAddress: true},
			with("x-forwarded-for", "198.51.100.1, 10.0.0.1,127.0.0.1", "x-envoy-external-address", "127.0.0.1"), false},
		{"edge, one trusted hop: the rightmost XFF entry as received",
			Config{UseRemoteAddress: true, XFFNumTrustedHops: 1},
			with("x-forwarded-for", "198.51.100.1, 10.0.0.1,127.0.0.1", "x-envoy-external-address", "10.0.0.1"), false},
		{"edge, two trusted hops",
			Config{UseRemoteAddress: true, XFFNumTrustedHops: 2},
			with("x-forwarded-for", "198.51.100.1, 10.0.0.1,127.0.0.1", "x-envoy-external-address", "198.51.100.1"), false},
		{"edge, more trusted hops than entries: the peer",
			Config{UseRemoteAddress: true, XFFNumTrustedHops: 3},
			with("x-forwarded-for", "198.51.100.1, 10.0.0.1,127.0.0.1", "x-envoy-external-address", "127.0.0.1"), false},
		{"edge with Envoy's local address: a loopback peer is replaced by it",
			Config{UseRemoteAddress: true, LocalAddress: netip.MustParseAddr("10.0.0.10")},
			with("x-forwarded-for", "198.51.100.1, 10.0.0.1,10.0.0.10", "x-envoy-external-address", "127.0.0.1"), false},
		{"not at the edge: XFF untouched, the client's x-envoy-external-address and x-request-id pass",
			Config{UseRemoteAddress: false},
			with("x-forwarded-for", "198.51.100.1, 10.0.0.1", "x-envoy-external-address", "10.9.9.9",
				"x-envoy-debug", "1", "x-request-id", "client-chosen-id"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fa := startFakeAuthz(t, allowAll)
			up := startUpstream(t)
			srv := startProxy(t, tc.cfg, fa, up)
			c := newClient(t)
			resp, _ := c.do(t, "GET", srv.URL, "/payroll/report?month=11&to=%2Fhome", clientHeaders, "")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := fa.only(t).GetAttributes().GetRequest().GetHttp().GetHeaders()
			rid := got["x-request-id"]
			if tc.keepRequestID {
				if rid != "client-chosen-id" {
					t.Errorf("x-request-id %q, want the client's", rid)
				}
			} else {
				if !uuidRE.MatchString(rid) {
					t.Errorf("x-request-id %q is not a fresh UUID (Envoy replaces it at the edge)", rid)
				}
				delete(got, "x-request-id")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("check headers (-want +got):\n%s", diff)
			}
			// The upstream sees the same mutations (plus the router's
			// header), and the same x-request-id as the check.
			uh := up.only(t).Header
			if g := uh.Get("X-Request-Id"); g != rid {
				t.Errorf("upstream x-request-id %q differs from the check's", g)
			}
			if g, w := uh.Get("X-Envoy-External-Address"), tc.want["x-envoy-external-address"]; g != w {
				t.Errorf("upstream x-envoy-external-address %q, want %q", g, w)
			}
			if g := uh.Get("X-Envoy-Internal"); g != "" {
				t.Errorf("client's x-envoy-internal reached the upstream: %q", g)
			}
		})
	}
}

// TestCheckRequestAttributes: the other fields of the CheckRequest
// (docs/envoy.md#fields) and the merge of context extensions (docs/envoy.md#per-route-settings).
func TestCheckRequestAttributes(t *testing.T) {
	t.Parallel()
	fa := startFakeAuthz(t, allowAll)
	up := startUpstream(t)
	cfg := Config{
		UseRemoteAddress:       true,
		VhostContextExtensions: map[string]string{"virtual_host": "app", "tier": "gold"},
		Routes: []Route{{Prefix: "/", Upstream: up.url(t),
			ContextExtensions: map[string]string{"app_id": "payroll", "tier": "platinum"}}},
	}
	srv := startProxy(t, cfg, fa, up)
	c := newClient(t)
	c.do(t, "GET", srv.URL, "/payroll/report?month=11", nil, "")
	req := fa.only(t)
	attrs := req.GetAttributes()

	local := netip.MustParseAddrPort(c.localAddr())
	srvAddr := netip.MustParseAddrPort(srv.Listener.Addr().String())
	h := attrs.GetRequest().GetHttp()
	if _, err := strconv.ParseUint(h.GetId(), 10, 64); err != nil {
		t.Errorf("request.http.id %q is not a decimal stream id: %v", h.GetId(), err)
	}
	if h.GetId() == h.GetHeaders()["x-request-id"] {
		t.Error("request.http.id equals x-request-id; it must be the stream id (docs/envoy.md#fields)")
	}
	want := &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: socketAddress(local.Addr().String(), local.Port())},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddress(srvAddr.Addr().String(), srvAddr.Port())},
		Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{
				Id: h.GetId(), Method: "GET", Path: "/payroll/report?month=11",
				Host: srvAddr.String(), Scheme: "http", Protocol: "HTTP/1.1",
				Headers: h.GetHeaders(),
			},
		},
		ContextExtensions: map[string]string{"virtual_host": "app", "tier": "platinum", "app_id": "payroll"},
	}
	got := proto.Clone(attrs).(*authv3.AttributeContext)
	if gt := got.GetRequest().GetTime().AsTime(); !gt.Equal(testNow) {
		t.Errorf("request.time %v, want the stream's start %v", gt, testNow)
	}
	got.Request.Time = nil
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
}

// TestJWTAuthn: jwt_authn with allow_missing and payload_in_metadata
// (docs/envoy.md#claims-from-jwt_authn).
func TestJWTAuthn(t *testing.T) {
	t.Parallel()
	issuer, err := idp.New("https://idp.example.com/", "payroll", "k1")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := idp.New("https://idp.example.com/", "payroll", "k1")
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := issuer.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(p *idp.IdP, mod func(jwt.MapClaims)) string {
		c := p.Claims("auth0|alice", "alice@corp.example", testNow)
		if mod != nil {
			mod(c)
		}
		tok, err := p.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := sign(issuer, nil)
	wantPayload := map[string]any{
		"iss": "https://idp.example.com/", "aud": "payroll", "sub": "auth0|alice",
		"email": "alice@corp.example", "iat": float64(testNow.Unix()), "exp": float64(testNow.Add(time.Hour).Unix()),
	}
	tests := []struct {
		name    string
		forward bool
		header  http.Header
		// status 401 means jwt_authn rejected the request, with body.
		status int
		body   string
		// payload is the metadata; nil means none.
		payload map[string]any
		// authzHeader is whether "authorization" reaches the check.
		authzHeader bool
	}{
		{name: "no token: allow_missing, no metadata", status: 200},
		{name: "cookie", header: http.Header{"Cookie": {"theme=dark; id_token=" + good}}, status: 200, payload: wantPayload},
		{name: "bearer, not forwarded", header: http.Header{"Authorization": {"Bearer " + good}}, status: 200, payload: wantPayload},
		{name: "bearer, forwarded", forward: true, header: http.Header{"Authorization": {"Bearer " + good}}, status: 200, payload: wantPayload, authzHeader: true},
		{name: "expired", header: http.Header{"Cookie": {"id_token=" + sign(issuer, func(c jwt.MapClaims) {
			c["exp"] = testNow.Add(-2 * time.Minute).Unix()
		})}}, status: 401, body: "Jwt is expired"},
		{name: "expired within the 60 s clock skew", header: http.Header{"Cookie": {"id_token=" + sign(issuer, func(c jwt.MapClaims) {
			c["exp"] = testNow.Add(-30 * time.Second).Unix()
		})}}, status: 200, payload: func() map[string]any {
			m := map[string]any{}
			for k, v := range wantPayload {
				m[k] = v
			}
			m["exp"] = float64(testNow.Add(-30 * time.Second).Unix())
			return m
		}()},
		{name: "signed by another key", header: http.Header{"Cookie": {"id_token=" + sign(stranger, nil)}}, status: 401, body: "Jwt verification fails"},
		{name: "wrong audience", header: http.Header{"Authorization": {"Bearer " + sign(issuer, func(c jwt.MapClaims) { c["aud"] = "other" })}}, status: 401, body: "Audiences in Jwt are not allowed"},
		{name: "wrong issuer", header: http.Header{"Authorization": {"Bearer " + sign(issuer, func(c jwt.MapClaims) { c["iss"] = "https://evil/" })}}, status: 401, body: "Jwt issuer is not configured"},
		{name: "garbage", header: http.Header{"Cookie": {"id_token=not-a-jwt"}}, status: 401, body: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fa := startFakeAuthz(t, allowAll)
			up := startUpstream(t)
			srv := startProxy(t, Config{UseRemoteAddress: true, JWTAuthn: &JWTAuthn{
				Issuer: issuer.Issuer, Audiences: []string{"payroll"}, JWKS: jwks,
				FromCookies: []string{"id_token"}, FromBearer: true, Forward: tc.forward,
			}}, fa, up)
			h := tc.header.Clone()
			if h == nil {
				h = http.Header{}
			}
			h.Set("Host", "app.corp.example")
			resp, body := newClient(t).do(t, "GET", srv.URL, "/payroll/report?month=11", h, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			if tc.status == 401 {
				if body != tc.body {
					t.Errorf("body %q, want %q", body, tc.body)
				}
				if g, w := resp.Header.Get("Www-Authenticate"), `Bearer realm="http://app.corp.example/payroll/report", error="invalid_token"`; g != w {
					t.Errorf("www-authenticate %q, want %q", g, w)
				}
				if n := len(fa.calls()); n != 0 {
					t.Errorf("%d checks after jwt_authn rejected the request, want 0", n)
				}
				return
			}
			req := fa.only(t)
			md := req.GetAttributes().GetMetadataContext().GetFilterMetadata()[JWTAuthnNamespace]
			var got map[string]any
			if md != nil {
				got = md.GetFields()["jwt_payload"].GetStructValue().AsMap()
			}
			if diff := cmp.Diff(tc.payload, got); diff != "" {
				t.Errorf("jwt payload (-want +got):\n%s", diff)
			}
			_, hasAuthz := req.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"]
			if hasAuthz != tc.authzHeader {
				t.Errorf("authorization in the check: %v, want %v", hasAuthz, tc.authzHeader)
			}
			if g := up.only(t).Header.Get("Authorization") != ""; g != tc.authzHeader {
				t.Errorf("authorization upstream: %v, want %v", g, tc.authzHeader)
			}
			if c := tc.header.Get("Cookie"); c != "" && up.only(t).Header.Get("Cookie") != c {
				t.Errorf("cookie upstream %q, want it untouched (jwt_authn never removes cookies)", up.only(t).Header.Get("Cookie"))
			}
		})
	}
}

// TestWithRequestBody: with_request_body buffering (docs/envoy.md#request-body).
func TestWithRequestBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		settings BodySettings
		method   string
		body     string
		status   int
		// checkBody is what the check carries; partial its
		// x-envoy-auth-partial-body ("" = header absent).
		checkBody string
		rawBody   bool
		partial   string
	}{
		{"small body", BodySettings{MaxRequestBytes: 8}, "POST", "hello", 200, "hello", false, "false"},
		{"partial", BodySettings{MaxRequestBytes: 3, AllowPartialMessage: true}, "POST", "hello", 200, "hel", false, "true"},
		{"too large without partial: 413 before any check", BodySettings{MaxRequestBytes: 3}, "POST", "hello", 413, "", false, ""},
		{"pack as bytes", BodySettings{MaxRequestBytes: 8, PackAsBytes: true}, "POST", "hello", 200, "hello", true, "false"},
		{"no body: nothing buffered", BodySettings{MaxRequestBytes: 8}, "GET", "", 200, "", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fa := startFakeAuthz(t, allowAll)
			up := startUpstream(t)
			srv := startProxy(t, Config{UseRemoteAddress: true, WithRequestBody: &tc.settings}, fa, up)
			resp, _ := newClient(t).do(t, tc.method, srv.URL, "/submit",
				http.Header{"X-Envoy-Auth-Partial-Body": {"forged"}}, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != 200 {
				if len(fa.calls()) != 0 || len(up.requests()) != 0 {
					t.Errorf("a rejected body reached the check or the upstream")
				}
				return
			}
			h := fa.only(t).GetAttributes().GetRequest().GetHttp()
			got := h.GetBody()
			if tc.rawBody {
				got = string(h.GetRawBody())
				if h.GetBody() != "" {
					t.Error("pack_as_bytes also filled body")
				}
			}
			if got != tc.checkBody {
				t.Errorf("check body %q, want %q", got, tc.checkBody)
			}
			if g := h.GetHeaders()["x-envoy-auth-partial-body"]; g != tc.partial {
				t.Errorf("x-envoy-auth-partial-body %q, want %q", g, tc.partial)
			}
			if g := up.only(t).Body; g != tc.body {
				t.Errorf("upstream body %q, want the whole %q", g, tc.body)
			}
		})
	}
}

// TestRoutes: first prefix match wins, no match is a 404 without a check,
// and a route with ext_authz disabled is not checked (docs/envoy.md#per-route-settings).
func TestRoutes(t *testing.T) {
	t.Parallel()
	fa := startFakeAuthz(t, allowAll)
	step, app := startUpstream(t), startUpstream(t)
	srv := startProxy(t, Config{UseRemoteAddress: true, Routes: []Route{
		{Prefix: "/.stepup/", Upstream: step.url(t), DisableExtAuthz: true},
		{Prefix: "/app", Upstream: app.url(t)},
		{Prefix: "/app/hidden", Upstream: step.url(t)}, // shadowed by /app
	}}, fa, nil)
	c := newClient(t)
	tests := []struct {
		path   string
		status int
		checks int
		// where is "step", "app" or "" (nowhere).
		where string
	}{
		{"/nothing", 404, 0, ""},
		{"/", 404, 0, ""},
		{"/.stepup/mfa?state=x", 200, 0, "step"},
		{"/app/report", 200, 1, "app"},
		{"/application", 200, 1, "app"},
		{"/app/hidden/x", 200, 1, "app"},
	}
	for _, tc := range tests {
		before, stepBefore, appBefore := len(fa.calls()), len(step.requests()), len(app.requests())
		resp, body := c.do(t, "GET", srv.URL, tc.path, nil, "")
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		if resp.StatusCode == 404 && (body != "" || resp.Header.Get("Content-Type") != "") {
			t.Errorf("%s: Envoy's 404 has an empty body and no content-type, got %q %q", tc.path, body, resp.Header.Get("Content-Type"))
		}
		if n := len(fa.calls()) - before; n != tc.checks {
			t.Errorf("%s: %d checks, want %d", tc.path, n, tc.checks)
		}
		gotWhere := ""
		if len(step.requests()) > stepBefore {
			gotWhere += "step"
		}
		if len(app.requests()) > appBefore {
			gotWhere += "app"
		}
		if gotWhere != tc.where {
			t.Errorf("%s: went to %q, want %q", tc.path, gotWhere, tc.where)
		}
	}
}

// TestNewRejectsBadConfig: every problem is reported, wrapped in
// ErrConfig.
func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	up := &Route{Prefix: "/", Upstream: mustURL(t, "http://127.0.0.1:1")}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no routes", Config{AuthzTarget: "127.0.0.1:1"}},
		{"no authz target", Config{Routes: []Route{*up}}},
		{"prefix without slash", Config{AuthzTarget: "x:1", Routes: []Route{{Prefix: "app", Upstream: up.Upstream}}}},
		{"upstream with a path", Config{AuthzTarget: "x:1", Routes: []Route{{Prefix: "/", Upstream: mustURL(t, "http://h/base")}}}},
		{"upstream without host", Config{AuthzTarget: "x:1", Routes: []Route{{Prefix: "/", Upstream: mustURL(t, "file:///x")}}}},
		{"nil upstream", Config{AuthzTarget: "x:1", Routes: []Route{{Prefix: "/"}}}},
		{"bad status_on_error", Config{AuthzTarget: "x:1", Routes: []Route{*up}, StatusOnError: 42}},
		{"negative timeout", Config{AuthzTarget: "x:1", Routes: []Route{*up}, Timeout: -time.Second}},
		{"zero max_request_bytes", Config{AuthzTarget: "x:1", Routes: []Route{*up}, WithRequestBody: &BodySettings{}}},
		{"jwt without keys", Config{AuthzTarget: "x:1", Routes: []Route{*up}, JWTAuthn: &JWTAuthn{}}},
		{"jwt with a bad JWKS", Config{AuthzTarget: "x:1", Routes: []Route{*up}, JWTAuthn: &JWTAuthn{JWKS: []byte("{")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg)
			if err == nil {
				p.Close()
				t.Fatal("New accepted the configuration")
			}
			if !errorsIs(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	// Every route may disable ext_authz; then no target is needed.
	p, err := New(Config{Routes: []Route{{Prefix: "/", Upstream: up.Upstream, DisableExtAuthz: true}}})
	if err != nil {
		t.Fatalf("all routes disabled, no target: %v", err)
	}
	p.Close()
}

// TestCheckDeadline: the check carries the ext_authz timeout as its
// deadline (grpc-timeout, docs/envoy.md#filter-settings).
func TestCheckDeadline(t *testing.T) {
	t.Parallel()
	fa := startFakeAuthz(t, func(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return &authv3.CheckResponse{}, nil
	})
	srv := startProxy(t, Config{}, fa, startUpstream(t))
	newClient(t).do(t, "GET", srv.URL, "/", nil, "")
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if len(fa.deadlines) != 1 || !fa.deadlines[0] {
		t.Errorf("deadlines %v, want one call with a deadline", fa.deadlines)
	}
}
