// Package session gives stepup its memory: the MFA session cookie, the
// remember-browser cookie, the single-use transaction state of redirects, the
// short-lived identity assertion handed to the MFA step, key rotation, sealing
// of secrets at rest, and the [Store] contract that the backends in the
// subpackages memstore, boltstore and redisstore implement.
//
// The package imports no other stepup package.
//
// # Tokens
//
// Every artefact handed to a browser is a token of the form
//
//	v1.<purpose>.<key id>.<base64url payload>.<base64url HMAC-SHA256>
//
// The MAC covers everything before the last dot, so the version, the purpose
// ("mfa_session", "remember", "state", "assertion"), the key id and the
// payload are all authenticated. The payload is JSON carrying at least the
// user and the issue and expiry times. Tokens longer than [MaxTokenSize] are
// rejected before any work is done; MACs are compared in constant time.
// A token of one purpose presented as another is rejected with
// [ErrWrongPurpose] even though its MAC is valid.
//
// # Keys and rotation
//
// A [Keyring] is built from a list of [Key]s. The FIRST key of the list
// signs; every key of the list verifies. To rotate without logging anyone
// out, put a new key in front of the list, wait for the longest lifetime
// (the remember-browser TTL), then drop the old key. A token signed by a key
// that has been removed fails with [ErrUnknownKey]. The HMAC and AES keys are
// derived from a key's secret with HKDF-SHA256 under distinct labels, so one
// list may serve both the [Keyring] and the [Sealer].
//
// # The MFA session
//
// [Manager.IssueMFASession] records that user U (and IdP session S when the
// identity token carries sid) passed MFA at time T with method M. The cookie
// names a store record of kind [KindMFA], so sessions can be listed and
// revoked. It expires after [Config.MFASessionTTL] (default 12 h) and after
// [Config.MFASessionIdle] without use (default 1 h). The record's last-seen
// time is written at most once a minute, so the idle timeout is accurate to
// about a minute and the hot path is a single store read.
//
// # The remember-browser cookie
//
// [Manager.IssueRemember] creates a device: a random 32-byte token goes into
// the signed cookie together with the user and the device id; the store keeps
// only SHA-256 of the token plus its metadata (created, last used, a user
// agent summary such as "Chrome on Linux", expiry) under kind [KindDevice].
// Devices live [Config.RememberTTL] (default 30 days) and, like Auth0's
// remember-browser cookie, expire after [Config.RememberIdle] (default 7 days)
// without use; a negative RememberIdle turns the inactivity expiry off.
//
// # Transaction state
//
// [Manager.NewState] stores a [State] under a random id for [Config.StateTTL]
// (default 10 min) and returns a signed token naming it and its user.
// [Manager.ConsumeState] checks the signature, expiry and user from the token
// first, so a leaked link presented by another user fails with
// [ErrWrongUser] and stays usable by its rightful user; it then consumes the
// record atomically, so a state works exactly once. [Manager.LoadState]
// reads a state without consuming it, for a page that shows a form first.
//
// # Identity assertion
//
// [Manager.IssueAssertion] signs a short statement (default 2 min) of who
// the user is, which Check hands to the MFA step; it needs no store.
//
// # Cookies
//
// Cookies are HttpOnly, SameSite=Lax, Path=/, with Max-Age, and Secure with
// a "__Host-" name unless [Config.Development] is set. Their names come
// from [Manager.CookieNames]; [Manager.OwnsCookie] tells them apart so that
// they are never forwarded upstream.
//
// # Failing closed
//
// Every verification returns one of the sentinel errors below. Store
// failures are wrapped with [ErrStoreUnavailable]; callers deny with a
// 503-style reason when they see it. Rejections are logged at Debug (no
// cookie, expired) or Info (everything else) with the reason only, never the
// token.
package session
