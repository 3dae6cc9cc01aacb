package session

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Factor names: what an MFA session or a remembered browser proves. A
// requirement is compared with them (see the security model in
// docs/security-model.md); a record proves nothing beyond the factors it
// names.
const (
	// FactorOTP is a code from the user's authenticator app (TOTP).
	FactorOTP = "otp"
	// FactorRecoveryCode is one of the user's recovery codes, the backup
	// of the authenticator app.
	FactorRecoveryCode = "recovery-code"
	// FactorDuo is a Duo Universal Prompt approval.
	FactorDuo = "duo"
	// FactorDuoFallback marks a step whose requirement was Duo, completed
	// with the authenticator app because stepup's own health check found
	// Duo unavailable and the fallback policy allowed it. It is recorded
	// next to the factor that was used.
	FactorDuoFallback = "duo-fallback"
	// FactorWebAuthnPlatform and FactorWebAuthnRoaming are passkeys and
	// security keys (a platform or a roaming authenticator).
	FactorWebAuthnPlatform = "webauthn-platform"
	FactorWebAuthnRoaming  = "webauthn-roaming"
	// RedirectFactorPrefix starts the factor of a custom MFA service that
	// the configuration declares (Auth0's redirect protocol):
	// "redirect:<service name>".
	RedirectFactorPrefix = "redirect:"
	// CompletedPrefix starts the record of a rule redirect that is not an
	// MFA service (terms of service, a profile form) and was completed:
	// "done:<digest of the redirect target>". It satisfies that redirect
	// and nothing else; it is not a factor.
	CompletedPrefix = "done:"
)

// MaxProofs bounds the proofs one MFA session carries; the oldest go first.
const MaxProofs = 16

// maxFactorLen bounds a factor name.
const maxFactorLen = 80

// Proof is one thing an MFA session or a remembered browser proves: a
// factor (or a completed redirect) and when it was proven.
type Proof struct {
	Factor string
	At     time.Time
}

// RedirectFactor is the factor of the declared custom MFA service name.
func RedirectFactor(service string) string { return RedirectFactorPrefix + service }

// CompletedRedirect names the completion of a redirect to target (its URL
// without query or fragment): a digest, so that any URL fits a record.
func CompletedRedirect(target string) string {
	sum := sha256.Sum256([]byte("stepup redirect\x00" + target))
	return CompletedPrefix + base64.RawURLEncoding.EncodeToString(sum[:15])
}

// IsFactor reports whether name is a second factor (a completed
// non-MFA redirect and the Duo fallback marker are not).
func IsFactor(name string) bool {
	switch name {
	case FactorOTP, FactorRecoveryCode, FactorDuo, FactorWebAuthnPlatform, FactorWebAuthnRoaming:
		return true
	}
	return strings.HasPrefix(name, RedirectFactorPrefix) && len(name) > len(RedirectFactorPrefix)
}

// validFactorName accepts the names a record may carry: [a-z0-9_.:-],
// 1 to maxFactorLen bytes, starting with a letter.
func validFactorName(s string) bool {
	if s == "" || len(s) > maxFactorLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':' ||
			c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ValidServiceName reports whether s may name a custom MFA service:
// 1 to 64 characters of [A-Za-z0-9_.-].
func ValidServiceName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// encodeProofs writes proofs as "factor@unix,factor@unix" (a plain string,
// so records keep their fast decoder).
func encodeProofs(ps []Proof) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Factor)
		b.WriteByte('@')
		b.WriteString(strconv.FormatInt(p.At.Unix(), 10))
	}
	return b.String()
}

// decodeProofs reads what encodeProofs wrote.
func decodeProofs(s string) ([]Proof, error) {
	if s == "" {
		return nil, nil
	}
	n := strings.Count(s, ",") + 1
	if n > MaxProofs {
		return nil, fmt.Errorf("%d proofs, more than %d", n, MaxProofs)
	}
	out := make([]Proof, 0, n)
	for part := range strings.SplitSeq(s, ",") {
		f, at, ok := strings.Cut(part, "@")
		if !ok || !validFactorName(f) {
			return nil, errors.New("bad proof")
		}
		t, err := strconv.ParseInt(at, 10, 64)
		if err != nil || t <= 0 {
			return nil, errors.New("bad proof time")
		}
		out = append(out, Proof{Factor: f, At: time.Unix(t, 0)})
	}
	return out, nil
}

