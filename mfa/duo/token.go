package duo

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Result is what Duo's id_token says about one authentication. Only
// Username and Outcome are checked; the rest is for logs and the session.
type Result struct {
	// Username is preferred_username: the user sent to Duo.
	Username string
	// Subject is the token's sub.
	Subject string
	// AuthTime is auth_time, or the zero time when absent.
	AuthTime time.Time
	// Outcome is auth_result.result: "allow" or "deny".
	Outcome string
	// Status is auth_result.status, such as "allow", "deny" or "fraud".
	Status string
	// StatusMessage is auth_result.status_msg, a message for humans.
	StatusMessage string
	// Factor is auth_context.factor, such as "duo_push" or "passcode".
	Factor string
	// Reason is auth_context.reason, such as "user_approved".
	Reason string
	// TxID is auth_context.txid, Duo's transaction id for its logs.
	TxID string
	// DeviceName is auth_context.auth_device.name.
	DeviceName string
	// AccessIP is auth_context.access_device.ip, the browser's address as
	// Duo saw it.
	AccessIP string
}

// Reasons an id_token is refused; each is wrapped with ErrInvalidToken.
var (
	errMalformed    = errors.New("malformed token")
	errSignature    = errors.New("bad signature or algorithm")
	errExpired      = errors.New("expired")
	errNotYetValid  = errors.New("issued in the future")
	errAudience     = errors.New("wrong audience")
	errIssuer       = errors.New("wrong issuer")
	errMissingClaim = errors.New("missing required claim")
	errUsername     = errors.New("preferred_username is not the user sent to duo")
	errNonce        = errors.New("nonce is not the one sent to duo")
)

// idTokenClaims is the part of Duo's id_token stepup reads. auth_context
// is decoded leniently: its shape is Duo's to change and nothing in it is
// checked.
type idTokenClaims struct {
	jwt.RegisteredClaims
	PreferredUsername *string     `json:"preferred_username"`
	Nonce             *string     `json:"nonce"`
	AuthTime          looseTime   `json:"auth_time"`
	AuthResult        *authResult `json:"auth_result"`
	AuthContext       struct {
		TxID       looseString `json:"txid"`
		Factor     looseString `json:"factor"`
		Reason     looseString `json:"reason"`
		AuthDevice struct {
			Name looseString `json:"name"`
		} `json:"auth_device"`
		AccessDevice struct {
			IP looseString `json:"ip"`
		} `json:"access_device"`
	} `json:"auth_context"`
}

type authResult struct {
	Result    *string     `json:"result"`
	Status    looseString `json:"status"`
	StatusMsg looseString `json:"status_msg"`
}

// looseString decodes a JSON string and ignores any other JSON value.
type looseString string

func (s *looseString) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if str, ok := v.(string); ok {
		*s = looseString(str)
	}
	return nil
}

// looseTime decodes a NumericDate and ignores any other JSON value or one
// out of range.
type looseTime time.Time

func (t *looseTime) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if f, ok := v.(float64); ok && f > 0 && f < 1<<40 {
		*t = looseTime(time.Unix(int64(f), 0).UTC())
	}
	return nil
}

// validateIDToken checks raw, the id_token from Duo's token endpoint, for
// username and, unless empty, nonce. It returns the Result whatever the
// outcome, or an error wrapping ErrInvalidToken.
func (c *Client) validateIDToken(raw, username, nonce string) (*Result, error) {
	var claims idTokenClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS512.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(ClockSkew),
		jwt.WithTimeFunc(c.now),
		jwt.WithIssuer(c.endpoint(tokenPath)),
		jwt.WithAudience(c.clientID),
	)
	_, err := parser.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS512 {
			return nil, jwt.ErrTokenUnverifiable
		}
		return c.secret, nil
	})
	if err != nil {
		return nil, invalid(classify(err))
	}
	switch {
	case claims.IssuedAt == nil:
		return nil, invalid(fmt.Errorf("%w: iat", errMissingClaim))
	case len(claims.Audience) != 1:
		return nil, invalid(errAudience)
	case claims.PreferredUsername == nil:
		return nil, invalid(fmt.Errorf("%w: preferred_username", errMissingClaim))
	case *claims.PreferredUsername != username:
		return nil, invalid(errUsername)
	case claims.AuthResult == nil || claims.AuthResult.Result == nil:
		return nil, invalid(fmt.Errorf("%w: auth_result.result", errMissingClaim))
	}
	if nonce != "" {
		if claims.Nonce == nil {
			return nil, invalid(fmt.Errorf("%w: nonce", errMissingClaim))
		}
		if subtle.ConstantTimeCompare([]byte(*claims.Nonce), []byte(nonce)) != 1 {
			return nil, invalid(errNonce)
		}
	}
	return &Result{
		Username:      *claims.PreferredUsername,
		Subject:       claims.Subject,
		AuthTime:      time.Time(claims.AuthTime),
		Outcome:       *claims.AuthResult.Result,
		Status:        string(claims.AuthResult.Status),
		StatusMessage: string(claims.AuthResult.StatusMsg),
		Factor:        string(claims.AuthContext.Factor),
		Reason:        string(claims.AuthContext.Reason),
		TxID:          string(claims.AuthContext.TxID),
		DeviceName:    string(claims.AuthContext.AuthDevice.Name),
		AccessIP:      string(claims.AuthContext.AccessDevice.IP),
	}, nil
}

func invalid(reason error) error { return fmt.Errorf("%w: %w", ErrInvalidToken, reason) }

// classify maps a golang-jwt error to the first matching reason, in order
// of severity.
func classify(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return errSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errMissingClaim
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errIssuer
	default:
		return fmt.Errorf("%w: %v", errMalformed, err)
	}
}
