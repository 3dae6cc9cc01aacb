package envoyproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// testNow is the proxy's clock in the tests.
var testNow = time.Date(2026, 11, 23, 16, 51, 44, 30443872, time.UTC)

// fakeAuthz is an in-process ext_authz server that records every
// CheckRequest and answers with a scripted function.
type fakeAuthz struct {
	authv3.UnimplementedAuthorizationServer
	addr    string
	respond func(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error)

	mu       sync.Mutex
	requests []*authv3.CheckRequest
	// deadlines records whether each call carried a deadline
	// (grpc-timeout).
	deadlines []bool
}

func startFakeAuthz(t *testing.T, respond func(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error)) *fakeAuthz {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAuthz{addr: lis.Addr().String(), respond: respond}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	_, hasDeadline := ctx.Deadline()
	f.mu.Lock()
	f.requests = append(f.requests, proto.Clone(req).(*authv3.CheckRequest))
	f.deadlines = append(f.deadlines, hasDeadline)
	f.mu.Unlock()
	return f.respond(ctx, req)
}

// calls returns the recorded requests.
func (f *fakeAuthz) calls() []*authv3.CheckRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*authv3.CheckRequest(nil), f.requests...)
}

// only returns the single recorded request, failing otherwise.
func (f *fakeAuthz) only(t *testing.T) *authv3.CheckRequest {
	t.Helper()
	c := f.calls()
	if len(c) != 1 {
		t.Fatalf("%d checks, want 1", len(c))
	}
	return c[0]
}

// allowAll answers OK with no mutations.
func allowAll(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{}, nil
}

// seen is one request as the upstream received it.
type seen struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
}

// upstream is the application behind the proxy. It records every request
// and answers 200 "upstream" with its own Set-Cookie, X-Frame and
// Cache-Control headers.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seen
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(b)})
		u.mu.Unlock()
		w.Header().Add("Set-Cookie", "app=1; Path=/")
		w.Header().Set("X-Frame", "up")
		w.Header().Set("Cache-Control", "public")
		w.Header().Set("Server", "upstream")
		_, _ = io.WriteString(w, "upstream")
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.seen...)
}

func (u *upstream) only(t *testing.T) seen {
	t.Helper()
	s := u.requests()
	if len(s) != 1 {
		t.Fatalf("upstream got %d requests, want 1", len(s))
	}
	return s[0]
}

func (u *upstream) url(t *testing.T) *url.URL {
	t.Helper()
	p, err := url.Parse(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startProxy serves New(cfg) on a loopback port. Unset routes default to
// everything going to up with ext_authz; an unset AuthzTarget to fa's.
func startProxy(t *testing.T, cfg Config, fa *fakeAuthz, up *upstream) *httptest.Server {
	t.Helper()
	if cfg.Routes == nil {
		cfg.Routes = []Route{{Prefix: "/", Upstream: up.url(t)}}
	}
	if cfg.AuthzTarget == "" && fa != nil {
		cfg.AuthzTarget = fa.addr
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}

// client is an HTTP/1.1 client that does not follow redirects, does not
// ask for gzip, and remembers the local address of its last connection.
type client struct {
	*http.Client
	mu    sync.Mutex
	local string
}

func newClient(t *testing.T) *client {
	t.Helper()
	c := &client{}
	tr := &http.Transport{
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				c.mu.Lock()
				c.local = conn.LocalAddr().String()
				c.mu.Unlock()
			}
			return conn, err
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	c.Client = &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	return c
}

func (c *client) localAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// do sends method base+path with the given headers (a "Host" entry sets
// the Host) and returns the response with its body read.
func (c *client) do(t *testing.T, method, base, path string, h http.Header, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		if strings.EqualFold(k, "Host") {
			req.Host = vs[0]
			continue
		}
		req.Header[http.CanonicalHeaderKey(k)] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "envoyproxy-test")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

// closedPort returns a loopback address nobody listens on (it was free a
// moment ago).
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
