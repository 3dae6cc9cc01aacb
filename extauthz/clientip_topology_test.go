package extauthz

import (
	"strings"
	"testing"
)

// TestEnvoyHeaderNeverWithHops: trusted hops mean a proxy in front of
// Envoy, which passes a client's own x-envoy-external-address; a server
// that would believe it is refused.
func TestEnvoyHeaderNeverWithHops(t *testing.T) {
	o := Options{TrustEnvoyExternalAddress: true, TrustedHops: 1}
	s := newTestServer(t, nil)
	o.Networks, o.Policy = s.nets, s.policy
	if _, err := New(o); err == nil || !strings.Contains(err.Error(), "x-envoy-external-address") {
		t.Fatalf("New with TrustEnvoyExternalAddress and TrustedHops = %v, want an error about x-envoy-external-address", err)
	}
}
