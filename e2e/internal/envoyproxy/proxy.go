package envoyproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Proxy is the emulated Envoy. It is an http.Handler: serve it with
// httptest.NewServer or an http.Server, and point clients at it.
//
// Not reproduced: HTTP-service ext_authz (only gRPC), TLS and client
// certificates, allowed_headers / disallowed_headers (all headers are
// sent), encode_raw_headers, internal_address_config (no request is
// internal), WebSocket and CONNECT upgrades, retries, gRPC-specific local
// replies, the access_token query parameter of jwt_authn, and
// clear_route_cache (the route is chosen once, before ext_authz, as with
// Envoy's default clear_route_cache: false). Header mutations that Envoy
// would only reject with validate_mutations: true (invalid names or
// values), and mutations of pseudo-headers or host, are answered 500 as
// validate_mutations does, because Go cannot forward them.
type Proxy struct {
	cfg       Config
	log       *slog.Logger
	conn      *grpc.ClientConn
	client    authv3.AuthorizationClient
	jwt       *jwtVerifier
	transport *http.Transport
	rp        *httputil.ReverseProxy
}

// New validates cfg and returns a proxy. The gRPC connection to stepup is
// made lazily by grpc-go; [Proxy.Close] releases it.
func New(cfg Config) (*Proxy, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if cfg.JWTAuthn != nil {
		if p.jwt, err = newJWTVerifier(*cfg.JWTAuthn, cfg.Now); err != nil {
			return nil, err
		}
	}
	if cfg.AuthzTarget != "" {
		target := cfg.AuthzTarget
		if !strings.Contains(target, "://") {
			target = "passthrough:///" + target
		}
		p.conn, err = grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("%w: authz target %q: %w", ErrConfig, cfg.AuthzTarget, err)
		}
		p.client = authv3.NewAuthorizationClient(p.conn)
	}
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	p.transport.Proxy = nil
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.upstreamError,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// Close closes the gRPC connection and idle upstream connections.
func (p *Proxy) Close() error {
	p.transport.CloseIdleConnections()
	if p.conn != nil {
		return p.conn.Close()
	}
	return nil
}

func (p *Proxy) streamID() uint64 { return rand.Uint64() }

type streamKey struct{}

