package e2e

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/stepup-dev/stepup/e2e/internal/envoyreq"
)

// underPrefix reports whether a request path (with query) really addresses
// something under the MFA step's prefix once percent-decoding and dot
// segments are resolved, as an application behind the proxy might.
func underPrefix(p, prefix string) bool {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	dec, err := url.PathUnescape(p)
	if err != nil || !strings.HasPrefix(p, prefix) {
		return false
	}
	return strings.HasPrefix(path.Clean(dec)+"/", prefix)
}

func TestUnderPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"/.stepup/mfa", true},
		{"/.stepup/mfa?state=x/../..", true},
		{"/.stepup/", true},
		{"/.stepup", false},
		{"/.stepup/../payroll", false},
		{"/.stepup/%2e%2e/payroll", false},
		{"/.stepup/%2E%2E/payroll", false},
		{"/.stepup/mfa/../../x", false},
		{"/.stepup/a/../mfa", true},
		{"/.stepup/%zz", false},
		{"/payroll/.stepup/", false},
	} {
		if got := underPrefix(tc.in, "/.stepup/"); got != tc.want {
			t.Errorf("underPrefix(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// FuzzGRPCCheck sends Envoy-shaped Checks from an extranet peer, with
// whatever x-forwarded-for, path, authority and header value the client
// could choose, to the running binary. Whatever the input:
//   - the answer is a decision (never a gRPC error) that Envoy can apply;
//   - nothing the client writes makes the request corporate: it is allowed
//     only on the MFA step's own paths;
//   - a denial is a 302 to the MFA step on the request's own host, or a
//     400/401/403.
func FuzzGRPCCheck(f *testing.F) {
	for _, s := range []struct{ xff, path, authority, value string }{
		{"", "/payroll/report?month=11", "app.corp.example", "x"},
		{"10.1.2.3", "/payroll", "app.corp.example", ""},
		{"192.168.1.140, 10.0.0.1", "/", "app.corp.example:8443", "a,b"},
		{"::ffff:10.1.2.3", "/.stepup/mfa?state=1", "APP.corp.example", "\x00"},
		{"garbage, ,", "/.stepup/../payroll", "[::1]:443", "é"},
		{"127.0.0.1", "/.stepup/%2e%2e/payroll", "app", strings.Repeat("z", 300)},
		{"10.1.2.3:443", "//evil.example/x", "evil.example/x", "\r\nx-stepup-user: mallory"},
		{"", "", "", ""},
	} {
		f.Add(s.xff, s.path, s.authority, s.value)
	}
	srv := startStepup(f, serverConfig{})
	client := authv3.NewAuthorizationClient(srv.Dial(f))

	f.Fuzz(func(t *testing.T, xff, p, authority, value string) {
		// Envoy turns bytes that are not UTF-8 into '!' (docs/envoy.md#headers-and-cookies);
		// protobuf strings must be UTF-8 anyway.
		xff, p, authority, value = strings.ToValidUTF8(xff, "!"), strings.ToValidUTF8(p, "!"), strings.ToValidUTF8(authority, "!"), strings.ToValidUTF8(value, "!")
		r := envoyreq.Browser(extranetIP)
		r.ClientXFF, r.Path, r.Authority = xff, p, authority
		r.Headers["x-fuzz"] = value
		req := r.MustProto()
		ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
		defer cancel()
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatalf("gRPC error: %v", err)
		}
		if msg := wellFormed(resp); msg != "" {
			t.Fatalf("%s: %v", msg, resp)
		}
		if allowed(resp) {
			if !underPrefix(p, "/.stepup/") {
				t.Fatalf("an extranet request for %q (x-forwarded-for %q) was allowed", p, xff)
			}
			return
		}
		switch st := httpStatus(resp); st {
		case http.StatusFound:
			loc := strings.Join(deniedHeader(resp, "location"), "")
			u, err := url.Parse(loc)
			if err != nil || !strings.EqualFold(u.Host, authority) || u.Path != "/.stepup/mfa" {
				t.Fatalf("302 to %q for authority %q: want the MFA step on the request's own host", loc, authority)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		default:
			t.Fatalf("unexpected denial status %d: %v", st, resp)
		}
	})
}
