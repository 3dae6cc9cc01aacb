package envoyproxy

import (
	"context"
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Header options in the encodings of docs/envoy.md#header-encoding-across-envoy-versions.
func overwrite(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func unset(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}}
}

func appendFlag(k, v string, a bool) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, Append: wrapperspb.Bool(a)}
}

func action(k, v string, a corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: a}
}

func okResponse(ok *authv3.OkHttpResponse) func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return &authv3.CheckResponse{Status: &rpcstatus.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok}}, nil
	}
}

// TestOKHeaders: OK request-header mutations, newer and older Envoy code
// (docs/envoy.md#headers-on-allow, docs/envoy.md#header-encoding-across-envoy-versions). The client sends X-User: mallory and
// X-Present: client; the upstream's view of the listed headers is
// compared.
func TestOKHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		legacy  bool
		headers []*corev3.HeaderValueOption
		remove  []string
		want    map[string][]string // canonical name -> values (nil = absent)
	}{
		{"OVERWRITE_IF_EXISTS_OR_ADD replaces the client's copy", false,
			[]*corev3.HeaderValueOption{overwrite("x-user", "alice")}, nil,
			map[string][]string{"X-User": {"alice"}}},
		{"deprecated append: false sets", false,
			[]*corev3.HeaderValueOption{appendFlag("x-user", "alice", false)}, nil,
			map[string][]string{"X-User": {"alice"}}},
		{"unset (APPEND_IF_EXISTS_OR_ADD) on newer code: the client's copy survives", false,
			[]*corev3.HeaderValueOption{unset("x-user", "alice")}, nil,
			map[string][]string{"X-User": {"mallory", "alice"}}},
		{"unset on older code: set", true,
			[]*corev3.HeaderValueOption{unset("x-user", "alice")}, nil,
			map[string][]string{"X-User": {"alice"}}},
		{"OVERWRITE_IF_EXISTS_OR_ADD on older code: set (action ignored)", true,
			[]*corev3.HeaderValueOption{overwrite("x-user", "alice")}, nil,
			map[string][]string{"X-User": {"alice"}}},
		{"append: true joins to an existing header and never adds one", false,
			[]*corev3.HeaderValueOption{appendFlag("x-user", "alice", true), appendFlag("x-absent", "v", true)}, nil,
			map[string][]string{"X-User": {"mallory,alice"}, "X-Absent": nil}},
		{"ADD_IF_ABSENT", false,
			[]*corev3.HeaderValueOption{action("x-user", "alice", corev3.HeaderValueOption_ADD_IF_ABSENT),
				action("x-absent", "v", corev3.HeaderValueOption_ADD_IF_ABSENT)}, nil,
			map[string][]string{"X-User": {"mallory"}, "X-Absent": {"v"}}},
		{"OVERWRITE_IF_EXISTS", false,
			[]*corev3.HeaderValueOption{action("x-user", "alice", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
				action("x-absent", "v", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS)}, nil,
			map[string][]string{"X-User": {"alice"}, "X-Absent": nil}},
		{"set, then add, regardless of list order", false,
			[]*corev3.HeaderValueOption{unset("x-multi", "second"), overwrite("x-multi", "first")}, nil,
			map[string][]string{"X-Multi": {"first", "second"}}},
		{"headers_to_remove runs last: a header set and removed is gone", false,
			[]*corev3.HeaderValueOption{overwrite("x-user", "alice"), overwrite("x-temp", "t")}, []string{"x-temp", "X-Present"},
			map[string][]string{"X-User": {"alice"}, "X-Temp": nil, "X-Present": nil}},
		{"pseudo-headers and host cannot be removed", false,
			nil, []string{"host", ":path", ":authority"},
			map[string][]string{"X-Present": {"client"}}},
		{"cookie can be replaced", false,
			[]*corev3.HeaderValueOption{overwrite("cookie", "app=1")}, nil,
			map[string][]string{"Cookie": {"app=1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fa := startFakeAuthz(t, okResponse(&authv3.OkHttpResponse{Headers: tc.headers, HeadersToRemove: tc.remove}))
			up := startUpstream(t)
			srv := startProxy(t, Config{UseRemoteAddress: true, LegacyAppend: tc.legacy}, fa, up)
			resp, _ := newClient(t).do(t, "GET", srv.URL, "/app/x?q=1", http.Header{
				"Host": {"app.example"}, "X-User": {"mallory"}, "X-Present": {"client"}, "Cookie": {"id_token=t; __Host-stepup_mfa=s"},
			}, "")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := up.only(t)
			for k, want := range tc.want {
				if diff := cmp.Diff(want, got.Header.Values(k)); diff != "" {
					t.Errorf("upstream %s (-want +got):\n%s", k, diff)
				}
			}
			if got.Host != "app.example" || got.URI != "/app/x?q=1" {
				t.Errorf("upstream host %q uri %q, want app.example /app/x?q=1", got.Host, got.URI)
			}
		})
	}
}

// TestOKInvalidMutations: mutations Go cannot forward are answered 500
// (Envoy's validate_mutations), and never reach the upstream.
func TestOKInvalidMutations(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]*corev3.HeaderValueOption{
		"CRLF in a value":  overwrite("x-user", "alice\r\nx-admin: 1"),
		"space in a name":  overwrite("x user", "alice"),
		"pseudo-header":    overwrite(":path", "/admin"),
		"host":             overwrite("host", "evil.example"),
		"empty name":       overwrite("", "v"),
		"response: CRLF":   nil,
		"response: :state": nil,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ok := &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{h}}
			switch name {
			case "response: CRLF":
				ok = &authv3.OkHttpResponse{ResponseHeadersToAdd: []*corev3.HeaderValueOption{unset("set-cookie", "a=1\nb")}}
			case "response: :state":
				ok = &authv3.OkHttpResponse{ResponseHeadersToAdd: []*corev3.HeaderValueOption{unset(":status", "200")}}
			}
			fa := startFakeAuthz(t, okResponse(ok))
			up := startUpstream(t)
			srv := startProxy(t, Config{UseRemoteAddress: true}, fa, up)
			resp, _ := newClient(t).do(t, "GET", srv.URL, "/", nil, "")
			if resp.StatusCode != 500 {
				t.Errorf("status %d, want 500", resp.StatusCode)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("upstream reached %d times", n)
			}
		})
	}
}

