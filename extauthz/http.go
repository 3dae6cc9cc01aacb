package extauthz

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Paths of the HTTP check endpoints on stepup's HTTP port. They are not
// under the MFA prefix, so a proxy that routes the prefix to stepup never
// exposes them to browsers.
const (
	// EnvoyHTTPPath is the path_prefix for Envoy's http_service mode: Envoy
	// appends the original path to it.
	EnvoyHTTPPath = "/authz"
	// ForwardAuthPath is for Caddy forward_auth: the original request comes
	// in X-Forwarded-Method, -Proto, -Host and -Uri.
	ForwardAuthPath = "/forward-auth"
	// ForwardAuthNginxPath is for nginx auth_request, which turns any
	// status but 2xx, 401 and 403 into 500: redirects become 401 with
	// X-Stepup-Redirect.
	ForwardAuthNginxPath = "/forward-auth/nginx"
)

// RedirectHeader carries the redirect target in nginx mode.
const RedirectHeader = "x-stepup-redirect"

// RegisterHTTP mounts the HTTP check endpoints on mux.
func (s *Server) RegisterHTTP(mux *http.ServeMux) {
	mux.HandleFunc(EnvoyHTTPPath+"/", s.serveEnvoyHTTP)
	mux.HandleFunc(ForwardAuthPath, s.serveForwardAuth)
	mux.HandleFunc(ForwardAuthNginxPath, s.serveForwardAuth)
}

// serveEnvoyHTTP answers Envoy's http_service check: same method, path =
// prefix + original path and query; Envoy allows on 200 only, and passes
// any other status to the client as the denial.
func (s *Server) serveEnvoyHTTP(w http.ResponseWriter, hr *http.Request) {
	target := strings.TrimPrefix(hr.URL.RequestURI(), EnvoyHTTPPath)
	s.serveHTTPCheck(w, hr, ModeEnvoyHTTP, hr.Method, target, schemeOf(hr, ""), hr.Host)
}

// serveForwardAuth answers Caddy's forward_auth and nginx's auth_request.
// The original request is described by X-Forwarded-* (Caddy) or
// X-Original-* (nginx) headers.
func (s *Server) serveForwardAuth(w http.ResponseWriter, hr *http.Request) {
	method := first(hr.Header.Get("X-Forwarded-Method"), hr.Header.Get("X-Original-Method"))
	uri := first(hr.Header.Get("X-Forwarded-Uri"), hr.Header.Get("X-Original-Uri"))
	host := first(hr.Header.Get("X-Forwarded-Host"), hr.Host)
	s.serveHTTPCheck(w, hr, ModeForwardAuth, method, uri, schemeOf(hr, hr.Header.Get("X-Forwarded-Proto")), host)
}

func (s *Server) serveHTTPCheck(w http.ResponseWriter, hr *http.Request, mode Mode, method, target, scheme, host string) {
	start := s.now()
	var r Request
	var d Decision
	defer s.endCheck(hr.Context(), mode, &r, &d, start, func() { s.writeHTTPDecision(w, hr, mode, &d) })
	if !s.admit.enter(mode) {
		d = overloadedDecision()
		s.writeHTTPDecision(w, hr, mode, &d)
		return
	}
	defer s.admit.leave()
	if err := s.fromHTTP(hr, mode, method, target, scheme, host, &r); err != nil {
		d = badRequestDecision(err)
	} else {
		d = s.decideMode(hr.Context(), &r)
	}
	d.ID, d.DecisionID = r.ID, s.ids.next()
	s.writeHTTPDecision(w, hr, mode, &d)
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func schemeOf(hr *http.Request, forwarded string) string {
	if forwarded == "http" || forwarded == "https" {
		return forwarded
	}
	if p := hr.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		return p
	}
	return "https"
}

// fromHTTP normalizes an HTTP-mode check.
func (s *Server) fromHTTP(hr *http.Request, mode Mode, method, target, scheme, host string, r *Request) error {
	r.Mode = mode
	headers := make(map[string]string, len(hr.Header)+4)
	for k, vs := range hr.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	if err := s.checkSizes(headers, target); err != nil {
		return err
	}
	r.Headers = headers
	r.Method = method
	r.Scheme = scheme
	r.HostPort = host
	if err := r.setTarget(target); err != nil {
		return err
	}
	r.ID = headers["x-request-id"]
	peer, err := remoteAddr(hr.RemoteAddr)
	if err != nil {
		return badRequest("peer address: %v", err)
	}
	r.PeerIP = peer
	trustEnvoy := mode == ModeEnvoyHTTP && s.clientIP.trustEnvoyHeader
	if s.clientIP.isTrusted(peer) && headers["x-forwarded-for"] == "" && !(trustEnvoy && headers["x-envoy-external-address"] != "") {
		// A proxy on a trusted address that names no client: without
		// this check every such request would look like it came from
		// the proxy's own (often corporate) address.
		return badRequest("check from proxy %s carries no X-Forwarded-For", peer)
	}
	if mode == ModeEnvoyHTTP && s.clientIP.isTrusted(peer) {
		// Envoy's http_service has no context_extensions; a route can add
		// these headers instead (envoy/envoy-http.yaml). Envoy forwards
		// only allowed_headers plus headers_to_add, so the client cannot
		// set them. Forward-auth proxies copy every client header: never
		// there.
		for h, key := range routeHeaders {
			if v := headers[h]; v != "" {
				if r.ContextExtensions == nil {
					r.ContextExtensions = make(map[string]string, len(routeHeaders))
				}
				r.ContextExtensions[key] = v
			}
		}
	}
	return s.finish(r, trustEnvoy)
}

// routeHeaders are the headers a route of Envoy's HTTP mode sets for the
// context extensions it cannot send, by extension key.
var routeHeaders = map[string]string{
	"x-stepup-client-id":   "client_id",
	"x-stepup-mfa-max-age": "mfa_max_age",
	"x-stepup-mode":        "stepup_mode",
}

func remoteAddr(s string) (netip.Addr, error) {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid address %q", s)
	}
	return a.Unmap().WithZone(""), nil
}

// writeHTTPDecision writes a decision in an HTTP mode.
func (s *Server) writeHTTPDecision(w http.ResponseWriter, hr *http.Request, mode Mode, d *Decision) {
	h := w.Header()
	if d.Kind == Allow {
		for _, kv := range d.Headers {
			// Every copied header is always present (Caddy 2.6 writes a
			// placeholder for a missing one).
			h.Set(kv.Key, kv.Value)
		}
		if len(d.RemoveHeaders) > 0 && mode == ModeEnvoyHTTP {
			h.Set("x-envoy-auth-headers-to-remove", strings.Join(d.RemoveHeaders, ", "))
		}
		for _, c := range d.SetCookies {
			h.Add("set-cookie", c)
		}
		h.Set("cache-control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	status := d.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	if hr.URL.Path == ForwardAuthNginxPath && status == http.StatusFound {
		status = http.StatusUnauthorized
		h.Set(RedirectHeader, d.Location)
	}
	headers, body := deniedHeadersAndBody(d, status)
	for _, kv := range headers {
		h.Add(kv.Key, kv.Value)
	}
	if status >= 500 && mode == ModeEnvoyHTTP {
		// Envoy treats a 5xx from the authorization service as Error,
		// which failure_mode_allow could turn into an allow.
		// Fail closed regardless: answer 403.
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