// ServeHTTP runs one request through the HCM, jwt_authn, ext_authz and
// the router.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := p.newStream(r)
	logPath, _, _ := strings.Cut(s.path, "?")
	log := p.log.With("stream", strconv.FormatUint(s.id, 10), "method", s.method, "path", logPath)

	if p.jwt != nil {
		if err := p.jwt.verify(s); err != nil {
			var f *jwtFailure
			msg := "Jwt verification fails"
			if errors.As(err, &f) {
				msg = f.msg
			}
			log.Info("request", "outcome", "jwt_authn_denied")
			writeLocalReply(w, r, http.StatusUnauthorized, http.Header{"Www-Authenticate": {wwwAuthenticate(s)}}, msg)
			return
		}
	}

	s.route = p.match(s.path)
	if s.route == nil {
		log.Info("request", "outcome", "route_not_found")
		writeLocalReply(w, r, http.StatusNotFound, nil, "")
		return
	}
	log = log.With("route", s.route.Prefix)
	if s.route.DisableExtAuthz {
		log.Info("request", "outcome", "ext_authz_disabled")
		p.forward(w, r, s)
		return
	}

	if b := p.cfg.WithRequestBody; b != nil && r.Body != nil && r.Body != http.NoBody {
		if tooLarge := p.bufferBody(r, s, b); tooLarge {
			log.Info("request", "outcome", "payload_too_large")
			writeLocalReply(w, r, http.StatusRequestEntityTooLarge, nil, "")
			return
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
	resp, err := p.client.Check(ctx, p.checkRequest(s))
	cancel()
	p.apply(w, r, s, resp, err, log)
}

// match returns the first route whose prefix :path starts with.
func (p *Proxy) match(path string) *Route {
	for i := range p.cfg.Routes {
		if strings.HasPrefix(path, p.cfg.Routes[i].Prefix) {
			return &p.cfg.Routes[i]
		}
	}
	return nil
}

// bufferBody reads up to MaxRequestBytes of the body for the check and
// puts it back in front of the rest for the upstream. It reports whether
// the body is too large for a configuration without allow_partial_message.
func (p *Proxy) bufferBody(r *http.Request, s *stream, b *BodySettings) bool {
	limit := int64(b.MaxRequestBytes)
	buf, _ := io.ReadAll(io.LimitReader(r.Body, limit+1))
	partial := int64(len(buf)) > limit
	if partial && !b.AllowPartialMessage {
		return true
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
	if partial {
		buf = buf[:limit]
	}
	s.body, s.bodyRead, s.partial = buf, true, partial
	return false
}

// checkRequest builds the CheckRequest as check_request_utils.cc does
// (docs/envoy.md#what-envoy-sends).
func (p *Proxy) checkRequest(s *stream) *authv3.CheckRequest {
	headers := make(map[string]string, len(s.header)+4)
	for k, vs := range s.header {
		lk := strings.ToLower(k)
		if lk == "x-envoy-auth-partial-body" {
			continue // a client copy is dropped (docs/envoy.md#headers-and-cookies)
		}
		sep := ","
		if lk == "cookie" && s.isHTTP2() {
			// The HTTP/2 codec re-joins crumbled cookies (docs/envoy.md#headers-and-cookies).
			sep = "; "
		}
		headers[lk] = sanitizeUTF8(strings.Join(vs, sep))
	}
	headers[":authority"] = sanitizeUTF8(s.authority)
	headers[":method"] = s.method
	headers[":path"] = sanitizeUTF8(s.path)
	headers[":scheme"] = s.scheme
	if s.bodyRead {
		// Only in the check, not upstream (docs/envoy.md#request-body).
		headers["x-envoy-auth-partial-body"] = strconv.FormatBool(s.partial)
	}

	httpReq := &authv3.AttributeContext_HttpRequest{
		Id:       strconv.FormatUint(s.id, 10),
		Method:   s.method,
		Headers:  headers,
		Path:     headers[":path"],
		Host:     headers[":authority"],
		Scheme:   s.scheme,
		Protocol: s.protocol,
	}
	if s.bodyRead {
		httpReq.Size = int64(len(s.body))
		if p.cfg.WithRequestBody.PackAsBytes {
			httpReq.RawBody = s.body
		} else {
			// Not sanitized, as in Envoy: a body that is not UTF-8 makes
			// the RPC fail (proto3 strings must be UTF-8), which is the
			// Error outcome.
			httpReq.Body = string(s.body)
		}
	}
	ext := maps.Clone(p.cfg.VhostContextExtensions)
	if len(s.route.ContextExtensions) > 0 {
		if ext == nil {
			ext = map[string]string{}
		}
		maps.Copy(ext, s.route.ContextExtensions)
	}
	attrs := &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{
			Address: socketAddress(s.peer.Addr().String(), s.peer.Port()),
			Service: s.header.Get("X-Envoy-Downstream-Service-Cluster"),
		},
		Destination: &authv3.AttributeContext_Peer{Address: socketAddress(s.local.Addr().String(), s.local.Port())},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(s.start),
			Http: httpReq,
		},
		ContextExtensions: ext,
	}
	if s.jwtPayload != nil {
		attrs.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			JWTAuthnNamespace: {Fields: map[string]*structpb.Value{
				p.jwt.cfg.PayloadInMetadata: structpb.NewStructValue(s.jwtPayload),
			}},
		}}
	}
	return &authv3.CheckRequest{Attributes: attrs}
}

