package extauthz

import (
	"github.com/stepup-dev/stepup/session"

	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// Mode says which protocol a check arrived by.
type Mode string

// The protocols stepup answers.
const (
	ModeGRPC        Mode = "grpc"         // envoy.service.auth.v3.Authorization/Check
	ModeEnvoyHTTP   Mode = "envoy_http"   // Envoy's ext_authz http_service
	ModeForwardAuth Mode = "forward_auth" // Caddy forward_auth, nginx auth_request
)

// Request is a check normalized from any of the protocols: the only thing
// the decision core sees. Its maps belong to the caller's message and must
// not be modified.
type Request struct {
	Mode Mode
	// ID is x-request-id (for correlation); StreamID is Envoy's stream id.
	ID       string
	StreamID string
	Method   string
	Scheme   string
	Host     string // without port
	// HostPort is :authority as sent (may carry a port).
	HostPort string
	Path     string // without the query
	RawQuery string
	Protocol string
	// Headers are lowercase-keyed; repeated headers are joined with ','.
	Headers map[string]string
	// PeerIP is the direct peer: attributes.source.address in gRPC (the
	// downstream of Envoy), the TCP peer in HTTP modes.
	PeerIP netip.Addr
	// ClientIP is the client's address after the trusted-proxy walk, unmapped.
	ClientIP netip.Addr
	// ClientID names the application (context extension client_id, else
	// the host mapping, else the default client).
	ClientID          string
	ContextExtensions map[string]string
	// JWTPayload is jwt_authn's verified payload, if any.
	JWTPayload *structpb.Struct
}

// Header returns a header's value ("" when absent). name must be lowercase.
func (r *Request) Header(name string) string { return r.Headers[name] }

// Cookie returns the value of the named cookie. Cookie headers are split on
// both ';' and ',' (docs/envoy.md#headers-and-cookies: HTTP/1.1 requests with
// several Cookie lines reach ext_authz joined with ',').
func (r *Request) Cookie(name string) (string, bool) {
	return findCookie(r.Headers["cookie"], name)
}

func findCookie(h, name string) (string, bool) {
	for h != "" {
		var part string
		if i := strings.IndexAny(h, ";,"); i >= 0 {
			part, h = h[:i], h[i+1:]
		} else {
			part, h = h, ""
		}
		part = strings.TrimSpace(part)
		if len(part) > len(name) && part[len(name)] == '=' && part[:len(name)] == name {
			v := part[len(name)+1:]
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// URL returns the request's absolute URL as the browser sees it.
func (r *Request) URL() string {
	var b strings.Builder
	b.Grow(len(r.Scheme) + 3 + len(r.HostPort) + len(r.Path) + 1 + len(r.RawQuery))
	b.WriteString(r.Scheme)
	b.WriteString("://")
	b.WriteString(r.HostPort)
	b.WriteString(r.Path)
	if r.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(r.RawQuery)
	}
	return b.String()
}

// WantsHTML reports whether the client is a browser navigating (it accepts
// text/html and is not a script's fetch), so that a step-up is a 302
// rather than a 401 (docs/envoy.md#denied-responses).
func (r *Request) WantsHTML() bool {
	if r.Headers["x-requested-with"] != "" {
		return false
	}
	switch r.Headers["sec-fetch-mode"] {
	case "cors", "no-cors", "same-origin", "websocket":
		return false
	}
	return strings.Contains(r.Headers["accept"], "text/html")
}

// ErrBadRequest marks a check that cannot be decided because the request
// is malformed; it is answered with a denial (400), never an allow.
var ErrBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// Limits bound the size of what a check may carry.
type Limits struct {
	MaxHeaderBytes  int
	MaxHeadersBytes int
	MaxPathBytes    int
}

// fromCheckRequest normalizes an Envoy CheckRequest (docs/envoy.md#what-envoy-sends).
func (s *Server) fromCheckRequest(req *authv3.CheckRequest, r *Request) error {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return badRequest("check request has no attributes.request.http")
	}
	r.Mode = ModeGRPC
	r.Headers = h.GetHeaders()
	if r.Headers == nil {
		r.Headers = map[string]string{}
	}
	r.ID = r.Headers["x-request-id"] // first, so even a bad request's log line has it
	r.StreamID = h.GetId()
	r.Method = h.GetMethod()
	r.Scheme = h.GetScheme()
	r.Protocol = h.GetProtocol()
	r.HostPort = h.GetHost()
	path := h.GetPath()
	if r.Method == "" {
		r.Method = r.Headers[":method"]
	}
	if r.HostPort == "" {
		r.HostPort = r.Headers[":authority"]
	}
	if path == "" {
		path = r.Headers[":path"]
	}
	if r.Scheme == "" {
		r.Scheme = r.Headers[":scheme"]
	}
	if err := s.checkSizes(r.Headers, path); err != nil {
		return err
	}
	if err := r.setTarget(path); err != nil {
		return err
	}
	r.ID = r.Headers["x-request-id"]
	peer, err := socketAddr(attrs.GetSource().GetAddress().GetSocketAddress().GetAddress())
	if err != nil {
		return badRequest("attributes.source.address: %v", err)
	}
	r.PeerIP = peer
	r.ContextExtensions = attrs.GetContextExtensions()
	if ns := attrs.GetMetadataContext().GetFilterMetadata()[s.jwtNamespace]; ns != nil {
		if v := ns.GetFields()[s.jwtKey]; v != nil {
			if st := v.GetStructValue(); st != nil {
				r.JWTPayload = st
			} else {
				return badRequest("metadata %s.%s is not an object", s.jwtNamespace, s.jwtKey)
			}
		}
	}
	return s.finish(r, s.clientIP.trustEnvoyHeader)
}

// finish derives what every mode derives the same way: client IP and
// client id.
func (s *Server) finish(r *Request, trustEnvoyHeader bool) error {
	ip, err := s.clientIP.resolve(r, trustEnvoyHeader)
	if err != nil {
		return err
	}
	r.ClientIP = ip
	r.ClientID = r.ContextExtensions["client_id"]
	if r.ClientID == "" {
		r.ClientID = s.clients.hosts[r.Host]
	}
	if r.ClientID == "" {
		r.ClientID = s.clients.def
	}
	return nil
}

func (s *Server) checkSizes(headers map[string]string, path string) error {
	if len(path) > s.limits.MaxPathBytes {
		return badRequest("path is %d bytes, more than the limit of %d", len(path), s.limits.MaxPathBytes)
	}
	total := 0
	for k, v := range headers {
		if len(v) > s.limits.MaxHeaderBytes {
			return badRequest("header %.64q is %d bytes, more than the limit of %d", k, len(v), s.limits.MaxHeaderBytes)
		}
		total += len(k) + len(v)
	}
	if total > s.limits.MaxHeadersBytes {
		return badRequest("headers total %d bytes, more than the limit of %d", total, s.limits.MaxHeadersBytes)
	}
	return nil
}

// setTarget validates and splits :path and :authority.
func (r *Request) setTarget(path string) error {
	if r.HostPort == "" {
		return badRequest("request has no host (:authority)")
	}
	if !validHost(r.HostPort) {
		return badRequest("invalid host %.64q", r.HostPort)
	}
	r.Host = stripPort(r.HostPort)
	if r.Method == "" {
		return badRequest("request has no method")
	}
	switch r.Scheme {
	case "http", "https":
	case "":
		r.Scheme = "https"
	default:
		return badRequest("unsupported scheme %.16q", r.Scheme)
	}
	if path == "" || path[0] != '/' {
		return badRequest("path must start with '/'")
	}
	if i := strings.IndexByte(path, '#'); i >= 0 {
		path = path[:i]
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		r.Path, r.RawQuery = path[:i], path[i+1:]
	} else {
		r.Path = path
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c < 0x21 || c == 0x7f {
			return badRequest("path contains a control character or space")
		}
	}
	if hasDotSegment(r.Path) {
		return badRequest("path has a '.' or '..' segment (normalize paths at the proxy: normalize_path, merge_slashes)")
	}
	return nil
}

// Query parses the query string (lazily; malformed pairs are dropped the
// way url.ParseQuery drops them).
func (r *Request) Query() url.Values {
	q, _ := url.ParseQuery(r.RawQuery)
	return q
}

// validHost accepts a DNS name or IPv4 address with an optional port, or
// a bracketed IPv6 literal with an optional port.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	host, port := h, ""
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		if _, err := netip.ParseAddr(h[1:end]); err != nil {
			return false
		}
		rest := h[end+1:]
		if rest == "" {
			return true
		}
		if rest[0] != ':' {
			return false
		}
		return validPort(rest[1:])
	}
	if i := strings.IndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
		if !validPort(port) {
			return false
		}
	}
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// hasDotSegment reports whether a path, percent-decoded, has a "." or ".."
// segment, splitting on '/' and '\' (some applications treat a backslash
// or an encoded slash as a separator). Such a path could name one thing to
// stepup's prefix check and another to the application, so it is refused.
func hasDotSegment(p string) bool {
	if strings.IndexByte(p, '%') >= 0 {
		if d, err := url.PathUnescape(p); err == nil {
			p = d
		} else {
			return true // malformed escapes: refuse rather than guess
		}
	}
	seg := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' || p[i] == '\\' {
			if s := p[seg:i]; s == "." || s == ".." {
				return true
			}
			seg = i + 1
		}
	}
	return false
}

// stripPort returns the canonical host of a :authority (see
// session.CanonicalHost: lower case, no port, no trailing dot), the form
// every host comparison uses.
func stripPort(hp string) string { return session.CanonicalHost(hp) }

// socketAddr parses an address as Envoy writes it (no port), unmapping
// IPv4-mapped IPv6 and dropping a zone.
func socketAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, errors.New("missing")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid IP address %.64q", s)
	}
	return a.Unmap().WithZone(""), nil
}
