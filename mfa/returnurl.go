package mfa

import (
	"net/netip"
	"net/url"
	"strings"
)

// MaxReturnURLLen is the longest return URL [SafeReturnURL] accepts.
const MaxReturnURLLen = 8192

// SafeReturnURL reports whether raw is a safe place to send the browser
// after the MFA step served on host, and returns it in canonical form.
//
// raw must be an absolute https URL ("https://" + authority + path) — or
// http when host is a loopback host (localhost, *.localhost, 127.0.0.0/8,
// [::1]), which browsers treat as a secure context —, of at
// most [MaxReturnURLLen] bytes of printable ASCII, whose authority is host
// (compared without case, a default port and a trailing dot), with no user
// information, no percent-encoding or backslash anywhere in the authority,
// and a path that does not start with two slashes or a slash and a
// backslash, literally or percent-encoded. Everything else is refused:
// relative and scheme-relative URLs ("//evil", "/\evil"), "https:evil",
// other schemes, other hosts, control characters and spaces. host is the
// Host header of the request, with or without a port.
//
// On refusal, send the browser to "/" of the same host instead.
func SafeReturnURL(raw, host string) (string, bool) {
	return safeReturnURL(raw, host, false)
}

// safeReturnURL is SafeReturnURL that also accepts http URLs on any host
// when allowHTTP is set (development mode).
func safeReturnURL(raw, host string, allowHTTP bool) (string, bool) {
	if raw == "" || len(raw) > MaxReturnURLLen || !printableASCII(raw) || strings.ContainsRune(raw, '\\') {
		return "", false
	}
	allowHTTP = allowHTTP || loopbackHost(host)
	var scheme string
	switch {
	case hasPrefixFold(raw, "https://"):
		scheme = "https"
	case allowHTTP && hasPrefixFold(raw, "http://"):
		scheme = "http"
	default:
		return "", false
	}
	// The authority is everything up to the first '/', '?' or '#'; check
	// it before the URL parser gets a chance to interpret it.
	rest := raw[len(scheme)+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if authority := rest[:end]; authority == "" || strings.ContainsAny(authority, "@%") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" || !strings.EqualFold(u.Scheme, scheme) {
		return "", false
	}
	want, ok := canonicalHost(host, scheme)
	if !ok {
		return "", false
	}
	got, ok := canonicalHost(u.Host, scheme)
	if !ok || got != want {
		return "", false
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") || doubleSlash(p) {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(raw) + 1)
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(u.Host)
	b.WriteString(p)
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	if u.Fragment != "" {
		b.WriteByte('#')
		b.WriteString(u.EscapedFragment())
	}
	return b.String(), true
}

// canonicalHost lowercases host, drops a trailing dot and the scheme's
// default port, and checks that what is left is a plausible host[:port]:
// letters, digits, '-', '.', ':', '[' and ']' only.
func canonicalHost(host, scheme string) (string, bool) {
	if host == "" || len(host) > 255 {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']') {
			return "", false
		}
	}
	h := strings.ToLower(host)
	port := ""
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h, port = h[:i], h[i+1:]
		if port == "" || strings.ContainsAny(port, ":[].-") {
			return "", false
		}
	}
	if strings.HasPrefix(h, "[") != strings.HasSuffix(h, "]") {
		return "", false
	}
	if !strings.HasPrefix(h, "[") && strings.ContainsAny(h, ":[]") {
		return "", false
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || h == "[]" {
		return "", false
	}
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		return h + ":" + port, true
	}
	return h, true
}

// loopbackHost reports whether host (with or without a port) names this
// machine the way browsers recognise as potentially trustworthy over plain
// http: "localhost", a name ending in ".localhost", an address in
// 127.0.0.0/8, or [::1].
func loopbackHost(host string) bool {
	h, ok := canonicalHost(host, "http")
	if !ok {
		return false
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "[::1]" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Is4() && a.IsLoopback()
}

// doubleSlash reports whether an escaped path starts like a
// scheme-relative URL: "//", "/\" or an encoded form of either.
func doubleSlash(p string) bool {
	rest := strings.ToLower(strings.TrimPrefix(p, "/"))
	for _, s := range []string{"/", "\\", "%2f", "%5c"} {
		if strings.HasPrefix(rest, s) {
			return true
		}
	}
	return false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
