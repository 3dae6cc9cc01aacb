package extauthz

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/protobuf/types/known/structpb"
)

// Identity is the user behind a request, from the primary login.
type Identity struct {
	// User is the configured user claim (default sub).
	User  string
	Email string
	// SID is the IdP session id ("sid" claim), when present.
	SID string
	// Source is jwt_authn, header or jwt.
	Source string
	// claims is the full claim set, materialized on demand.
	claims  map[string]any
	payload *structpb.Struct
}

// Claims returns every claim as plain Go values (numbers are float64, as
// in JSON). The map is built once per identity and must not be modified.
func (id *Identity) Claims() map[string]any {
	if id.claims == nil && id.payload != nil {
		id.claims = id.payload.AsMap()
	}
	if id.claims == nil {
		id.claims = map[string]any{}
	}
	return id.claims
}

// errNoIdentity: no source produced a user.
var errNoIdentity = errors.New("no identity")

// errInvalidToken: a token was presented but did not verify.
var errInvalidToken = errors.New("invalid identity token")

// IdentityOptions configure where identities come from.
type IdentityOptions struct {
	// JWTAuthn enables reading Envoy's jwt_authn payload (gRPC only).
	JWTAuthn bool
	// UserClaim is the claim naming the user (default "sub").
	UserClaim string
	// Header, when set, is a header carrying the user from a trusted
	// proxy; it is believed only when the direct peer is in HeaderPeers.
	Header      string
	EmailHeader string
	HeaderPeers []netip.Prefix
	// Keyfunc, when set, verifies bearer and cookie JWTs.
	Keyfunc    jwt.Keyfunc
	Issuer     string
	Audiences  []string
	Algorithms []string
	Leeway     time.Duration
	Cookie     string
	Bearer     bool
	// Now is the clock for token expiry (default time.Now).
	Now func() time.Time
}

type identifier struct {
	opts   IdentityOptions
	parser *jwt.Parser
}

func newIdentifier(o IdentityOptions) *identifier {
	if o.UserClaim == "" {
		o.UserClaim = "sub"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	id := &identifier{opts: o}
	if o.Keyfunc != nil {
		popts := []jwt.ParserOption{
			jwt.WithValidMethods(o.Algorithms),
			jwt.WithIssuer(o.Issuer),
			jwt.WithLeeway(o.Leeway),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(o.Now),
		}
		if len(o.Audiences) > 0 {
			popts = append(popts, jwt.WithAudience(o.Audiences...))
		}
		id.parser = jwt.NewParser(popts...)
	}
	return id
}

// identify finds the user of r. It returns errNoIdentity when no source has
// one, and an errInvalidToken-wrapped error when a presented token is bad.
func (i *identifier) identify(ctx context.Context, r *Request) (*Identity, error) {
	o := &i.opts
	if o.JWTAuthn && r.JWTPayload != nil {
		id := &Identity{Source: "jwt_authn", payload: r.JWTPayload}
		f := r.JWTPayload.GetFields()
		id.User = f[o.UserClaim].GetStringValue()
		id.Email = f["email"].GetStringValue()
		id.SID = f["sid"].GetStringValue()
		if id.User == "" {
			return nil, fmt.Errorf("%w: jwt_authn payload has no %q claim", errInvalidToken, o.UserClaim)
		}
		return id, nil
	}
	if o.Header != "" {
		if v := strings.TrimSpace(r.Headers[o.Header]); v != "" && i.peerTrusted(r.PeerIP) {
			id := &Identity{Source: "header", User: v}
			if o.EmailHeader != "" {
				id.Email = strings.TrimSpace(r.Headers[o.EmailHeader])
			}
			id.claims = map[string]any{o.UserClaim: v}
			if id.Email != "" {
				id.claims["email"] = id.Email
			}
			return id, nil
		}
	}
	if i.parser != nil {
		tok := ""
		if o.Bearer {
			if h := r.Headers["authorization"]; len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
				tok = strings.TrimSpace(h[7:])
			}
		}
		if tok == "" && o.Cookie != "" {
			tok, _ = r.Cookie(o.Cookie)
		}
		if tok != "" {
			return i.verify(ctx, tok)
		}
	}
	return nil, errNoIdentity
}

func (i *identifier) peerTrusted(a netip.Addr) bool {
	for _, p := range i.opts.HeaderPeers {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (i *identifier) verify(_ context.Context, tok string) (*Identity, error) {
	if len(tok) > 16<<10 {
		return nil, fmt.Errorf("%w: token too large", errInvalidToken)
	}
	claims := jwt.MapClaims{}
	if _, err := i.parser.ParseWithClaims(tok, claims, i.opts.Keyfunc); err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidToken, err)
	}
	id := &Identity{Source: "jwt", claims: claims}
	id.User, _ = claims[i.opts.UserClaim].(string)
	id.Email, _ = claims["email"].(string)
	id.SID, _ = claims["sid"].(string)
	if id.User == "" {
		return nil, fmt.Errorf("%w: token has no %q claim", errInvalidToken, i.opts.UserClaim)
	}
	return id, nil
}
