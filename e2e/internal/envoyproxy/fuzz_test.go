package envoyproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// FuzzMutateQuery: query mutation never panics, keeps the path part,
// and never leaves a removed key behind.
func FuzzMutateQuery(f *testing.F) {
	f.Add("/p?b=2&a=1&flag&c=3&a=7", "a", "9", "c")
	f.Add("/p", "a", "1", "")
	f.Add("/p?&&a=1&", "", "", "a")
	f.Add("/p?k=v=w", "k", "%3D", "x")
	f.Add("?", "=", "&", "?")
	f.Fuzz(func(t *testing.T, path, setKey, setValue, removeKey string) {
		var set []queryParam
		if setKey != "" {
			set = []queryParam{{setKey, setValue}}
		}
		got := mutateQuery(path, set, []string{removeKey})
		base, _, _ := strings.Cut(path, "?")
		if !strings.HasPrefix(got, base) {
			t.Fatalf("mutateQuery(%q) = %q lost the path %q", path, got, base)
		}
		if removeKey == "" || strings.ContainsAny(setKey+setValue, "&=") {
			return // an injected separator makes a new key on purpose
		}
		_, q, _ := strings.Cut(got[len(base):], "?")
		for part := range strings.SplitSeq(q, "&") {
			if k, _, _ := strings.Cut(part, "="); q != "" && k == removeKey {
				t.Fatalf("mutateQuery(%q, remove %q) = %q still has the key", path, removeKey, got)
			}
		}
	})
}

// FuzzLastAddressFromXFF: never panics; an address found is one of the
// header's entries.
func FuzzLastAddressFromXFF(f *testing.F) {
	f.Add("198.51.100.1, 10.0.0.1", 0)
	f.Add("198.51.100.1, 10.0.0.1", 1)
	f.Add("::ffff:192.0.2.1", 0)
	f.Add("[::1]:80,1.2.3.4:5", 1)
	f.Add(",,,", 2)
	f.Fuzz(func(t *testing.T, xff string, skip int) {
		if skip < 0 || skip > 64 {
			return
		}
		a, ok := lastAddressFromXFF(xff, skip)
		if !ok {
			return
		}
		for e := range strings.SplitSeq(xff, ",") {
			if b, err := netip.ParseAddr(strings.TrimSpace(e)); err == nil && b == a {
				return
			}
		}
		t.Fatalf("lastAddressFromXFF(%q, %d) = %v, not one of the entries", xff, skip, a)
	})
}

// FuzzCheckRequest: whatever a client sends (headers, path, body), the
// CheckRequest is a valid protobuf message (Envoy sanitizes to UTF-8) and
// the HCM invariants hold at the edge.
func FuzzCheckRequest(f *testing.F) {
	f.Add("/payroll/report?month=11", "a=1", "203.0.113.7", "text/html", "x-envoy-internal", "true", []byte("body"))
	f.Add("/\xff\xfe?q=\xc3", "\xffcookie", "garbage, 1.2.3.4", "\x80", "X-Envoy-External-Address", "10.0.0.1", []byte{0xff})
	f.Add("*", "", "", "", "Host", "evil", []byte(nil))
	f.Fuzz(func(t *testing.T, path, cookie, xff, accept, hk, hv string, body []byte) {
		p, err := New(Config{
			AuthzTarget: "127.0.0.1:1", UseRemoteAddress: true, XFFNumTrustedHops: 1,
			Routes:          []Route{{Prefix: "/", Upstream: mustParse("http://127.0.0.1:1")}},
			WithRequestBody: &BodySettings{MaxRequestBytes: 4, AllowPartialMessage: true, PackAsBytes: true},
			Now:             func() time.Time { return testNow },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		r := httptest.NewRequestWithContext(context.Background(), "POST", "http://app.example/", strings.NewReader(string(body)))
		r.RequestURI = path
		r.RemoteAddr = "192.0.2.5:51234"
		r.Header = http.Header{"Cookie": {cookie}, "X-Forwarded-For": {xff}, "Accept": {accept}}
		r.Header[hk] = append(r.Header[hk], hv)
		s := p.newStream(r)
		s.route = &p.cfg.Routes[0]
		if p.bufferBody(r, s, p.cfg.WithRequestBody) {
			t.Fatal("partial bodies are never too large")
		}
		req := p.checkRequest(s)
		if _, err := proto.Marshal(req); err != nil {
			t.Fatalf("the CheckRequest cannot be sent: %v", err)
		}
		h := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
		if !strings.HasSuffix(h["x-forwarded-for"], "192.0.2.5") {
			t.Fatalf("x-forwarded-for %q does not end with the peer", h["x-forwarded-for"])
		}
		if _, err := netip.ParseAddr(h["x-envoy-external-address"]); err != nil {
			t.Fatalf("x-envoy-external-address %q: %v", h["x-envoy-external-address"], err)
		}
		if h["x-envoy-internal"] != "" {
			t.Fatal("a client's x-envoy-internal passed the edge")
		}
		if len(req.GetAttributes().GetRequest().GetHttp().GetRawBody()) > 4 {
			t.Fatal("more than max_request_bytes in the check")
		}
	})
}

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
