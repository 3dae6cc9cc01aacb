package extauthz

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/stepup-dev/stepup/session"
)

// headerIdentity makes HTTP-mode tests identify users by a header set by a
// trusted proxy on loopback.
func headerIdentity(o *Options) {
	o.Identity = IdentityOptions{Header: "x-user", HeaderPeers: o.TrustedProxies}
}

func TestHTTPModes(t *testing.T) {
	s := newTestServer(t, headerIdentity)
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	type result struct {
		status int
		loc    string
		user   string
	}
	tests := []struct {
		name   string
		method string
		target string
		header map[string]string
		want   result
	}{
		{"forward-auth corporate", "GET", "/forward-auth", map[string]string{"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Uri": "/a?b=1", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "POST", "X-User": "alice", "Accept": "text/html"}, result{200, "", "alice"}},
		{"forward-auth extranet browser", "GET", "/forward-auth", map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Uri": "/a?b=1", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET", "X-User": "alice", "Accept": "text/html"}, result{302, "https://app.example/.stepup/mfa", ""}},
		{"forward-auth ignores x-envoy-external-address", "GET", "/forward-auth", map[string]string{"X-Envoy-External-Address": "10.1.1.1", "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Uri": "/", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET", "X-User": "alice", "Accept": "text/html"}, result{302, "https://app.example/.stepup/mfa", ""}},
		{"forward-auth API client", "GET", "/forward-auth", map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Uri": "/api", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET", "X-User": "alice", "Accept": "application/json"}, result{401, "", ""}},
		{"forward-auth without XFF from a trusted proxy", "GET", "/forward-auth", map[string]string{"X-Forwarded-Uri": "/", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET", "X-User": "alice"}, result{400, "", ""}},
		{"forward-auth no identity", "GET", "/forward-auth", map[string]string{"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Uri": "/", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET"}, result{401, "", ""}},
		{"nginx: redirects become 401 with a header", "GET", "/forward-auth/nginx", map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Original-Uri": "/a", "X-Forwarded-Host": "app.example", "X-Original-Method": "GET", "X-User": "alice", "Accept": "text/html"}, result{401, "", ""}},
		{"envoy http mode corporate", "POST", "/authz/payroll?x=1", map[string]string{"X-Envoy-External-Address": "10.1.2.3", "X-User": "alice"}, result{200, "", "alice"}},
		{"envoy http mode extranet", "GET", "/authz/payroll?x=1", map[string]string{"X-Envoy-External-Address": "203.0.113.7", "X-User": "alice", "Accept": "text/html"}, result{302, "https://app.example/.stepup/mfa", ""}},
		{"forward-auth ignores a client's x-stepup-client-id", "GET", "/forward-auth", map[string]string{"X-Stepup-Client-Id": "other", "X-Forwarded-For": "10.1.2.3", "X-Forwarded-Uri": "/", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET", "X-User": "alice"}, result{200, "", "alice"}},
		{"envoy http mode bad path", "GET", "/authzfoo", map[string]string{"X-Envoy-External-Address": "10.1.2.3", "X-User": "alice"}, result{404, "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://app.example"+tc.target, nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			got := result{status: rec.Code, user: rec.Header().Get("X-Stepup-User")}
			if loc := rec.Header().Get("Location"); loc != "" {
				got.loc = loc
				if strings.HasPrefix(loc, tc.want.loc) && tc.want.loc != "" {
					got.loc = tc.want.loc
				}
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v (body %q)", got, tc.want, rec.Body.String())
			}
			if tc.target == ForwardAuthNginxPath && !strings.Contains(rec.Header().Get(RedirectHeader), "/.stepup/mfa") {
				t.Errorf("nginx mode: %s = %q", RedirectHeader, rec.Header().Get(RedirectHeader))
			}
			if got.status == 200 {
				for _, h := range []string{"X-Stepup-User", "X-Stepup-Email", "X-Stepup-Mfa", "X-Stepup-Network"} {
					if _, ok := rec.Header()[h]; !ok {
						t.Errorf("allow without %s: Caddy would forward a placeholder (docs/envoy.md#caddy)", h)
					}
				}
			}
		})
	}
}

// FuzzCheck feeds arbitrary CheckRequests (as protojson) to Check: it must
// never panic, never return a gRPC error and never allow a request from an
// address outside the corporate network without MFA.
func FuzzCheck(f *testing.F) {
	for _, r := range []*authv3.CheckRequest{checkReq("192.168.1.140"), checkReq("203.0.113.7"), checkReq("::ffff:10.0.0.1", withHeader("x-forwarded-for", "a,b,,c"))} {
		b, _ := protojson.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"attributes":{"request":{"http":{"headers":{"cookie":";,="}}}}}`))
	s := newTestServer(f, nil)
	set := s.nets.Load()
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &authv3.CheckRequest{}
		if err := protojson.Unmarshal(data, req); err != nil {
			return
		}
		resp, err := s.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("gRPC error: %v", err)
		}
		if resp.GetStatus() == nil {
			t.Fatal("no explicit status")
		}
		if resp.GetStatus().GetCode() == 0 {
			var r Request
			if err := s.fromCheckRequest(req, &r); err != nil {
				t.Fatalf("allowed a request that does not normalize: %v", err)
			}
			if !strings.HasPrefix(r.Path, "/.stepup/") && len(set.Lookup(r.ClientIP)) == 0 {
				t.Fatalf("allowed extranet client %v without MFA", r.ClientIP)
			}
		}
	})
}

// FuzzClientIP: whatever the headers, the resolved client is the peer
// unless the peer is a trusted proxy.
func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.7", "10.0.0.1, 203.0.113.7", "")
	f.Add("127.0.0.1", "198.51.100.1,127.0.0.1", "")
	f.Add("127.0.0.1", "[::1]:80, ,x", "10.0.0.1")
	s := newTestServer(f, nil)
	f.Fuzz(func(t *testing.T, peer, xff, envoy string) {
		r := &Request{Headers: map[string]string{"x-forwarded-for": xff}}
		a, err := socketAddr(peer)
		if err != nil {
			return
		}
		r.PeerIP = a
		got, err := s.clientIP.resolve(r, false)
		if err != nil {
			return
		}
		if !s.clientIP.isTrusted(a) && got != a {
			t.Fatalf("untrusted peer %v, but client resolved to %v from XFF %q", a, got, xff)
		}
	})
}

type clientPolicy struct{ deny string }

func (p clientPolicy) Evaluate(_ context.Context, in *PolicyInput) PolicyResult {
	if in.Req.ClientID == p.deny {
		return PolicyResult{Err: &PolicyError{Status: 403, Reason: "rule_denied", Message: "client " + p.deny}}
	}
	return PolicyResult{}
}

// TestMFAMaxAgeHeader: Envoy's HTTP mode carries the route's mfa_max_age
// in x-stepup-mfa-max-age; forward-auth proxies copy client headers, so
// there it is ignored.
func TestMFAMaxAgeHeader(t *testing.T) {
	f := newSessionFixture(t, nil)
	s := newTestServer(t, func(o *Options) {
		headerIdentity(o)
		o.Sessions = NewSessions(f.m)
		o.Now = func() time.Time { return f.now }
		o.Policy = fixedPolicy{PolicyResult{MFA: Requirement{Provider: "any"}}}
	})
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	c, _, err := f.m.IssueMFASession(context.Background(), session.Grant{User: "alice", Realm: "app.example", Factors: []string{"otp"}})
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(10 * time.Minute)
	for _, tc := range []struct {
		target, maxAge string
		want           int
	}{
		{"/authz/x", "", 200},
		{"/authz/x", "5m", 401},   // HTTP mode: believed, the 10 min old proof is too old
		{"/authz/x", "soon", 403}, // and a bad value fails closed (HTTP mode never answers 5xx)
		{"/forward-auth", "5m", 200},
	} {
		req := httptest.NewRequest("GET", "http://app.example"+tc.target, nil)
		req.RemoteAddr = "127.0.0.1:4000"
		for k, v := range map[string]string{"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Uri": "/", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET", "X-User": "alice", "Cookie": c.Name + "=" + c.Value} {
			req.Header.Set(k, v)
		}
		if tc.maxAge != "" {
			req.Header.Set("X-Stepup-Mfa-Max-Age", tc.maxAge)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s with max age %q: status %d, want %d (%s)", tc.target, tc.maxAge, rec.Code, tc.want, rec.Body)
		}
	}
}

// TestClientIDHeader: only Envoy's HTTP mode may name the client with
// x-stepup-client-id; forward-auth proxies copy client headers verbatim.
func TestClientIDHeader(t *testing.T) {
	s := newTestServer(t, func(o *Options) {
		headerIdentity(o)
		o.Policy = clientPolicy{deny: "chosen-by-header"}
		o.ClientHosts = map[string]string{"app.example": "payroll"}
	})
	mux := http.NewServeMux()
	s.RegisterHTTP(mux)
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/forward-auth", 200}, // header ignored: client is payroll
		{"/authz/x", 403},      // Envoy HTTP mode: header believed
	} {
		req := httptest.NewRequest("GET", "http://app.example"+tc.target, nil)
		req.RemoteAddr = "127.0.0.1:4000"
		for k, v := range map[string]string{"X-Stepup-Client-Id": "chosen-by-header", "X-Forwarded-For": "10.1.2.3", "X-Forwarded-Uri": "/", "X-Forwarded-Host": "app.example", "X-Forwarded-Method": "GET", "X-User": "alice"} {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.target, rec.Code, tc.want, rec.Body)
		}
	}
}
