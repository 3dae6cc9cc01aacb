package config

import (
	"strings"
	"testing"
)

// TestClientIPTopologies: x-envoy-external-address is believed only when
// Envoy is the edge. trusted_hops says a proxy stands in front of Envoy and
// may pass a client's own copy of the header, so the two never combine:
// unset, the header is not believed; set to true, the file is refused.
func TestClientIPTopologies(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		wantTrust bool
		wantErr   string
	}{
		{"edge by default", "client_ip: {}\n", true, ""},
		{"edge explicit", "client_ip: {envoy_external_address: true}\n", true, ""},
		{"behind a load balancer", "client_ip: {trusted_hops: 1}\n", false, ""},
		{"behind a load balancer, header off", "client_ip: {trusted_hops: 2, envoy_external_address: false}\n", false, ""},
		{"both refused", "client_ip: {trusted_hops: 1, envoy_external_address: true}\n", false,
			"client_ip.envoy_external_address: must not be true when client_ip.trusted_hops is set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil && strings.Contains(err.Error(), "client_ip") {
				t.Fatalf("Validate: %v", err)
			}
			if got := c.ClientIP.TrustEnvoyExternalAddress(); got != tc.wantTrust {
				t.Errorf("TrustEnvoyExternalAddress = %v, want %v", got, tc.wantTrust)
			}
		})
	}
}
