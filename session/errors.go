package session

import "errors"

// Sentinel errors. Callers branch on them with [errors.Is]; the returned
// errors may wrap them with more context.
var (
	// ErrNotFound is returned by a [Store] when a key or record is missing,
	// expired or already consumed, and by [Manager.ConsumeState] when the
	// state was already used or has left the store.
	ErrNotFound = errors.New("not found")

	// ErrStoreUnavailable wraps every failure to reach or use a store's
	// backend (connection refused, timeout, closed store, I/O error). A
	// caller that sees it cannot decide and must fail closed.
	ErrStoreUnavailable = errors.New("session store unavailable")

	// ErrInvalidArgument is returned by a [Store] for an empty or
	// unrepresentable key, user, kind or id, or a non-positive TTL.
	ErrInvalidArgument = errors.New("invalid store argument")

	// ErrBadSignature is returned when a token's MAC does not verify, when a
	// sealed value fails authentication, or when a remember-browser device
	// token does not match the stored hash.
	ErrBadSignature = errors.New("bad signature")

	// ErrExpired is returned for a token past its expiry and for an MFA
	// session or remembered browser past its idle timeout.
	ErrExpired = errors.New("expired")

	// ErrWrongUser is returned when a valid token was issued to another user.
	ErrWrongUser = errors.New("issued to another user")

	// ErrWrongSession is returned by [Manager.VerifyMFASession] when the
	// identity carries an IdP session id and the MFA session was issued for
	// another one.
	ErrWrongSession = errors.New("issued for another identity provider session")

	// ErrWrongPurpose is returned when a valid token of one purpose is
	// presented as another (a state token as a remember cookie, say).
	ErrWrongPurpose = errors.New("token issued for another purpose")

	// ErrUnknownKey is returned when a token or sealed value names a key id
	// that is not (or no longer) in the key list.
	ErrUnknownKey = errors.New("unknown key id")

	// ErrMalformed is returned for a token or sealed value that is too large,
	// truncated, not in the expected format, or of an unknown version.
	ErrMalformed = errors.New("malformed token")

	// ErrRevoked is returned when a validly signed MFA session or
	// remembered-browser cookie no longer has its store record: it was
	// revoked (or the store lost it).
	ErrRevoked = errors.New("revoked")

	// ErrOutdated is returned for an MFA session or remembered browser
	// recorded before records named the factors and realm they prove: it
	// proves nothing, and the user passes MFA once more.
	ErrOutdated = errors.New("recorded by an older version: proves nothing")

	// ErrNoCookie is returned by the Verify methods for an empty value.
	ErrNoCookie = errors.New("no cookie")
)