func socketAddress(addr string, port uint16) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// sanitizeUTF8 replaces every byte that is not part of valid UTF-8 with
// "!", as Envoy's MessageUtil::sanitizeUtf8String does.
func sanitizeUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteByte('!')
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// apply acts on the check's outcome (docs/envoy.md#what-envoy-does-with-the-answer): OK, Denied or Error.
func (p *Proxy) apply(w http.ResponseWriter, r *http.Request, s *stream, resp *authv3.CheckResponse, rpcErr error, log *slog.Logger) {
	if md := resp.GetDynamicMetadata(); md != nil {
		log = log.With("decision", md.GetFields()["decision"].GetStringValue(), "reason", md.GetFields()["reason"].GetStringValue())
	}
	if rpcErr != nil {
		// docs/envoy.md#errors-and-failure_mode_allow: a deadline, UNAVAILABLE, a handler error: Error.
		p.onError(w, r, s, nil, log.With("rpc_error", rpcErr.Error()))
		return
	}
	if code := resp.GetStatus().GetCode(); code != int32(codes.OK) {
		if er := resp.GetErrorResponse(); er != nil {
			// docs/envoy.md#errors-and-failure_mode_allow: error_response is the Error outcome with a body.
			p.onError(w, r, s, er, log)
			return
		}
		p.onDenied(w, r, resp.GetDeniedResponse(), log)
		return
	}
	// docs/envoy.md#headers-on-allow, OK. An empty CheckResponse{} lands here too (docs/envoy.md#errors-and-failure_mode_allow).
	ok := resp.GetOkResponse()
	reqMut, err := mutations(ok.GetHeaders(), p.cfg.LegacyAppend, false)
	if err == nil {
		s.resp, err = mutations(ok.GetResponseHeadersToAdd(), p.cfg.LegacyAppend, true)
	}
	if err != nil {
		log.Warn("request", "outcome", "ext_authz_invalid", "error", err.Error())
		writeLocalReply(w, r, http.StatusInternalServerError, nil, "")
		return
	}
	applyHeaders(s.header, reqMut)
	removeHeaders(s.header, ok.GetHeadersToRemove())
	if len(ok.GetQueryParametersToSet()) > 0 || len(ok.GetQueryParametersToRemove()) > 0 {
		set := make([]queryParam, 0, len(ok.GetQueryParametersToSet()))
		for _, q := range ok.GetQueryParametersToSet() {
			set = append(set, queryParam{q.GetKey(), q.GetValue()})
		}
		s.path = mutateQuery(s.path, set, ok.GetQueryParametersToRemove())
	}
	log.Info("request", "outcome", "ok")
	p.forward(w, r, s)
}

// onDenied sends the local reply of a Denied outcome (docs/envoy.md#denied-responses).
func (p *Proxy) onDenied(w http.ResponseWriter, r *http.Request, d *authv3.DeniedHttpResponse, log *slog.Logger) {
	status := http.StatusForbidden
	if c := int(d.GetStatus().GetCode()); c > 0 {
		status = c
	}
	ms, err := mutations(d.GetHeaders(), p.cfg.LegacyAppend, false)
	if err != nil || status < 200 || status > 599 {
		log.Warn("request", "outcome", "ext_authz_invalid", "status", status, "error", fmt.Sprint(err))
		writeLocalReply(w, r, http.StatusInternalServerError, nil, "")
		return
	}
	log.Info("request", "outcome", "denied", "status", status)
	writeLocalReply(w, r, status, localReplyHeaders(ms), d.GetBody())
}

