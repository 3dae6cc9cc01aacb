package extauthz

import "strings"

// identityHeaders fills the upstream identity headers of an allow.
func (s *Server) identityHeaders(d *Decision, r *Request, id *Identity, in *PolicyInput) {
	h := &s.headers
	method := d.Method
	if method == "" {
		method = "none"
	}
	network := ""
	if in != nil && len(in.Networks) > 0 {
		network = strings.Join(in.Networks, ",")
	}
	d.Network = network
	if d.Headers == nil {
		// Room for the four below and a filtered cookie header.
		d.Headers = make([]HeaderKV, 0, 5)
	}
	d.Headers = append(d.Headers,
		HeaderKV{h.user, id.User},
		HeaderKV{h.email, id.Email},
		HeaderKV{h.mfa, method},
		HeaderKV{h.network, network},
	)
	// Client-supplied copies of stepup's headers that stepup does not set
	// this time are removed; the ones it sets are overwritten.
	for k := range r.Headers {
		if strings.HasPrefix(k, h.claimPrefix) || k == AssertionHeader {
			d.RemoveHeaders = append(d.RemoveHeaders, k)
		}
	}
	d.RemoveHeaders = append(d.RemoveHeaders, h.remove...)
	d.RemoveHeaders = append(d.RemoveHeaders, identityHeaderSpellings(r.Headers, h.spellingNames, h.spellingPrefixes)...)
	// stepup's cookies never reach the application. Under the reserved
	// prefix the "upstream" is stepup's own MFA step, which needs the MFA
	// session cookie (the factors page asks for a recent verification):
	// stripping it there would send the browser round the step forever.
	if s.sessions != nil && !strings.HasPrefix(r.Path, s.prefix) {
		if c := r.Headers["cookie"]; c != "" {
			if filtered, changed := stripCookies(c, s.sessions.MFACookieName(), s.sessions.RememberCookieName()); changed {
				if filtered == "" {
					d.RemoveHeaders = append(d.RemoveHeaders, "cookie")
				} else {
					d.Headers = append(d.Headers, HeaderKV{"cookie", filtered})
				}
			}
		}
	}
}

func (s *Server) claimHeaders(d *Decision, claims map[string]string) {
	for k, v := range claims {
		d.setHeader(s.headers.claimPrefix+k, v)
	}
}

// setHeader sets an upstream header and makes sure it is not also in the
// removal list: Envoy applies removals last, so a header both set and
// removed would vanish (docs/envoy.md#headers-on-allow).
func (d *Decision) setHeader(name, value string) {
	d.Headers = append(d.Headers, HeaderKV{name, value})
	for i, rm := range d.RemoveHeaders {
		if rm == name {
			d.RemoveHeaders = append(d.RemoveHeaders[:i], d.RemoveHeaders[i+1:]...)
			break
		}
	}
}

// stripCookies removes stepup's own cookies from a Cookie header so that
// the upstream never sees them. Pairs are split on ';' and ',' (as
// Request.Cookie reads them) and the kept ones joined with "; ".
func stripCookies(h string, names ...string) (string, bool) {
	if !containsAny(h, names) {
		return h, false
	}
	var b strings.Builder
	b.Grow(len(h))
	changed := false
	for rest := h; rest != ""; {
		i := strings.IndexAny(rest, ";,")
		part := rest
		if i >= 0 {
			part, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		p := strings.TrimSpace(part)
		if p == "" {
			continue
		}
		if isNamedCookie(p, names) {
			changed = true
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p)
	}
	return b.String(), changed
}

// isNamedCookie reports whether the pair p ("name=value") has one of names.
func isNamedCookie(p string, names []string) bool {
	for _, n := range names {
		if n != "" && len(p) > len(n) && p[len(n)] == '=' && p[:len(n)] == n {
			return true
		}
	}
	return false
}

func containsAny(h string, names []string) bool {
	for _, n := range names {
		if n != "" && strings.Contains(h, n) {
			return true
		}
	}
	return false
}
