package envoyproxy

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// stream is one downstream request as Envoy's filters see it: the
// pseudo-headers apart, and the header map after the HCM's mutations.
type stream struct {
	// id is Envoy's stream id (request.http.id, docs/envoy.md#fields).
	id    uint64
	start time.Time
	// The pseudo-headers (docs/envoy.md#fields). path is :path with the query,
	// exactly as received (not decoded, not normalized).
	method, authority, path, scheme string
	// protocol is "HTTP/1.0", "HTTP/1.1" or "HTTP/2".
	protocol string
	// peer is the TCP peer (attributes.source); local is the address the
	// request arrived on (attributes.destination).
	peer, local netip.AddrPort
	// header holds the request headers (canonical keys), as mutated by
	// the HCM, jwt_authn and ext_authz in turn. They go upstream.
	header http.Header
	route  *Route
	// jwtPayload is jwt_authn's verified payload (nil: no token).
	jwtPayload *structpb.Struct
	// body is the buffered request body (with_request_body); bodyRead
	// says whether buffering happened at all.
	body     []byte
	bodyRead bool
	// partial: the body was longer than max_request_bytes.
	partial bool
	// resp are response header mutations to apply to the upstream's
	// response (response_headers_to_add).
	resp []mutation
}

// isHTTP2 reports whether the downstream protocol is HTTP/2 or later.
func (s *stream) isHTTP2() bool {
	return strings.HasPrefix(s.protocol, "HTTP/2") || s.protocol == "HTTP/3"
}

// Headers that the HCM removes from every request before the filters run
// (conn_manager_utility.cc: connection-specific headers).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

// Headers the HCM strips from requests that are not internal, also when
// Envoy is not at the edge (cleanInternalHeaders in
// conn_manager_utility.cc).
var envoyControlHeaders = []string{
	"X-Envoy-Internal",
	"X-Envoy-Retry-On", "X-Envoy-Retry-Grpc-On", "X-Envoy-Max-Retries",
	"X-Envoy-Upstream-Alt-Stat-Name", "X-Envoy-Upstream-Rq-Timeout-Ms",
	"X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms", "X-Envoy-Upstream-Rq-Timeout-Alt-Response",
	"X-Envoy-Expected-Rq-Timeout-Ms", "X-Envoy-Force-Trace", "X-Envoy-Ip-Tags",
}

// newStream reads the request line and the connection of r and applies the
// HCM's request-header mutations (docs/envoy.md#client-address, docs/envoy.md#headers-and-cookies).
//
// Every request counts as external: since Envoy 1.36 no address range is
// internal unless internal_address_config says so (docs/envoy.md#client-address), so the
// x-envoy-internal path is never taken. With use_remote_address every
// request is therefore an edge request.
func (p *Proxy) newStream(r *http.Request) *stream {
	s := &stream{
		id:        p.streamID(),
		start:     p.cfg.Now(),
		method:    r.Method,
		authority: r.Host,
		path:      requestPath(r),
		protocol:  protocolName(r),
		header:    make(http.Header, len(r.Header)+4),
	}
	// Header names are case-insensitive; Envoy's map is lowercase. Merge
	// any non-canonical spellings a handler-level caller may have used.
	for k, vs := range r.Header {
		ck := http.CanonicalHeaderKey(k)
		s.header[ck] = append(s.header[ck], vs...)
	}
	s.peer, _ = netip.ParseAddrPort(r.RemoteAddr)
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		s.local, _ = netip.ParseAddrPort(a.String())
	}
	h := s.header
	for _, k := range hopByHop {
		h.Del(k)
	}
	if te := h.Get("Te"); te != "" && !strings.EqualFold(strings.TrimSpace(te), "trailers") {
		h.Del("Te")
	}

	connScheme := "http"
	if r.TLS != nil {
		connScheme = "https"
	}
	xff := strings.Join(h.Values("X-Forwarded-For"), ",")
	var trusted netip.Addr
	edge := p.cfg.UseRemoteAddress
	if edge {
		// The trusted client address is taken from XFF *before* the peer
		// is appended.
		if n := p.cfg.XFFNumTrustedHops; n > 0 {
			trusted, _ = lastAddressFromXFF(xff, n-1)
		}
		if !trusted.IsValid() {
			trusted = s.peer.Addr()
		}
		appended := s.peer.Addr()
		if appended.IsLoopback() && p.cfg.LocalAddress.IsValid() {
			appended = p.cfg.LocalAddress
		}
		if appended.IsValid() {
			// A bare "," as Envoy's appendXff writes it (docs/envoy.md#client-address).
			if xff == "" {
				xff = appended.String()
			} else {
				xff += "," + appended.String()
			}
		}
		if p.cfg.XFFNumTrustedHops == 0 || h.Get("X-Forwarded-Proto") == "" {
			h.Set("X-Forwarded-Proto", connScheme)
		}
	}
	if xff != "" {
		h.Set("X-Forwarded-For", xff)
	}
	if h.Get("X-Forwarded-Proto") == "" {
		h.Set("X-Forwarded-Proto", connScheme)
	}
	// :scheme for HTTP/1 comes from x-forwarded-proto after sanitizing.
	s.scheme = connScheme
	if xfp := strings.ToLower(h.Get("X-Forwarded-Proto")); xfp == "http" || xfp == "https" {
		s.scheme = xfp
	}

	if edge {
		// Client-sent x-envoy-* headers never pass the edge.
		for k := range h {
			if strings.HasPrefix(k, "X-Envoy-") {
				delete(h, k)
			}
		}
	} else {
		for _, k := range envoyControlHeaders {
			h.Del(k)
		}
	}
	if edge && trusted.IsValid() {
		h.Set("X-Envoy-External-Address", trusted.String())
	}
	// Generated for every edge request, or when there is none.
	if edge || h.Get("X-Request-Id") == "" {
		h.Set("X-Request-Id", newUUID())
	}
	return s
}

// requestPath returns :path as the client sent it. An absolute-form
// request target (a request to a forward proxy) is reduced to its path and
// query, as Envoy's HTTP/1 codec does.
func requestPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") || r.RequestURI == "*" {
		return r.RequestURI
	}
	if r.URL != nil {
		return r.URL.RequestURI()
	}
	return "/"
}

func protocolName(r *http.Request) string {
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		return "HTTP/1.0"
	case r.ProtoMajor == 2:
		return "HTTP/2"
	case r.ProtoMajor == 3:
		return "HTTP/3"
	default:
		return "HTTP/1.1"
	}
}

// lastAddressFromXFF returns the address that is skip entries from the
// right of xff, as Envoy's Utility::getLastAddressFromXFF does: entries are
// separated by ",", surrounding spaces are ignored, and an entry that is
// not a bare IP address (a port, brackets, a name) yields no address.
func lastAddressFromXFF(xff string, skip int) (netip.Addr, bool) {
	if xff == "" {
		return netip.Addr{}, false
	}
	for range skip {
		i := strings.LastIndexByte(xff, ',')
		if i < 0 {
			return netip.Addr{}, false
		}
		xff = xff[:i]
	}
	if i := strings.LastIndexByte(xff, ','); i >= 0 && i+1 < len(xff) {
		xff = xff[i+1:]
	}
	a, err := netip.ParseAddr(strings.TrimSpace(xff))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// newUUID returns a random (version 4) UUID, as Envoy's x-request-id.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
