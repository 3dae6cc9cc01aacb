package envoyproxy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/types/known/structpb"
)

// JWTAuthnNamespace is the dynamic-metadata namespace jwt_authn writes
// its payload to; it is hard-coded in Envoy (docs/envoy.md#claims-from-jwt_authn).
const JWTAuthnNamespace = "envoy.filters.http.jwt_authn"

// jwtVerifier is a configured jwt_authn provider.
type jwtVerifier struct {
	cfg     JWTAuthn
	keyfunc jwt.Keyfunc
	parser  *jwt.Parser
}

func newJWTVerifier(c JWTAuthn, now func() time.Time) (*jwtVerifier, error) {
	v := &jwtVerifier{cfg: c, keyfunc: c.Keyfunc}
	if v.keyfunc == nil {
		kf, err := keyfunc.NewJWKSetJSON(c.JWKS)
		if err != nil {
			return nil, fmt.Errorf("%w: jwt_authn: local_jwks: %w", ErrConfig, err)
		}
		v.keyfunc = kf.Keyfunc
	}
	if v.cfg.PayloadInMetadata == "" {
		v.cfg.PayloadInMetadata = "jwt_payload"
	}
	if v.cfg.ClockSkew == 0 {
		v.cfg.ClockSkew = 60 * time.Second
	}
	if len(v.cfg.FromCookies) == 0 && !v.cfg.FromBearer {
		v.cfg.FromBearer = true
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
			"ES256", "ES384", "ES512", "HS256", "HS384", "HS512", "EdDSA"}),
		jwt.WithTimeFunc(now),
		jwt.WithLeeway(v.cfg.ClockSkew),
	)
	return v, nil
}

// jwtFailure is jwt_authn's rejection of a token: the local reply's body
// is Envoy's status text.
type jwtFailure struct{ msg string }

func (e *jwtFailure) Error() string { return e.msg }

// token is one extracted JWT and where it came from.
type token struct {
	value      string
	fromHeader bool
}

// extract finds the tokens of a request in Envoy's order: headers first,
// then cookies.
func (v *jwtVerifier) extract(h http.Header) []token {
	var out []token
	if v.cfg.FromBearer {
		for _, a := range h.Values("Authorization") {
			if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
				if t := strings.TrimSpace(a[7:]); t != "" {
					out = append(out, token{value: t, fromHeader: true})
				}
			}
		}
	}
	if len(v.cfg.FromCookies) > 0 {
		r := http.Request{Header: h}
		for _, c := range r.Cookies() {
			if slices.Contains(v.cfg.FromCookies, c.Name) && c.Value != "" {
				out = append(out, token{value: c.Value})
			}
		}
	}
	return out
}

// verify runs jwt_authn on the stream with allow_missing: no token leaves
// the stream alone; every token found must verify, and the first one's
// payload becomes the metadata. A token taken from the Authorization
// header is removed unless Forward is set.
func (v *jwtVerifier) verify(s *stream) error {
	toks := v.extract(s.header)
	if len(toks) == 0 {
		return nil
	}
	var payload *structpb.Struct
	for _, t := range toks {
		p, err := v.verifyOne(t.value)
		if err != nil {
			return err
		}
		if payload == nil {
			payload = p
		}
	}
	if !v.cfg.Forward && slices.ContainsFunc(toks, func(t token) bool { return t.fromHeader }) {
		s.header.Del("Authorization")
	}
	s.jwtPayload = payload
	return nil
}

func (v *jwtVerifier) verifyOne(raw string) (*structpb.Struct, error) {
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, &jwtFailure{"Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"}
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, &jwtFailure{"Jwt is expired"}
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return nil, &jwtFailure{"Jwt not yet valid"}
	default:
		return nil, &jwtFailure{"Jwt verification fails"}
	}
	if v.cfg.Issuer != "" {
		if iss, _ := claims["iss"].(string); iss != v.cfg.Issuer {
			return nil, &jwtFailure{"Jwt issuer is not configured"}
		}
	}
	if len(v.cfg.Audiences) > 0 {
		auds, _ := claims.GetAudience()
		if !slices.ContainsFunc(auds, func(a string) bool { return slices.Contains(v.cfg.Audiences, a) }) {
			return nil, &jwtFailure{"Audiences in Jwt are not allowed"}
		}
	}
	// Numbers arrive as float64, as in Envoy's Struct (docs/envoy.md#claims-from-jwt_authn).
	payload, err := structpb.NewStruct(claims)
	if err != nil {
		return nil, &jwtFailure{"Jwt verification fails"}
	}
	return payload, nil
}

// wwwAuthenticate is the challenge jwt_authn sends with its 401.
func wwwAuthenticate(s *stream) string {
	p := s.path
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	return `Bearer realm="` + s.scheme + "://" + s.authority + p + `", error="invalid_token"`
}
