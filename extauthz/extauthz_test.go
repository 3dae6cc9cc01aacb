package extauthz

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stepup-dev/stepup/cidr"
)

// corporate is the embedded default's corporate network.
var corporate = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128", "fc00::/7"}

func newTestServer(t testing.TB, mod func(*Options)) *Server {
	t.Helper()
	set, err := cidr.New(map[string][]string{"corporate": corporate})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Networks:                  cidr.NewMatcher(set),
		Policy:                    &NetworkPolicy{Exempt: []string{"corporate"}, Provider: "any", AllowRemember: true},
		Identity:                  IdentityOptions{JWTAuthn: true},
		TrustEnvoyExternalAddress: true,
		TrustedProxies:            []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkReq builds a CheckRequest shaped like docs/envoy.md#example-checkrequest: source is the
// TCP peer, x-forwarded-for has the peer appended, jwt_authn payload in
// metadata_context.
type reqOpt func(*authv3.CheckRequest)

func checkReq(peer string, opts ...reqOpt) *authv3.CheckRequest {
	payload, _ := structpb.NewStruct(map[string]any{
		"sub": "auth0|alice", "email": "alice@corp.example", "iss": "https://idp.example.com/", "aud": "payroll", "exp": 1900000000,
	})
	r := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: peer, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "12693513931553146283", Method: "GET", Path: "/payroll/report?month=11", Host: "app.corp.example", Scheme: "https", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":authority": "app.corp.example", ":method": "GET", ":path": "/payroll/report?month=11", ":scheme": "https",
				"accept":                   "text/html,application/xhtml+xml",
				"user-agent":               "Mozilla/5.0",
				"x-envoy-external-address": peer,
				"x-forwarded-for":          peer,
				"x-forwarded-proto":        "https",
				"x-request-id":             "5f8a3a2e-1c1b-4d57-9f1e-0d6a9c1c3b11",
			},
		}},
		ContextExtensions: map[string]string{"client_id": "payroll", "virtual_host": "app"},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{"jwt_payload": structpb.NewStructValue(payload)}},
		}},
	}}
	for _, o := range opts {
		o(r)
	}
	return r
}

func withHeader(k, v string) reqOpt {
	return func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Headers[k] = v }
}
func withoutHeader(k string) reqOpt {
	return func(r *authv3.CheckRequest) { delete(r.Attributes.Request.Http.Headers, k) }
}
func withoutIdentity() reqOpt {
	return func(r *authv3.CheckRequest) { r.Attributes.MetadataContext = nil }
}

// bufconnClient serves s over an in-memory gRPC transport.
func bufconnClient(t *testing.T, s *Server) authv3.AuthorizationClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func header(hs []*corev3.HeaderValueOption, k string) (string, bool) {
	for _, h := range hs {
		if h.GetHeader().GetKey() == k {
			return h.GetHeader().GetValue(), true
		}
	}
	return "", false
}

