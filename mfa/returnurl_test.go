package mfa

import (
	"net/url"
	"strings"
	"testing"
)

var returnURLCases = []struct {
	raw, host string
	want      string // "" when refused
}{
	{"https://app.example/", "app.example", "https://app.example/"},
	{"https://app.example", "app.example", "https://app.example/"},
	{"https://app.example/reports/q3?year=2026&x=a%2Fb", "app.example", "https://app.example/reports/q3?year=2026&x=a%2Fb"},
	{"https://APP.example/x", "app.example", "https://APP.example/x"},
	{"https://app.example:443/x", "app.example", "https://app.example:443/x"},
	{"https://app.example/x", "app.example:443", "https://app.example/x"},
	{"https://app.example:8443/x", "app.example:8443", "https://app.example:8443/x"},
	{"https://app.example./x", "app.example", "https://app.example./x"},
	{"https://[2001:db8::1]:8443/x", "[2001:db8::1]:8443", "https://[2001:db8::1]:8443/x"},
	{"https://app.example/a?", "app.example", "https://app.example/a?"},
	{"https://app.example/a#frag", "app.example", "https://app.example/a#frag"},
	{"https://app.example/a/%2e%2e/b", "app.example", "https://app.example/a/%2e%2e/b"},

	// Other hosts and ports.
	{"https://evil.example/", "app.example", ""},
	{"https://app.example.evil.example/", "app.example", ""},
	{"https://app.example:8443/x", "app.example", ""},
	{"https://app.example/x", "app.example:8443", ""},
	{"https://[2001:db8::1]/x", "[2001:db8::2]", ""},
	// Relative, scheme-relative, backslashes, missing slashes.
	{"/reports", "app.example", ""},
	{"//evil.example/x", "app.example", ""},
	{"/\\evil.example", "app.example", ""},
	{"\\\\evil.example", "app.example", ""},
	{"https:evil.example", "app.example", ""},
	{"https:/evil.example", "app.example", ""},
	{"https:///evil.example", "app.example", ""},
	{"https:\\\\evil.example", "app.example", ""},
	{"https://app.example\\@evil.example/", "app.example", ""},
	{"https://app.example/\\evil", "app.example", ""},
	// Scheme-relative paths on the right host, literal or encoded.
	{"https://app.example//evil.example", "app.example", ""},
	{"https://app.example/%2f%2fevil.example", "app.example", ""},
	{"https://app.example/%2F%2Fevil.example", "app.example", ""},
	{"https://app.example/%5cevil.example", "app.example", ""},
	{"https://app.example/%2f/evil", "app.example", ""},
	// User info, encoded authorities.
	{"https://app.example@evil.example/", "app.example", ""},
	{"https://user:pw@app.example/", "app.example", ""},
	{"https://evil.example%2f@app.example/", "app.example", ""},
	{"https://app.example%2f%2fevil.example/", "app.example", ""},
	{"https://app%2eexample/", "app.example", ""},
	{"https://%61pp.example/", "app.example", ""},
	// Other schemes.
	{"http://app.example/", "app.example", ""},
	// Loopback hosts are secure contexts for browsers: http there too,
	// and only there.
	{"http://localhost:8080/a", "localhost:8080", "http://localhost:8080/a"},
	{"http://app.localhost/a", "app.localhost", "http://app.localhost/a"},
	{"http://127.0.0.1:9192/a?b=c", "127.0.0.1:9192", "http://127.0.0.1:9192/a?b=c"},
	{"http://127.1.2.3/", "127.1.2.3", "http://127.1.2.3/"},
	{"http://[::1]:8080/", "[::1]:8080", "http://[::1]:8080/"},
	{"https://localhost:8443/", "localhost:8443", "https://localhost:8443/"},
	{"http://localhost:8080/a", "localhost:9090", ""},
	{"http://localhost.evil.example/", "localhost.evil.example", ""},
	{"http://localhost/", "app.example", ""},
	{"http://128.0.0.1/", "128.0.0.1", ""},
	{"http://10.0.0.1/", "10.0.0.1", ""},
	{"javascript:alert(1)", "app.example", ""},
	{"JAVASCRIPT://app.example/%0aalert(1)", "app.example", ""},
	{"data:text/html,hi", "app.example", ""},
	{"ftp://app.example/", "app.example", ""},
	// Control characters, spaces, non-ASCII.
	{"https://app.example/\x00", "app.example", ""},
	{"https://app.example/a\tb", "app.example", ""},
	{"https://app.example/a\nb", "app.example", ""},
	{"https://app.example/a b", "app.example", ""},
	{" https://app.example/", "app.example", ""},
	{"https://app.example/é", "app.example", ""},
	{"https://аpp.example/", "app.example", ""},
	// Bad hosts given.
	{"https://app.example/", "", ""},
	{"https://app.example/", "app.example/x", ""},
	{"https://app.example/", "evil@app.example", ""},
	{"", "app.example", ""},
}

