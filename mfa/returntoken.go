package mfa

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// maxReturnTokenLen bounds the token a custom MFA service returns.
const maxReturnTokenLen = 8192

// maxJTILen bounds a returned token's jti.
const maxJTILen = 256

// errReturnToken is wrapped by every refusal of a returned token.
var errReturnToken = errors.New("returned token refused")

// returnTokenClaims are the claims the step checks; the rest is left to
// the rules.
type returnTokenClaims struct {
	jwt.RegisteredClaims
	State *string `json:"state"`
}

// checkReturnToken verifies the token a custom MFA service sent back
// (parameter "token", else "id_token") for user and the state token. It
// returns a short reason for the log with an error wrapping
// errReturnToken, or a store error (session.ErrStoreUnavailable) when the
// jti cannot be claimed.
func (h *Handler) checkReturnToken(ctx context.Context, v *TokenVerification, query, form url.Values, user, state string) (string, error) {
	raw, ok := singleParam(query, form, "token")
	if ok && raw == "" {
		raw, ok = singleParam(query, form, "id_token")
	}
	switch {
	case !ok:
		return "repeated", fmt.Errorf("%w: token given more than once", errReturnToken)
	case raw == "":
		return "missing", fmt.Errorf("%w: no token or id_token", errReturnToken)
	case len(raw) > maxReturnTokenLen:
		return "too_large", fmt.Errorf("%w: token larger than %d bytes", errReturnToken, maxReturnTokenLen)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.Algorithms),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.Leeway),
		jwt.WithTimeFunc(h.now),
		jwt.WithIssuedAt(),
	}
	if v.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.Issuer))
	}
	if v.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.Audience))
	}
	var c returnTokenClaims
	if _, err := jwt.NewParser(opts...).ParseWithClaims(raw, &c, v.Keyfunc); err != nil {
		return tokenErrorReason(err), fmt.Errorf("%w: %w", errReturnToken, err)
	}
	if subtle.ConstantTimeCompare([]byte(c.Subject), []byte(user)) != 1 {
		return "subject", fmt.Errorf("%w: sub is not the user", errReturnToken)
	}
	if c.State == nil || subtle.ConstantTimeCompare([]byte(*c.State), []byte(state)) != 1 {
		return "state", fmt.Errorf("%w: state claim is not the transaction's", errReturnToken)
	}
	if c.ID == "" || len(c.ID) > maxJTILen {
		return "jti", fmt.Errorf("%w: jti missing or longer than %d bytes", errReturnToken, maxJTILen)
	}
	// Kept until the token can no longer be valid anyway.
	ttl := c.ExpiresAt.Sub(h.now()) + v.Leeway
	if ttl < time.Minute {
		ttl = time.Minute
	}
	fresh, err := h.store.PutIfAbsent(ctx, jtiKey(c.Issuer, c.ID), []byte("1"), ttl)
	if err != nil {
		return "store", err
	}
	if !fresh {
		return "replayed", fmt.Errorf("%w: jti already used", errReturnToken)
	}
	return "", nil
}

// jtiKey names a used token id, per issuer.
func jtiKey(iss, jti string) string {
	sum := sha256.Sum256([]byte("stepup mfa jti\x00" + iss + "\x00" + jti))
	return "mfa:jti:" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// tokenErrorReason names a parse failure for the log.
func tokenErrorReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing_claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not_yet_valid"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "audience"
	default:
		return "invalid"
	}
}
