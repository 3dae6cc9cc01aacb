// Package deploy holds the files that run stepup in production, and the
// tests that check them against the real schemas of the systems that read
// them:
//
//   - container/: the image's configuration and build-context script (the
//     Containerfile is at the repository's root);
//   - kubernetes/: stepup with Redis-shared sessions, decoded strictly into
//     the Kubernetes API types and checked against stepup's own
//     configuration validation, HTTP paths and listen ports;
//   - istio/: the extension provider and the CUSTOM AuthorizationPolicy,
//     decoded into Istio's API types;
//   - systemd/: the service unit, checked with `systemd-analyze verify`;
//   - prometheus/ and grafana/: alert rules (Prometheus' own rule-file
//     parser) and a dashboard, whose every metric must be one that a
//     running stepup exports.
//
// The package has no non-test code.
package deploy