// TestEmptyCheckResponseAllows: an empty CheckResponse{} is OK
// (docs/envoy.md#errors-and-failure_mode_allow) — the reason stepup must always set a status.
func TestEmptyCheckResponseAllows(t *testing.T) {
	t.Parallel()
	fa := startFakeAuthz(t, allowAll)
	up := startUpstream(t)
	srv := startProxy(t, Config{}, fa, up)
	resp, body := newClient(t).do(t, "GET", srv.URL, "/x", nil, "")
	if resp.StatusCode != 200 || body != "upstream" {
		t.Errorf("status %d body %q, want the upstream's 200", resp.StatusCode, body)
	}
}

// TestResponseHeadersToAdd: response_headers_to_add on the upstream's
// response (docs/envoy.md#headers-on-allow, docs/envoy.md#header-encoding-across-envoy-versions); the upstream sets Set-Cookie app=1,
// X-Frame: up and Cache-Control: public.
func TestResponseHeadersToAdd(t *testing.T) {
	t.Parallel()
	add := []*corev3.HeaderValueOption{
		unset("set-cookie", "mfa_rb=v1; Max-Age=2592000; Path=/; HttpOnly"),
		overwrite("x-frame", "stepup"),
		action("cache-control", "no-store", corev3.HeaderValueOption_ADD_IF_ABSENT),
		action("x-new", "v", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS),
		action("x-fresh", "v", corev3.HeaderValueOption_ADD_IF_ABSENT),
	}
	want := map[string][]string{
		"Set-Cookie":    {"app=1; Path=/", "mfa_rb=v1; Max-Age=2592000; Path=/; HttpOnly"},
		"X-Frame":       {"stepup"},
		"Cache-Control": {"public"},
		"X-New":         nil,
		"X-Fresh":       {"v"},
		"Server":        {"envoy"},
	}
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "newer", true: "older"}[legacy], func(t *testing.T) {
			t.Parallel()
			fa := startFakeAuthz(t, okResponse(&authv3.OkHttpResponse{ResponseHeadersToAdd: add}))
			up := startUpstream(t)
			srv := startProxy(t, Config{LegacyAppend: legacy}, fa, up)
			resp, body := newClient(t).do(t, "GET", srv.URL, "/", nil, "")
			if resp.StatusCode != 200 || body != "upstream" {
				t.Fatalf("status %d body %q", resp.StatusCode, body)
			}
			for k, w := range want {
				if diff := cmp.Diff(w, resp.Header.Values(k)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
		})
	}
}