func TestCheckDecisions(t *testing.T) {
	s := newTestServer(t, func(o *Options) { o.LoginURL = "https://idp.example.com/login?return_to={url}" })
	client := bufconnClient(t, s)
	type want struct {
		code     codes.Code
		status   int    // denied status; 0 for OK
		reason   string // dynamic metadata reason
		location string // prefix of location, for 302s
	}
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want want
	}{
		{"corporate IP with identity is allowed", checkReq("192.168.1.140"), want{codes.OK, 0, "network", ""}},
		{"corporate IPv6 loopback", checkReq("::1"), want{codes.OK, 0, "network", ""}},
		{"IPv4-mapped corporate address is unmapped", checkReq("::ffff:10.1.2.3"), want{codes.OK, 0, "network", ""}},
		{"extranet browser is stepped up with a 302", checkReq("203.0.113.7"), want{codes.Unauthenticated, 302, "mfa_required", "https://app.corp.example/.stepup/mfa"}},
		{"extranet API client gets 401", checkReq("203.0.113.7", withHeader("accept", "application/json")), want{codes.Unauthenticated, 401, "mfa_required", ""}},
		{"fetch from a page is an API client", checkReq("203.0.113.7", withHeader("sec-fetch-mode", "cors")), want{codes.Unauthenticated, 401, "mfa_required", ""}},
		{"no identity, browser: login redirect", checkReq("192.168.1.140", withoutIdentity()), want{codes.Unauthenticated, 302, "no_identity", "https://idp.example.com/login?return_to=https%3A%2F%2Fapp.corp.example%2Fpayroll%2Freport%3Fmonth%3D11"}},
		{"no identity, API: 401", checkReq("192.168.1.140", withoutIdentity(), withHeader("accept", "*/*")), want{codes.Unauthenticated, 401, "no_identity", ""}},
		{
			// docs/envoy.md#client-address: the left-most XFF entry is the client's own claim.
			"spoofed x-forwarded-for from an extranet peer is not corporate",
			checkReq("203.0.113.7", withHeader("x-forwarded-for", "10.1.2.3,203.0.113.7")),
			want{codes.Unauthenticated, 302, "mfa_required", "https://app.corp.example/.stepup/mfa"},
		},
		{
			"spoofed x-forwarded-for without x-envoy-external-address",
			checkReq("203.0.113.7", withoutHeader("x-envoy-external-address"), withHeader("x-forwarded-for", "10.1.2.3, 203.0.113.7")),
			want{codes.Unauthenticated, 302, "mfa_required", "https://app.corp.example/.stepup/mfa"},
		},
		{
			"a trusted proxy's x-forwarded-for is believed",
			checkReq("127.0.0.1", withoutHeader("x-envoy-external-address"), withHeader("x-forwarded-for", "198.51.100.9, 127.0.0.1")),
			want{codes.Unauthenticated, 302, "mfa_required", "https://app.corp.example/.stepup/mfa"},
		},
		{"the MFA step prefix is allowed for identified users", checkReq("203.0.113.7", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/.stepup/mfa?state=x" }), want{codes.OK, 0, "stepup_prefix", ""}},
		{"the MFA step prefix needs an identity too", checkReq("203.0.113.7", withoutIdentity(), withHeader("accept", "*/*"), func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/.stepup/mfa" }), want{codes.Unauthenticated, 401, "no_identity", ""}},
		{"missing attributes", &authv3.CheckRequest{}, want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"missing http attributes", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}, want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"garbage source IP", checkReq("not-an-ip", withoutHeader("x-envoy-external-address")), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"garbage x-envoy-external-address", checkReq("203.0.113.7", withHeader("x-envoy-external-address", "999.1.1.1")), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"garbage from a trusted proxy in XFF", checkReq("127.0.0.1", withoutHeader("x-envoy-external-address"), withHeader("x-forwarded-for", "evil, 127.0.0.1")), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"1 MB header", checkReq("192.168.1.140", withHeader("x-big", strings.Repeat("a", 1<<20))), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"no host", checkReq("192.168.1.140", func(r *authv3.CheckRequest) {
			r.Attributes.Request.Http.Host = ""
			delete(r.Attributes.Request.Http.Headers, ":authority")
		}), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"dot segments cannot reach the app through the MFA prefix", checkReq("203.0.113.7", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/.stepup/../payroll/report" }), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"encoded dot segments", checkReq("203.0.113.7", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/.stepup/%2e%2E/payroll" }), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"encoded slash and dots", checkReq("203.0.113.7", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/.stepup/x%2f..%2f..%2fpayroll" }), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"backslash dots", checkReq("203.0.113.7", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "/.stepup\\..\\payroll" }), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"brackets in a DNS name", checkReq("192.168.1.140", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Host = "app.c[rp]ample" }), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"IPv6 literal host with port", checkReq("192.168.1.140", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Host = "[2001:db8::1]:8443" }), want{codes.OK, 0, "network", ""}},
		{"relative path", checkReq("192.168.1.140", func(r *authv3.CheckRequest) { r.Attributes.Request.Http.Path = "payroll" }), want{codes.PermissionDenied, 400, "bad_request", ""}},
		{"jwt payload without sub", checkReq("192.168.1.140", func(r *authv3.CheckRequest) {
			p, _ := structpb.NewStruct(map[string]any{"email": "x@y"})
			r.Attributes.MetadataContext.FilterMetadata["envoy.filters.http.jwt_authn"].Fields["jwt_payload"] = structpb.NewStructValue(p)
		}), want{codes.Unauthenticated, 302, "invalid_identity", "https://idp.example.com/login"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), tc.req)
			if err != nil {
				t.Fatalf("Check returned a gRPC error (Envoy would apply failure_mode_allow): %v", err)
			}
			if resp.GetStatus() == nil {
				t.Fatal("response has no explicit status")
			}
			got := want{
				code:   codes.Code(resp.GetStatus().GetCode()),
				reason: resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(),
			}
			if dr := resp.GetDeniedResponse(); dr != nil {
				got.status = int(dr.GetStatus().GetCode())
				if loc, ok := header(dr.GetHeaders(), "location"); ok && tc.want.location != "" && strings.HasPrefix(loc, tc.want.location) {
					got.location = tc.want.location
				} else {
					got.location = loc
				}
				for _, h := range dr.GetHeaders() {
					if h.GetAppend() != nil || h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
						t.Errorf("denied header %s sets an append field; docs/envoy.md#header-encoding-across-envoy-versions says leave both unset", h.GetHeader().GetKey())
					}
				}
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("decision mismatch (-want +got):\n%s", diff)
			}
			if (got.code == codes.OK) != (resp.GetOkResponse() != nil) {
				t.Errorf("status %v but ok_response=%v", got.code, resp.GetOkResponse())
			}
		})
	}
}

