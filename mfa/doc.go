// Package mfa serves the MFA step: the web pages, under a reserved path
// prefix (default "/.stepup/") of every protected host, where a browser
// that Check stepped up enrols an authenticator app, proves it has it, may
// ask to be remembered, and goes back to where it was going.
//
// The package imports session only. cmd/stepup mounts [Handler] at the
// prefix on stepup's HTTP port; Envoy (or Caddy, nginx) routes the prefix
// there.
//
// # Who the user is
//
// The step does no primary login. Check allows every request under the
// prefix for an identified user and adds a short-lived signed identity
// assertion ([session.Manager.IssueAssertion]) in the header
// [AssertionHeader]; the step trusts nothing else (see [Options.Identify]
// for proxies that cannot carry it). Every request, GET or POST, is bound
// to the assertion's user: a transaction state of another user is refused
// and left unconsumed, so a leaked link never lets anyone else enrol a
// factor or obtain a session.
//
// # Pages
//
//	GET  {prefix}mfa?state=T                  enrol (first time) or verify
//	GET  {prefix}mfa?state=T&method=recovery  verify with a recovery code
//	POST {prefix}mfa                          method=enrol|totp|recovery
//	GET  {prefix}factors                      the user's sign-in methods
//	POST {prefix}mfa                          method=webauthn_enrol|webauthn
//	GET  {prefix}factors?confirm=A&id=I       confirm a removal
//	POST {prefix}factors                      action=reset|recovery_codes|webauthn_add|
//	                                          remove_totp|remove_passkey|forget_device
//	GET  {prefix}stepup.js                    the step's script
//	GET  {prefix}duo/callback?state=D&duo_code=C   back from Duo
//	GET|POST {prefix}continue?state=T         back from a custom MFA service
//
// Enrolment generates a TOTP secret (SHA-1, 6 digits, 30 s: what every
// authenticator app supports), shows it as a QR code (a PNG in a data: URI)
// and as text, and keeps it sealed in a pending record bound to the user
// and the state until one valid code confirms it. Ten recovery codes are
// then shown once; the store keeps only their salted SHA-256 (80 random
// bits each), one record per code, and a code is used up by deleting its
// record, which is atomic in every store.
//
// Verification accepts the current time step and one step either side. A
// code is refused when its step, or a later one, was already used by the
// user (a per-step marker written with PutIfAbsent), so an observed code
// cannot be replayed.
//
// Provider "any" offers every factor the user has or may enrol (the
// authenticator app, passkeys and recovery codes); "google-authenticator"
// offers the authenticator app and recovery codes only: recovery codes are the authenticator's own fallback, as in
// Auth0, and without them a lost phone needs an administrator.
//
// # Duo
//
// Provider "duo" uses the Duo Universal Prompt (package duo). The rule's
// ikey and host travel in the transaction state in plain; its skey
// travels sealed ([session.Sealer.SealOption], bound to the user), and is
// opened only to talk to Duo. When the rule allows remembering the
// browser, a "continue to Duo" page offers the box first (Duo's own
// remembered devices are Duo's business); otherwise the step goes
// straight to Duo. Before each redirect Duo's health check runs: when it
// fails the user gets a clear page and cannot go on (fail closed), unless
// Duo is down (no answer, 5xx or 429: not a refusal of the settings),
// [DuoOptions.Fallback] is [DuoFallbackTOTP] and the user has an
// authenticator app, which may then stand in for this transaction only;
// the session then proves the authenticator and the "duo-fallback" marker,
// and the browser is not remembered. The health check is stepup's own,
// bounded by the Duo timeout and independent of the browser's request: a
// browser that goes away during it changes nothing.
// The redirect carries a fresh random Duo state and nonce, kept in the
// store with our state token, the user and the Duo username (the rule's
// username, else the first of [DuoOptions.UsernameClaims]). The callback
// must come from the same user; it uses up that record and our state
// (exactly once), then redeems the code and checks the id_token
// (audience, issuer, username, nonce, expiry, auth_result) before issuing
// the MFA session proving "duo".
//
// # Custom MFA services (Auth0's redirect protocol)
//
// A rule's context.redirect sends the browser to the service with
// state=T; the service sends it back to {prefix}continue with the same
// state (GET, or POST with a form). The state must be the user's and a
// redirect's; it is used up first. When [RedirectOptions.Verify] is set,
// the callback must carry a signed "token" (or "id_token") whose sub is
// the user, whose "state" claim is T, unexpired, with a jti never seen
// before. Then [Continuer] re-runs the whole pipeline with
// context.protocol "redirect-callback" and the query and form as
// context.request.query and .body: an error denies with the rule's
// message; success adds to the browser's MFA session exactly what the
// state says its completion proves: the factor of a declared custom MFA
// service ("redirect:<name>"), or for any other redirect only its
// completion, which satisfies that redirect on later requests and meets
// no MFA requirement. A callback is
// cross-site by nature: it carries no CSRF token; the user binding, the
// single use of the state and the token are its defences.
//
// A state completes only on the host it was made for (its canonical host
// is sealed in it): elsewhere the step refuses it with a clear page and
// sets nothing. On success the step consumes the state (exactly once),
// sets the MFA session cookie (a new session id, carrying what the
// browser's current session proves on the same realm), sets the remember-browser cookie when the user ticked the
// box and the rule allows it (the box is offered only then, and a forged
// field is ignored otherwise), and answers 303 to the state's return URL,
// when [SafeReturnURL] accepts it for the request's host, else to "/".
//
// # Defences
//
//   - Every response: a strict Content-Security-Policy (no script at all,
//     the one inline style block allowed by its hash, images only from
//     data: URIs, form-action 'self', frame-ancestors 'none'); the pages
//     that run a WebAuthn ceremony, and the recovery codes page, add
//     script-src 'self' for the step's one script, {prefix}stepup.js
//     (loaded with Subresource Integrity; no inline script anywhere),
//     Cache-Control: no-store, nosniff, no referrer, X-Frame-Options DENY.
//   - Every POST: a CSRF token signed with the session keyring (purpose
//     "csrf") bound to the user, the state and the form; Origin and
//     Sec-Fetch-Site are checked when the browser sends them.
//   - Brute force: wrong codes are counted per user and per client address
//     in the store; past a threshold each further failure pauses
//     verification for twice as long as the last, up to a maximum (see
//     [RateLimits]). A success clears the user's count. Pauses are shown in
//     plain words, counted in metrics and logged, without the codes.
//   - TOTP secrets are sealed at rest with [session.Sealer], bound to the
//     user ("totp:" + user as associated data); a secret sealed with an
//     older key is sealed again with the newest key on its next use.
//   - An optional policy ([Options.EnrollNetworks]) allows a first
//     enrolment only from named networks, taken from the assertion.
//
// # Passkeys
//
// WebAuthn credentials (package github.com/go-webauthn/webauthn) are a
// first factor to enrol next to the authenticator app, or added from the
// factors page; see [WebAuthnOptions]. A page that runs a ceremony keeps
// its challenge in the store (bound to the user and the state, or the
// factors page, single use) and puts the options in the form; the script
// runs the ceremony and posts the answer with the form. A verified
// credential proves "webauthn-platform" or "webauthn-roaming". The step
// offers only the factors the requirement accepts
// ([session.FactorMeets]).
//
// # Text
//
// Every word shown to users lives in messages.go (English) and
// messages_de.go (German), keyed by id; the language follows
// Accept-Language; [Options.Messages] and [Options.Translations] replace
// texts or add languages; [Options.Brand] sets the organisation's name,
// logo and accent colour.
//
// # Storage
//
// The authenticator is the per-user record (user, [KindFactor], "totp");
// recovery codes are records of [KindRecoveryCode]. [ResetFactors] removes
// both and revokes the user's MFA sessions and remembered browsers; it
// backs both the factors page and `stepup factors reset`. Counters,
// pending enrolments and used-step markers are plain keys starting with
// "mfa:", named by a hash of the user.
package mfa
