// Package envoy holds example proxy configurations for stepup and the tests that
// validate them offline.
//
// The files next to this one are meant to be copied and adapted by operators:
//
//   - envoy.yaml: Envoy in gRPC ext_authz mode (jwt_authn, then ext_authz, then the
//     router), plaintext to stepup on loopback.
//   - envoy-mtls.yaml: the same with mutual TLS (ALPN h2) between Envoy and stepup.
//   - envoy-http.yaml: Envoy's HTTP ext_authz mode (http_service, path_prefix /authz)
//     against stepup's HTTP port.
//   - envoy-oauth2.yaml: users sign in at Envoy (the OAuth2 filter, OpenID Connect);
//     jwt_authn verifies the ID token from the filter's IdToken cookie, and ext_authz
//     passes its claims to stepup.
//   - Caddyfile: Caddy's forward_auth against stepup's /forward-auth.
//   - nginx.conf: an nginx auth_request server block against stepup's
//     /forward-auth/nginx, with the 401 detour that nginx needs to send a browser to the
//     MFA step.
//
// stepup's HTTP port (127.0.0.1:9192) serves the MFA step under /.stepup/ and, outside
// that prefix, its decision endpoints (/authz/, /forward-auth, /forward-auth/nginx),
// /healthz, /readyz and /metrics. Every example routes only /.stepup/ to stepup, without
// rewriting it, so the others are never reachable from the internet.
//
// No Envoy binary can be installed where stepup is built, so validate_test.go decodes
// every envoy*.yaml strictly with go-control-plane, runs protoc-gen-validate on the
// bootstrap and on every message packed in a google.protobuf.Any, and re-implements the
// load-time checks that Envoy makes and PGV cannot express (docs/envoy.md#checking-the-example-configurations), plus
// stepup's own rules: fail closed; the reserved /.stepup/ prefix routed to stepup with
// ext_authz kept on and nothing else routed to stepup; readiness health checks; access
// logs that read only the metadata stepup writes; and the header lists of HTTP mode.
// proxies_test.go parses the Caddy and nginx files into directive trees, checks the same
// rules there (/.stepup/ too goes through forward_auth or auth_request, which hands the
// MFA step stepup's identity assertion over any client-sent copy), and runs `caddy adapt --validate` and `nginx -t` when the binaries are
// installed.
//
// The package has no non-test code.
package envoy
