package extauthz

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/stepup-dev/stepup/session"
)

// Proof is one thing a session proves: a factor (or a completed redirect)
// and when it was proven. Factor names are session's (session.FactorOTP
// and the others).
type Proof = session.Proof

// MFAProof is what the request's MFA session cookie proves, on which
// realm.
type MFAProof struct {
	SessionID string
	// Realm is where the session was proven; it proves nothing elsewhere.
	Realm string
	// Proofs are the session's proofs still within its lifetime, newest
	// first.
	Proofs []Proof
}

// RememberProof is what a remembered browser stands in for.
type RememberProof struct {
	Realm  string
	Proofs []Proof
}

// proof returns the proof named factor, if the session (which may be nil)
// has one.
func (p *MFAProof) proof(factor string) (Proof, bool) {
	if p == nil {
		return Proof{}, false
	}
	return hasProof(p.Proofs, factor)
}

// newestFactor returns the newest proof of a second factor, if any.
func newestFactor(ps []Proof) (Proof, bool) {
	for _, p := range ps {
		if session.IsFactor(p.Factor) {
			return p, true
		}
	}
	return Proof{}, false
}

// Providers a requirement may name (context.multifactor.provider).
const (
	ProviderAny                 = "any"
	ProviderGoogleAuthenticator = "google-authenticator"
	ProviderGuardian            = "guardian"
	ProviderDuo                 = "duo"
	ProviderNone                = "none"
)

// FactorMeets is the requirement table: whether a proof of factor meets a
// requirement for provider, restricted to allowed when allowed is not
// empty. duoFallback says whether the configuration lets the
// authenticator app stand in for Duo while Duo is down. The table itself
// is [session.FactorMeets], shared with the MFA step, which offers only
// the factors it accepts:
//
//	provider              met by
//	any, ""               otp, recovery-code, duo, webauthn-platform,
//	                      webauthn-roaming, redirect:<declared service>
//	google-authenticator  otp, recovery-code
//	guardian              otp, recovery-code
//	duo                   duo; duo-fallback when the fallback is on
//	anything else         nothing
//
// An allowed list (an Action's challengeWith) narrows it further: with
// [webauthn-roaming] only a security key meets "any". A completed
// redirect that is not a declared MFA service ("done:…") meets no
// requirement. docs/security-model.md carries the same table.
func FactorMeets(provider string, allowed []string, factor string, duoFallback bool) bool {
	return session.FactorMeets(provider, allowed, factor, duoFallback)
}

// metBy returns the newest proof in ps that meets q at now: the table of
// [FactorMeets], and no older than q.MaxAge when that is set. A custom MFA
// service's factor counts only while the service is declared.
func (s *Server) metBy(q Requirement, ps []Proof, now time.Time) (Proof, bool) {
	for _, p := range ps {
		if !FactorMeets(q.Provider, q.Factors, p.Factor, s.duoFallback) {
			continue
		}
		if s.undeclaredService(p) {
			continue
		}
		if q.MaxAge > 0 && now.Sub(p.At) > q.MaxAge {
			continue
		}
		return p, true
	}
	return Proof{}, false
}

// tighten returns the shorter of two maximum ages, where zero means none.
func tighten(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// RedirectService is a custom MFA service reached by a rule's
// context.redirect: completing a redirect to it proves the factor
// "redirect:<Name>". A redirect to any other URL proves nothing but its
// own completion.
type RedirectService struct {
	Name string
	// URL is the service's address: a redirect whose scheme and host are
	// URL's and whose path is URL's path or below it is to this service.
	URL string
}

type redirectService struct {
	name, scheme, host, path string
}

func newRedirectServices(list []RedirectService) ([]redirectService, error) {
	out := make([]redirectService, 0, len(list))
	seen := map[string]bool{}
	for _, svc := range list {
		if !session.ValidServiceName(svc.Name) || seen[svc.Name] {
			return nil, fmt.Errorf("redirect service %q: name must be unique, 1-64 characters of [A-Za-z0-9_.-]", svc.Name)
		}
		seen[svc.Name] = true
		u, err := url.Parse(svc.URL)
		if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("redirect service %q: url %q must be an http(s) URL without query", svc.Name, svc.URL)
		}
		out = append(out, redirectService{name: svc.Name, scheme: u.Scheme, host: session.CanonicalHost(u.Host) + portOf(u), path: strings.TrimSuffix(u.EscapedPath(), "/")})
	}
	return out, nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return ":" + p
	}
	return ""
}

// redirectCompletion returns what completing a redirect to u proves: the
// factor of the declared service it goes to, or the completion of that
// target (scheme, host and path; the query is not part of it).
func (s *Server) redirectCompletion(u *url.URL) string {
	host := session.CanonicalHost(u.Host) + portOf(u)
	path := u.EscapedPath()
	for _, svc := range s.redirectServices {
		if u.Scheme != svc.scheme || host != svc.host {
			continue
		}
		if svc.path == "" || path == svc.path || strings.HasPrefix(path, svc.path+"/") {
			return session.RedirectFactor(svc.name)
		}
	}
	return session.CompletedRedirect(u.Scheme + "://" + host + path)
}

// undeclaredService reports whether p is the factor of a custom MFA
// service that is not (or no longer) declared.
func (s *Server) undeclaredService(p Proof) bool {
	name, ok := strings.CutPrefix(p.Factor, session.RedirectFactorPrefix)
	if !ok {
		return false
	}
	for _, svc := range s.redirectServices {
		if svc.name == name {
			return false
		}
	}
	return true
}

// hasProof reports whether ps holds a proof named factor.
func hasProof(ps []Proof, factor string) (Proof, bool) {
	for _, p := range ps {
		if p.Factor == factor {
			return p, true
		}
	}
	return Proof{}, false
}
