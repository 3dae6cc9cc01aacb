package config

import (
	"strings"
	"testing"
)

func TestMaxInFlight(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		bad  bool
	}{
		{"server: {max_in_flight: 0}\n", false},
		{"server: {max_in_flight: 500}\n", false},
		{"server: {max_in_flight: -1}\n", true},
		{"server: {max_in_flight: 2000000}\n", true},
	} {
		c, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if got := err != nil && strings.Contains(err.Error(), "server.max_in_flight"); got != tc.bad {
			t.Errorf("%q: Validate = %v, want a server.max_in_flight error: %v", tc.yaml, err, tc.bad)
		}
	}
}
