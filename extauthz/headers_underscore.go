package extauthz

import "strings"

// identityHeaderSpellings returns the names in headers that are another
// spelling of one of stepup's header names or of a name under one of its
// prefixes: equal once case is folded and "_" is read as "-". Many
// application servers (CGI-style environments, PHP, Rails, Django) make
// no difference between those spellings, so a client's x_stepup_user
// would read as stepup's x-stepup-user. Exact names are not returned:
// stepup overwrites or removes them itself. names and prefixes must be
// lower case.
func identityHeaderSpellings(headers map[string]string, names, prefixes []string) []string {
	var out []string
	for k := range headers {
		c := canonicalHeaderSpelling(k)
		if c == k {
			continue
		}
		if matchesHeaderName(c, names, prefixes) {
			out = append(out, k)
		}
	}
	return out
}

func matchesHeaderName(c string, names, prefixes []string) bool {
	for _, n := range names {
		if c == n {
			return true
		}
	}
	for _, p := range prefixes {
		if strings.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

// canonicalHeaderSpelling folds ASCII case and reads "_" as "-".
func canonicalHeaderSpelling(k string) string {
	if !strings.ContainsAny(k, "_ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		return k
	}
	b := []byte(k)
	for i, c := range b {
		switch {
		case c == '_':
			b[i] = '-'
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
