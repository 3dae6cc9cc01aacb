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
// user and the issue and expiry times (state tokens encrypt theirs: see
// "Transaction state"). Tokens longer than [MaxTokenSize] are rejected
// before any work is done; MACs are compared in constant time.
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
// derived from a key's secret with HKDF-SHA256 under distinct labels (the
// token MAC, the [Sealer], the transaction states), so one list may serve
// both the [Keyring] and the [Sealer].
//
// # The MFA session
//
// [Manager.IssueMFASession] records that user U (and IdP session S when the
// identity token carries sid) proved factors F1, F2… on realm R, each at
// its own time ([Grant], [Proof]); a factor counts only while its proof is
// younger than the session lifetime. Carrying the browser's current
// session ([Grant.Carry]) keeps what it proved on the same realm. Records
// written before sessions named their factors fail with [ErrOutdated]:
// they prove nothing. The cookie
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
// agent summary such as "Chrome on Linux", expiry, and the realm and
// second factors it stands in for) under kind [KindDevice].
// Devices live [Config.RememberTTL] (default 30 days) and, like Auth0's
// remember-browser cookie, can expire after [Config.RememberIdle] without
// use (Auth0 used 7 days); by default (zero) they have no inactivity expiry.
//
// # Transaction state
//
// [Manager.NewState] puts a [State] (return URL, client id, requirement,
// user, expiry, a random id) into the token itself, encrypted: the token's
// payload is AES-256-GCM under a key derived with HKDF-SHA256 from the
// signing key and the state's id, used for that one token, and the token's
// MAC covers the ciphertext. Making a state costs no store operation; the
// token cannot be read (the return URL and the user do not show) nor
// altered, and it lives [Config.StateTTL] (default 1 h). A state whose
// JSON exceeds [MaxEmbeddedStateSize] (a very long return URL) is stored
// under its id instead, and its token names it.
//
// [Manager.ConsumeState] checks the signature, purpose, expiry and user
// from the token first, without touching the store, so a leaked link
// presented by another user fails with [ErrWrongUser] and stays usable by
// its rightful user. It then uses the state up with the transaction's one
// store write: an atomic [Store.PutIfAbsent] of a "state-used:<id>" marker
// kept for at least the state's lifetime (a stored state's record is
// consumed atomically instead), so a state works exactly once, also across
// replicas sharing a store. [Manager.LoadState] reads a state without using
// it up, for a page that shows a form first; it refuses a used state.
// Rotation works as for every token: states sealed with a key stay valid
// while that key is listed.
//
// Exactly once holds only while the store keeps its markers: a marker lost
// (the memory store restarted, a Redis restarted without persistence,
// failed over before replicating it, or evicting keys under maxmemory)
// lets a used state work again, for its user, until it expires. Give Redis maxmemory-policy
// noeviction.
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