// mergeProofs returns add followed by the proofs of old that are still
// fresh at now within ttl and not superseded by a newer proof of the same
// factor, at most MaxProofs, newest first.
func mergeProofs(add, old []Proof, now time.Time, ttl time.Duration) []Proof {
	out := make([]Proof, 0, len(add)+len(old))
	out = append(out, add...)
	for _, p := range old {
		if !now.Before(p.At.Add(ttl)) {
			continue
		}
		if slices.ContainsFunc(out, func(q Proof) bool { return q.Factor == p.Factor }) {
			continue
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b Proof) int { return b.At.Compare(a.At) })
	if len(out) > MaxProofs {
		out = out[:MaxProofs]
	}
	return out
}

// liveProofs returns the proofs still within ttl at now, in ps's own
// array (ps is changed).
func liveProofs(ps []Proof, now time.Time, ttl time.Duration) []Proof {
	out := ps[:0]
	for _, p := range ps {
		if now.Before(p.At.Add(ttl)) {
			out = append(out, p)
		}
	}
	return out
}

// Realms groups hosts that share sessions. A host not in any group is a
// realm of its own. A Realms is immutable and safe for concurrent use; the
// nil *Realms puts every host in its own realm.
type Realms struct {
	exact  map[string]string
	suffix []realmSuffix
}

type realmSuffix struct{ suffix, realm string }

// NewRealms builds the groups from realm name → host patterns. A pattern
// is a host name ("app.example.com") or "*." and a domain
// ("*.corp.example.com": every host below it, not the domain itself).
// A host may belong to one realm only; realm names are 1-64 characters of
// [A-Za-z0-9_.-].
func NewRealms(groups map[string][]string) (*Realms, error) {
	r := &Realms{exact: make(map[string]string)}
	var errs []error
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := make(map[string]string)
	for _, name := range names {
		if !ValidServiceName(name) {
			errs = append(errs, fmt.Errorf("realm %q: name must be 1-64 characters of [A-Za-z0-9_.-]", name))
			continue
		}
		if len(groups[name]) == 0 {
			errs = append(errs, fmt.Errorf("realm %q: no hosts", name))
		}
		for _, p := range groups[name] {
			host, wild := strings.CutPrefix(p, "*.")
			h := CanonicalHost(host)
			if h == "" || h != strings.ToLower(strings.TrimSuffix(host, ".")) || !hostChars(h) {
				errs = append(errs, fmt.Errorf("realm %q: %q is not a host name or *.domain", name, p))
				continue
			}
			key := h
			if wild {
				key = "*." + h
			}
			if other, dup := seen[key]; dup {
				errs = append(errs, fmt.Errorf("realm %q: %q is already in realm %q", name, p, other))
				continue
			}
			seen[key] = name
			if wild {
				r.suffix = append(r.suffix, realmSuffix{suffix: "." + h, realm: name})
			} else {
				r.exact[h] = name
			}
		}
	}
	// Longest suffix first: the most specific group wins.
	slices.SortStableFunc(r.suffix, func(a, b realmSuffix) int { return len(b.suffix) - len(a.suffix) })
	return r, errors.Join(errs...)
}

// Of returns the realm of host (with or without a port): its group's
// name prefixed by "realm:", or the canonical host itself. Two hosts
// share MFA sessions and remembered browsers exactly when Of returns the
// same string for both.
func (r *Realms) Of(host string) string {
	h := CanonicalHost(host)
	if r == nil || h == "" {
		return h
	}
	if name, ok := r.exact[h]; ok {
		return "realm:" + name
	}
	for _, s := range r.suffix {
		if strings.HasSuffix(h, s.suffix) {
			return "realm:" + s.realm
		}
	}
	return h
}

// hostChars reports whether h is made of DNS name characters only.
func hostChars(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// CanonicalHost returns host as stepup compares hosts: lower case,
// without a port, without the brackets of an IPv6 literal and without a
// trailing dot ("Payroll.Example.org.:443" → "payroll.example.org").
func CanonicalHost(host string) string {
	h := host
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
