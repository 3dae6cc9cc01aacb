// Package duo is stepup's client for the Duo Universal Prompt (Duo Web SDK
// v4, Duo's "OIDC Auth API"): the second factor a rule asks for with
// context.multifactor = {provider: 'duo', ikey, skey, host}. The rule's
// ikey, skey and host are Duo's client id (20 characters), client secret
// (40 characters) and API host.
//
// # The flow
//
//  1. [Client.HealthCheck] before sending anyone to Duo. It POSTs a client
//     assertion to https://{host}/oauth/v1/health_check; any failure wraps
//     [ErrUnavailable], and the caller fails closed (or offers another
//     factor if the operator allows it).
//  2. [Client.AuthURL] builds the 302 target: https://{host}/oauth/v1/authorize
//     with a request JWT (HS512 with the client secret) naming the user
//     (duo_uname), the redirect URI, the transaction state (22 to 1024
//     characters) and an optional nonce. The prompt cannot run in an iframe.
//  3. Duo sends the browser back to the redirect URI (stepup's
//     /.stepup/duo/callback) with state and duo_code; [ParseCallback] reads
//     them. The caller checks and consumes the state, which it owns.
//  4. [Client.Exchange] POSTs the code to https://{host}/oauth/v1/token with
//     a client assertion and validates the returned id_token: HS512 with the
//     client secret and nothing else, aud exactly the client id, iss the
//     token URL, exp and iat present and within 60 s of the injected clock,
//     preferred_username equal to the user sent to Duo, nonce equal when one
//     was sent, then auth_result.result == "allow" (else [ErrDenied]).
//
// Every network call is bounded by the caller's context and by
// [Config.Timeout], follows no redirect, reads at most 1 MiB, and only
// speaks HTTPS (URLs are always built as https://{host}/...). Errors never
// contain the client secret, an assertion, a code or a token; the package
// does not log.
//
// # Why not Duo's Go SDK
//
// Duo's Go SDK (duo_universal_golang v1.1.0) does not fit stepup, so this
// package implements the same documented protocol (same endpoints, claims,
// lifetimes and checks) on github.com/golang-jwt/jwt/v5:
//
//   - No context.Context anywhere, and its default http.Client has no
//     timeout: a call cannot be cancelled when the browser goes away or the
//     request deadline passes.
//   - Errors are flat strings, so a caller cannot tell "Duo is down" (fail
//     closed, maybe offer another factor) from "this code was refused or
//     replayed" or "the id_token is forged", and stepup's policy depends on
//     exactly that difference.
//   - No injectable clock, so skew and expiry cannot be tested
//     deterministically.
//   - id_token validation is looser: exp and iat are not required, the
//     nonce cannot be sent, and auth_result is left to the caller.
//   - Response bodies are read without a size limit.
//   - It brings a second JOSE stack next to golang-jwt.
//
// Certificate pinning (the SDK pins the Amazon and other public roots Duo
// uses) is available through [Config.RootCAs]; by default the system roots
// are used.
//
// # Testing
//
// Package duotest runs a fake Duo over TLS (httptest) that implements the
// three endpoints with its own small HS512 JWS code, so the client and the
// fake do not share a JWT implementation. Pass its [net/http.Client] as
// [Config.HTTPClient] (or its pool as [Config.RootCAs]) and its host as
// [Config.APIHost].
package duo