func TestAllowHeaders(t *testing.T) {
	s := newTestServer(t, nil)
	client := bufconnClient(t, s)
	resp, err := client.Check(context.Background(), checkReq("192.168.1.140",
		withHeader("x-stepup-user", "mallory"),           // spoofed: overwritten
		withHeader("x-stepup-claim-role", "admin"),       // spoofed, not set by stepup: removed
		withHeader("x-stepup-assertion", "forged-token"), // spoofed: removed
	))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("want OK, got %v", resp)
	}
	wantSet := map[string]string{
		"x-stepup-user":    "auth0|alice",
		"x-stepup-email":   "alice@corp.example",
		"x-stepup-mfa":     "none",
		"x-stepup-network": "corporate",
	}
	got := map[string]string{}
	for _, h := range ok.GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("header %s: append_action %v, want OVERWRITE_IF_EXISTS_OR_ADD (docs/envoy.md#header-encoding-across-envoy-versions)", h.GetHeader().GetKey(), h.GetAppendAction())
		}
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if diff := cmp.Diff(wantSet, got); diff != "" {
		t.Errorf("upstream headers (-want +got):\n%s", diff)
	}
	removed := map[string]bool{}
	for _, h := range ok.GetHeadersToRemove() {
		removed[h] = true
		if _, set := got[h]; set {
			t.Errorf("%s is both set and removed: Envoy would remove it (docs/envoy.md#headers-on-allow)", h)
		}
	}
	for _, h := range []string{"x-stepup-claim-role", "x-stepup-assertion"} {
		if !removed[h] {
			t.Errorf("client-supplied %s is not removed", h)
		}
	}
}

func TestCheckIsNeverAGRPCError(t *testing.T) {
	// A decision must be a response even when the policy panics.
	s := newTestServer(t, func(o *Options) { o.Policy = panicPolicy{} })
	resp, err := s.Check(context.Background(), checkReq("203.0.113.7"))
	if err != nil {
		t.Fatalf("gRPC error: %v", err)
	}
	if code := codes.Code(resp.GetStatus().GetCode()); code == codes.OK {
		t.Fatal("a panicking policy allowed the request")
	}
	if got := resp.GetDeniedResponse().GetStatus().GetCode(); got != 503 {
		t.Errorf("status %d, want 503", got)
	}
}

type panicPolicy struct{}

func (panicPolicy) Evaluate(context.Context, *PolicyInput) PolicyResult { panic("boom") }