// TestQueryParameters: query_parameters_to_set / _to_remove
// (docs/envoy.md#headers-on-allow), end to end.
func TestQueryParameters(t *testing.T) {
	t.Parallel()
	fa := startFakeAuthz(t, okResponse(&authv3.OkHttpResponse{
		QueryParametersToSet:    []*corev3.QueryParameter{{Key: "a", Value: "9"}, {Key: "mfa", Value: "1"}},
		QueryParametersToRemove: []string{"c", "absent"},
	}))
	up := startUpstream(t)
	srv := startProxy(t, Config{}, fa, up)
	newClient(t).do(t, "GET", srv.URL, "/app/x?b=2&a=1&flag&c=3&a=7", nil, "")
	if got, want := up.only(t).URI, "/app/x?a=9&b=2&flag=&mfa=1"; got != want {
		t.Errorf("upstream uri %q, want %q", got, want)
	}
	if got := fa.only(t).GetAttributes().GetRequest().GetHttp().GetPath(); got != "/app/x?b=2&a=1&flag&c=3&a=7" {
		t.Errorf("the check saw %q, want the original path", got)
	}
}

func TestMutateQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path   string
		set    []queryParam
		remove []string
		want   string
	}{
		{"/p", []queryParam{{"a", "1"}}, nil, "/p?a=1"},
		{"/p?b=2&a=1", nil, nil, "/p?a=1&b=2"},
		{"/p?a=1&a=2&b", []queryParam{{"a", "3"}}, nil, "/p?a=3&b="},
		{"/p?a=1&b=2", nil, []string{"a", "b"}, "/p"},
		{"/p?a=1", []queryParam{{"a", "x"}}, []string{"a"}, "/p"},
		{"/p?x=%2F&y=a%20b", []queryParam{{"z", "%3D"}}, nil, "/p?x=%2F&y=a%20b&z=%3D"},
		{"/p?&&a=1&", nil, nil, "/p?a=1"},
		{"/p?k=v=w", nil, nil, "/p?k=v=w"},
	}
	for _, tc := range tests {
		if got := mutateQuery(tc.path, tc.set, tc.remove); got != tc.want {
			t.Errorf("mutateQuery(%q, %v, %v) = %q, want %q", tc.path, tc.set, tc.remove, got, tc.want)
		}
	}
}

func denied(d *authv3.DeniedHttpResponse, code codes.Code) func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
		r := &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(code)}}
		if d != nil {
			r.HttpResponse = &authv3.CheckResponse_DeniedResponse{DeniedResponse: d}
		}
		return r, nil
	}
}