func TestSafeReturnURL(t *testing.T) {
	for _, tc := range returnURLCases {
		got, ok := SafeReturnURL(tc.raw, tc.host)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("SafeReturnURL(%q, %q) = %q, %v; want %q", tc.raw, tc.host, got, ok, tc.want)
		}
	}
	// Development also takes http, and only that.
	if got, ok := safeReturnURL("http://localhost:8080/a", "localhost:8080", true); !ok || got != "http://localhost:8080/a" {
		t.Errorf("development http: %q %v", got, ok)
	}
	if _, ok := safeReturnURL("ftp://localhost:8080/a", "localhost:8080", true); ok {
		t.Error("development ftp accepted")
	}
	long := "https://app.example/" + strings.Repeat("a", MaxReturnURLLen)
	if _, ok := SafeReturnURL(long, "app.example"); ok {
		t.Error("over-long URL accepted")
	}
}

func FuzzSafeReturnURL(f *testing.F) {
	for _, tc := range returnURLCases {
		f.Add(tc.raw, tc.host)
	}
	f.Fuzz(func(t *testing.T, raw, host string) {
		got, ok := SafeReturnURL(raw, host)
		if !ok {
			if got != "" {
				t.Fatalf("refused with a result %q", got)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("result %q does not parse: %v", got, err)
		}
		if (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(host))) || u.User != nil || u.Opaque != "" {
			t.Fatalf("result %q: scheme %q, user %v, opaque %q", got, u.Scheme, u.User, u.Opaque)
		}
		want, _ := canonicalHost(host, u.Scheme)
		if h, _ := canonicalHost(u.Host, u.Scheme); h != want || want == "" {
			t.Fatalf("result %q is on host %q, want %q", got, u.Host, want)
		}
		if !strings.HasPrefix(got, u.Scheme+"://"+u.Host+"/") {
			t.Fatalf("result %q does not start with its authority and a slash", got)
		}
		if strings.ContainsAny(got, "\\ \t\r\n") || strings.HasPrefix(u.EscapedPath(), "//") {
			t.Fatalf("result %q has a dangerous character or path", got)
		}
		// Stable: the result is accepted as is.
		if again, ok := SafeReturnURL(got, host); !ok || again != got {
			t.Fatalf("SafeReturnURL(%q) = %q, %v: not idempotent", got, again, ok)
		}
	})
}

func TestNormalizeCodes(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"123456", "123456"},
		{"123 456", "123456"},
		{" 123-456 ", "123456"},
		{"12345", ""},
		{"1234567", ""},
		{"12345a", ""},
		{"١٢٣٤٥٦", ""},
		{"", ""},
	} {
		got, ok := normalizeTOTP(tc.in)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("normalizeTOTP(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	for _, tc := range []struct {
		in, want string
	}{
		{"abcd-efgh-jkmn-pqrs", "abcdefghjkmnpqrs"},
		{"ABCD EFGH JKMN PQRS", "abcdefghjkmnpqrs"},
		{"0o1i-l234-5678-9abc", "0011123456789abc"},
		{"abcd-efgh-jkmn-pqr", ""},
		{"abcd-efgh-jkmn-pqrsu", ""},
		{"abcd-efgh-jkmn-pqr!", ""},
	} {
		got, ok := normalizeRecovery(tc.in)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("normalizeRecovery(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	codes, err := newRecoveryCodes(50)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		canon, ok := normalizeRecovery(c)
		if !ok || len(c) != 19 || seen[canon] {
			t.Fatalf("generated code %q: canonical %q, %v, duplicate %v", c, canon, ok, seen[canon])
		}
		seen[canon] = true
	}
}

func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "abcd-efgh-jkmn-pqrs", "ABCD EFGH", "", "0o1i-l234-5678-9abc", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, ok := normalizeTOTP(s); ok {
			if len(c) != 6 || strings.Trim(c, "0123456789") != "" {
				t.Fatalf("normalizeTOTP(%q) = %q", s, c)
			}
			if again, ok := normalizeTOTP(c); !ok || again != c {
				t.Fatalf("normalizeTOTP not idempotent on %q", c)
			}
		}
		if c, ok := normalizeRecovery(s); ok {
			if len(c) != recoveryCodeLen || strings.Trim(c, recoveryAlphabet) != "" {
				t.Fatalf("normalizeRecovery(%q) = %q", s, c)
			}
			if again, ok := normalizeRecovery(c); !ok || again != c {
				t.Fatalf("normalizeRecovery not idempotent on %q", c)
			}
		}
	})
}