// onError handles the Error outcome (docs/envoy.md#errors-and-failure_mode_allow): allowed
// unchanged with failure_mode_allow, else a local reply with
// status_on_error (or error_response's status), empty unless
// error_response has a body.
func (p *Proxy) onError(w http.ResponseWriter, r *http.Request, s *stream, er *authv3.DeniedHttpResponse, log *slog.Logger) {
	if p.cfg.FailureModeAllow {
		log.Info("request", "outcome", "failure_mode_allowed")
		p.forward(w, r, s)
		return
	}
	status := p.cfg.StatusOnError
	var h http.Header
	var body string
	if er != nil {
		if c := int(er.GetStatus().GetCode()); c > 0 {
			status = c
		}
		ms, err := mutations(er.GetHeaders(), p.cfg.LegacyAppend, false)
		if err != nil || status < 200 || status > 599 {
			log.Warn("request", "outcome", "ext_authz_invalid", "status", status, "error", fmt.Sprint(err))
			writeLocalReply(w, r, http.StatusInternalServerError, nil, "")
			return
		}
		h, body = localReplyHeaders(ms), er.GetBody()
	}
	log.Info("request", "outcome", "error", "status", status)
	writeLocalReply(w, r, status, h, body)
}

// writeLocalReply sends one of Envoy's own responses
// (sendLocalReply, source/common/http/utility.cc): a non-empty body gets
// content-length and, unless the headers name one, content-type:
// text/plain; an empty body has neither (docs/envoy.md#denied-responses).
func writeLocalReply(w http.ResponseWriter, r *http.Request, status int, h http.Header, body string) {
	out := w.Header()
	for k, vs := range h {
		out[k] = vs
	}
	if body != "" {
		if out.Get("Content-Type") == "" {
			out.Set("Content-Type", "text/plain")
		}
		out.Set("Content-Length", strconv.Itoa(len(body)))
	} else {
		out.Del("Content-Length")
		out.Del("Content-Type")
	}
	out.Set("Server", "envoy")
	w.WriteHeader(status)
	if body != "" && r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

// forward sends the stream to its route's upstream (the router filter).
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, s *stream) {
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), streamKey{}, s)))
}

// rewrite turns the stream into the upstream request: :path exactly as it
// now is, :authority as Host (no host rewrite), and the header map the
// filters produced. The router adds x-envoy-expected-rq-timeout-ms for its
// default 15 s route timeout.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	s := pr.In.Context().Value(streamKey{}).(*stream)
	u := s.route.Upstream
	path, query, _ := strings.Cut(s.path, "?")
	out := &url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: query}
	if strings.HasPrefix(path, "//") || !strings.HasPrefix(path, "/") {
		if pu, err := url.ParseRequestURI("/" + strings.TrimLeft(path, "/")); err == nil {
			out.Path, out.RawPath = pu.Path, pu.RawPath
		}
	} else {
		out.Opaque = path // sent as is: not cleaned, not re-encoded
	}
	pr.Out.URL = out
	pr.Out.Host = s.authority
	pr.Out.Header = s.header.Clone()
	pr.Out.Header.Set("X-Envoy-Expected-Rq-Timeout-Ms", "15000")
}

// modifyResponse applies response_headers_to_add to the upstream's
// response (encodeHeaders, docs/envoy.md#headers-on-allow) and sets Envoy's server header.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if s, ok := resp.Request.Context().Value(streamKey{}).(*stream); ok {
		applyResponseHeaders(resp.Header, s.resp)
	}
	resp.Header.Set("Server", "envoy")
	return nil
}

// applyResponseHeaders applies response header mutations in the order of
// ext_authz.cc's encodeHeaders: adds, then sets, then the conditional
// ones.
func applyResponseHeaders(h http.Header, ms []mutation) {
	applyInOrder(h, ms, opAdd, opSet, opAppend, opAddIfAbsent, opOverwriteIfExists)
}

// upstreamError is the router's local reply when the upstream cannot be
// reached.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, context.Canceled) {
		// The client went away; nothing to answer.
		return
	}
	p.log.Warn("upstream error", "error", err.Error())
	if s, ok := r.Context().Value(streamKey{}).(*stream); ok {
		applyResponseHeaders(w.Header(), s.resp)
	}
	var ne net.Error
	reason := "connection failure"
	if errors.As(err, &ne) && ne.Timeout() {
		reason = "timeout"
	}
	writeLocalReply(w, r, http.StatusServiceUnavailable, nil,
		"upstream connect error or disconnect/reset before headers. reset reason: "+reason)
}
