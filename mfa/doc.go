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
//	POST {prefix}factors                      reset the authenticator
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
// Provider "any" offers every factor the user has or may enrol (today the
// authenticator app and its recovery codes); "google-authenticator" offers
// the same: recovery codes are the authenticator's own fallback, as in
// Auth0, and without them a lost phone needs an administrator. "duo" and
// rules' redirects are not served yet: the user sees a clear page.
//
// On success the step consumes the state (exactly once), sets the MFA
// session cookie, sets the remember-browser cookie when the user ticked the
// box and the rule allows it (the box is offered only then, and a forged
// field is ignored otherwise), and answers 303 to the state's return URL,
// when [SafeReturnURL] accepts it for the request's host, else to "/".
//
// # Defences
//
//   - Every response: a strict Content-Security-Policy (no script at all,
//     the one inline style block allowed by its hash, images only from
//     data: URIs, form-action 'self', frame-ancestors 'none'),
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
// # Text
//
// Every word shown to users lives in messages.go, keyed by id, so that it
// can be translated with [Options.Messages].
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