func TestCookie(t *testing.T) {
	tests := []struct {
		header, name, want string
		ok                 bool
	}{
		{"a=1; b=2", "b", "2", true},
		{"a=1,b=2", "b", "2", true},  // HTTP/1.1 cookie lines joined by ext_authz (docs/envoy.md#headers-and-cookies)
		{"a=1, b=2", "b", "2", true}, // with a space
		{"ab=1; b=2", "b", "2", true},
		{"ab=1", "b", "", false},
		{"b=\"quoted\"", "b", "quoted", true},
		{"", "b", "", false},
		{"b=", "b", "", true},
		{";;;", "b", "", false},
	}
	for _, tc := range tests {
		got, ok := findCookie(tc.header, tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("findCookie(%q, %q) = %q, %v; want %q, %v", tc.header, tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHasDotSegment(t *testing.T) {
	for p, want := range map[string]bool{
		"/":              false,
		"/a/b.c/..d":     false,
		"/.stepup/mfa":   false,
		"/.well-known/x": false,
		"/a/./b":         true,
		"/a/..":          true,
		"/a/%2E%2e/b":    true,
		"/a%2f..%2fb":    true,
		"/a\\..\\b":      true,
		"/a/%zz":         true,
		"/a/%2e":         true,
		"/a/...":         false,
	} {
		if got := hasDotSegment(p); got != want {
			t.Errorf("hasDotSegment(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestStripCookies(t *testing.T) {
	tests := []struct{ in, want string }{
		{"id_token=x; stepup_mfa=secret; theme=dark", "id_token=x; theme=dark"},
		{"stepup_mfa=a,stepup_rb=b", ""},
		{"theme=dark", "theme=dark"},
		{"stepup_mfa_other=1; stepup_mfa=x", "stepup_mfa_other=1"},
		{"stepup_mfa; a=1;;  ; stepup_rb=2 ,b=3 ", "stepup_mfa; a=1; b=3"},
		{"x=stepup_mfa=1; stepup_mfa==", "x=stepup_mfa=1"},
		{"stepup_mfa=", ""},
	}
	for _, tc := range tests {
		got, changed := stripCookies(tc.in, "stepup_mfa", "stepup_rb")
		if got != tc.want {
			t.Errorf("stripCookies(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if changed != (got != tc.in) && tc.in != "theme=dark" {
			t.Errorf("stripCookies(%q) changed = %v", tc.in, changed)
		}
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name     string
		r        clientIPResolver
		envoy    bool
		peer     string
		headers  map[string]string
		want     string
		wantFail bool
	}{
		{"peer untrusted: peer is the client", clientIPResolver{trusted: trusted}, false, "203.0.113.7", map[string]string{"x-forwarded-for": "10.1.2.3"}, "203.0.113.7", false},
		{"trusted LB, XFF rightmost after the appended peer", clientIPResolver{trusted: trusted}, false, "10.0.0.5", map[string]string{"x-forwarded-for": "1.1.1.1, 198.51.100.2, 10.0.0.5"}, "198.51.100.2", false},
		{"two trusted hops", clientIPResolver{trusted: trusted}, false, "10.0.0.5", map[string]string{"x-forwarded-for": "198.51.100.2,10.0.0.9"}, "198.51.100.2", false},
		{"ports in XFF", clientIPResolver{trusted: trusted}, false, "127.0.0.1", map[string]string{"x-forwarded-for": "[2001:db8::1]:443, 127.0.0.1:9"}, "2001:db8::1", false},
		{"mapped address unmapped", clientIPResolver{trusted: trusted}, false, "127.0.0.1", map[string]string{"x-forwarded-for": "::ffff:198.51.100.2"}, "198.51.100.2", false},
		{"envoy external address wins when trusted", clientIPResolver{trusted: trusted}, true, "127.0.0.1", map[string]string{"x-envoy-external-address": "198.51.100.3", "x-forwarded-for": "10.9.9.9"}, "198.51.100.3", false},
		{"envoy external address ignored when not trusted", clientIPResolver{trusted: trusted}, false, "203.0.113.7", map[string]string{"x-envoy-external-address": "10.1.1.1"}, "203.0.113.7", false},
		{"empty XFF entries skipped", clientIPResolver{trusted: trusted}, false, "127.0.0.1", map[string]string{"x-forwarded-for": "198.51.100.2,, "}, "198.51.100.2", false},
		{"garbage after a trusted hop fails", clientIPResolver{trusted: trusted}, false, "127.0.0.1", map[string]string{"x-forwarded-for": "nonsense"}, "", true},
		{"hops=1", clientIPResolver{hops: 1}, false, "10.0.0.5", map[string]string{"x-forwarded-for": "1.1.1.1, 198.51.100.2, 10.0.0.5"}, "198.51.100.2", false},
		{"hops=2", clientIPResolver{hops: 2}, false, "10.0.0.5", map[string]string{"x-forwarded-for": "1.1.1.1, 198.51.100.2, 10.0.0.5"}, "1.1.1.1", false},
		{"hops with short chain uses left-most", clientIPResolver{hops: 3}, false, "10.0.0.5", map[string]string{"x-forwarded-for": "198.51.100.2, 10.0.0.5"}, "198.51.100.2", false},
		{"hops with no XFF is the peer", clientIPResolver{hops: 1}, false, "203.0.113.7", map[string]string{}, "203.0.113.7", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &Request{PeerIP: netip.MustParseAddr(tc.peer).Unmap(), Headers: tc.headers}
			got, err := tc.r.resolve(r, tc.envoy)
			if tc.wantFail {
				if err == nil {
					t.Fatalf("resolve = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("resolve = %v, want %v", got, tc.want)
			}
		})
	}
}

// testRealm is the realm of the tests' requests (their host).
const testRealm = "app.corp.example"