// TestDenied: the local reply of a Denied outcome (docs/envoy.md#denied-responses).
func TestDenied(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		legacy  bool
		respond func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error)
		status  int
		body    string
		want    map[string][]string
	}{
		{"step-up redirect: location, two cookies, empty body", false,
			denied(&authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Found}, Headers: []*corev3.HeaderValueOption{
				unset("location", "https://app.example/.stepup/mfa?state=Q2x"),
				unset("set-cookie", "mfa_tx=Q2x; Path=/.stepup; HttpOnly"),
				unset("set-cookie", "other=1; Path=/"),
				unset("cache-control", "no-store"),
				unset("content-type", "text/html"),
			}}, codes.Unauthenticated),
			302, "", map[string][]string{
				"Location":       {"https://app.example/.stepup/mfa?state=Q2x"},
				"Set-Cookie":     {"mfa_tx=Q2x; Path=/.stepup; HttpOnly", "other=1; Path=/"},
				"Cache-Control":  {"no-store"},
				"Content-Type":   nil,
				"Content-Length": {"0"},
				"Server":         {"envoy"},
			}},
		{"the same on older code", true,
			denied(&authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Found}, Headers: []*corev3.HeaderValueOption{
				unset("location", "/x"), unset("set-cookie", "a=1"), unset("set-cookie", "b=2"),
			}}, codes.Unauthenticated),
			302, "", map[string][]string{"Location": {"/x"}, "Set-Cookie": {"a=1", "b=2"}}},
		{"401 with a JSON body keeps its content-type", false,
			denied(&authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Unauthorized},
				Headers: []*corev3.HeaderValueOption{unset("content-type", "application/json"), unset("www-authenticate", `Bearer realm="stepup"`)},
				Body:    `{"error":"insufficient_user_authentication"}`}, codes.Unauthenticated),
			401, `{"error":"insufficient_user_authentication"}`, map[string][]string{
				"Content-Type":     {"application/json"},
				"Content-Length":   {"44"},
				"Www-Authenticate": {`Bearer realm="stepup"`},
			}},
		{"a body without content-type gets text/plain", false,
			denied(&authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden}, Body: "no\n"}, codes.PermissionDenied),
			403, "no\n", map[string][]string{"Content-Type": {"text/plain"}}},
		{"no denied_response: 403, empty", false, denied(nil, codes.PermissionDenied), 403, "",
			map[string][]string{"Content-Type": nil}},
		{"denied_response without status: 403", false,
			denied(&authv3.DeniedHttpResponse{Headers: []*corev3.HeaderValueOption{unset("x-reason", "r")}}, codes.PermissionDenied),
			403, "", map[string][]string{"X-Reason": {"r"}}},
		{"any non-zero code is Denied, whatever the gRPC code", false,
			denied(&authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}}, codes.Internal),
			503, "", nil},
		{"append: true is dropped", false,
			denied(&authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Found}, Headers: []*corev3.HeaderValueOption{
				unset("location", "/x"), appendFlag("set-cookie", "lost=1", true),
			}}, codes.Unauthenticated),
			302, "", map[string][]string{"Location": {"/x"}, "Set-Cookie": nil}},
		{"append: true is dropped on older code too", true,
			denied(&authv3.DeniedHttpResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode_Found}, Headers: []*corev3.HeaderValueOption{
				unset("location", "/x"), appendFlag("set-cookie", "lost=1", true),
			}}, codes.Unauthenticated),
			302, "", map[string][]string{"Location": {"/x"}, "Set-Cookie": nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fa := startFakeAuthz(t, tc.respond)
			up := startUpstream(t)
			srv := startProxy(t, Config{StatusOnError: 500, LegacyAppend: tc.legacy}, fa, up)
			resp, body := newClient(t).do(t, "GET", srv.URL, "/app", nil, "")
			if resp.StatusCode != tc.status || body != tc.body {
				t.Errorf("status %d body %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			for k, w := range tc.want {
				if diff := cmp.Diff(w, resp.Header.Values(k)); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("a denied request reached the upstream %d times", n)
			}
		})
	}
}

