package mfa

import (
	"net/http/httptest"
	"testing"
)

// TestSameOrigin covers the browser's own statements about a POST,
// including the "Origin: null" that browsers send under the pages'
// Referrer-Policy: no-referrer (found by the e2e browser test: Chromium
// sends it with every form of the step).
func TestSameOrigin(t *testing.T) {
	tests := []struct {
		name         string
		dev          bool
		origin, site string
		want         bool
		host         string // default app.example
	}{
		{"no statement", false, "", "", true, ""},
		{"same origin", false, "https://app.example", "same-origin", true, ""},
		{"same origin, no fetch metadata", false, "https://app.example", "", true, ""},
		{"null origin from this page (no-referrer)", false, "null", "same-origin", true, ""},
		{"null origin without fetch metadata", false, "null", "", false, ""},
		{"null origin from another site", false, "null", "cross-site", false, ""},
		{"null origin from a sibling site", false, "null", "same-site", false, ""},
		{"null origin from a user action", false, "null", "none", false, ""},
		{"other origin", false, "https://evil.example", "same-origin", false, ""},
		{"cross-site fetch", false, "", "cross-site", false, ""},
		{"http origin", false, "http://app.example", "same-origin", false, ""},
		{"http origin in development", true, "http://app.example", "same-origin", true, ""},
		{"http origin on localhost", false, "http://localhost:8080", "same-origin", true, "localhost:8080"},
		{"http origin on 127.0.0.1", false, "http://127.0.0.1:9192", "same-origin", true, "127.0.0.1:9192"},
		{"http origin of another loopback port", false, "http://localhost:9999", "same-origin", false, "localhost:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{dev: tt.dev}
			host := tt.host
			if host == "" {
				host = "app.example"
			}
			r := httptest.NewRequest("POST", "https://"+host+"/.stepup/mfa", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.site != "" {
				r.Header.Set("Sec-Fetch-Site", tt.site)
			}
			if got := h.sameOrigin(r); got != tt.want {
				t.Errorf("sameOrigin = %v, want %v", got, tt.want)
			}
		})
	}
}