// TestCheckErrors: the Error outcome (docs/envoy.md#errors-and-failure_mode_allow).
func TestCheckErrors(t *testing.T) {
	t.Parallel()
	rpcError := func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return nil, status.Error(codes.PermissionDenied, "denied the wrong way")
	}
	hang := func(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	errorResponse := func(code typev3.StatusCode) func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
		return func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
			return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.Unavailable)},
				HttpResponse: &authv3.CheckResponse_ErrorResponse{ErrorResponse: &authv3.DeniedHttpResponse{
					Status: &typev3.HttpStatus{Code: code}, Body: "store down\n",
					Headers: []*corev3.HeaderValueOption{unset("retry-after", "5")},
				}}}, nil
		}
	}
	tests := []struct {
		name    string
		cfg     Config
		respond func(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error)
		// noServer points the proxy at a port nobody listens on.
		noServer bool
		status   int
		body     string
		upstream bool
	}{
		{"a gRPC error: status_on_error default 403", Config{}, rpcError, false, 403, "", false},
		{"a gRPC error with status_on_error 503", Config{StatusOnError: 503}, rpcError, false, 503, "", false},
		{"a gRPC error with failure_mode_allow: let through", Config{FailureModeAllow: true}, rpcError, false, 200, "upstream", true},
		{"timeout", Config{Timeout: 50 * time.Millisecond, StatusOnError: 504}, hang, false, 504, "", false},
		{"timeout with failure_mode_allow", Config{Timeout: 50 * time.Millisecond, FailureModeAllow: true}, hang, false, 200, "upstream", true},
		{"unreachable server", Config{StatusOnError: 503}, nil, true, 503, "", false},
		{"error_response with status and body", Config{}, errorResponse(typev3.StatusCode_ServiceUnavailable), false, 503, "store down\n", false},
		{"error_response without status: status_on_error", Config{StatusOnError: 502}, errorResponse(0), false, 502, "store down\n", false},
		{"error_response with failure_mode_allow", Config{FailureModeAllow: true}, errorResponse(typev3.StatusCode_ServiceUnavailable), false, 200, "upstream", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t)
			cfg := tc.cfg
			var fa *fakeAuthz
			if tc.noServer {
				cfg.AuthzTarget = closedPort(t)
			} else {
				fa = startFakeAuthz(t, tc.respond)
			}
			srv := startProxy(t, cfg, fa, up)
			resp, body := newClient(t).do(t, "GET", srv.URL, "/app", http.Header{"X-User": {"mallory"}}, "")
			if resp.StatusCode != tc.status || body != tc.body {
				t.Errorf("status %d body %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if got := len(up.requests()) == 1; got != tc.upstream {
				t.Fatalf("reached the upstream: %v, want %v", got, tc.upstream)
			}
			if tc.upstream && up.only(t).Header.Get("X-User") != "mallory" {
				t.Error("failure_mode_allow must pass the request unchanged")
			}
			if !tc.upstream && tc.body == "" && resp.Header.Get("Content-Type") != "" {
				t.Errorf("an empty local reply has content-type %q", resp.Header.Get("Content-Type"))
			}
			if tc.body == "store down\n" && resp.Header.Get("Retry-After") != "5" {
				t.Errorf("error_response header lost: %v", resp.Header)
			}
		})
	}
}

// TestUpstreamDown: the router's 503 when the upstream refuses.
func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	fa := startFakeAuthz(t, okResponse(&authv3.OkHttpResponse{ResponseHeadersToAdd: []*corev3.HeaderValueOption{unset("set-cookie", "a=1")}}))
	srv := startProxy(t, Config{Routes: []Route{{Prefix: "/", Upstream: mustURL(t, "http://"+closedPort(t))}}}, fa, nil)
	resp, body := newClient(t).do(t, "GET", srv.URL, "/", nil, "")
	if resp.StatusCode != 503 || body == "" || resp.Header.Get("Set-Cookie") != "a=1" {
		t.Errorf("status %d body %q set-cookie %q, want 503 with a body and the added header", resp.StatusCode, body, resp.Header.Get("Set-Cookie"))
	}
}
