package extauthz

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stepup-dev/stepup/rules"
	"github.com/stepup-dev/stepup/session"
)

// RulesPolicy runs the Auth0-style rules pipeline for every check. The
// engine is swapped atomically on reload; a check runs to the end on the
// engine it started with.
type RulesPolicy struct {
	engine atomic.Pointer[rules.Engine]
	// ClientNames maps client ids to context.clientName.
	ClientNames map[string]string
	// Connection is context.connection (default "stepup").
	Connection string
	// quarantine limits clients whose rules keep running out of time.
	quarantine quarantine
	// Metadata, when set, keeps the user metadata scripts update
	// (api.user.setAppMetadata, auth0.users.updateAppMetadata, ...) and
	// gives it back, merged into the user, on the user's later checks.
	// Nil: updates last for the run only.
	Metadata MetadataStore
}

// MetadataStore keeps users' app_metadata and user_metadata as the
// scripts updated them. A store that cannot answer fails the check
// closed.
type MetadataStore interface {
	// LoadMetadata returns the user's stored metadata (nil maps: none).
	LoadMetadata(ctx context.Context, user string) (app, usr map[string]any, err error)
	// UpdateMetadata merges updates in: top-level keys replace the
	// stored ones, a nil value deletes the key.
	UpdateMetadata(ctx context.Context, user string, app, usr map[string]any) error
}

// StoreMetadata keeps users' metadata in the session store, as per-user
// records (session.KindMetadata).
func StoreMetadata(s session.Store) MetadataStore { return storeMetadata{s} }

type storeMetadata struct{ s session.Store }

func (m storeMetadata) LoadMetadata(ctx context.Context, user string) (app, usr map[string]any, err error) {
	md, err := session.LoadUserMetadata(ctx, m.s, user)
	return md.App, md.User, err
}

func (m storeMetadata) UpdateMetadata(ctx context.Context, user string, app, usr map[string]any) error {
	return session.UpdateUserMetadata(ctx, m.s, user, app, usr)
}

// storeFailed is the policy's denial when the metadata store cannot
// answer.
var storeFailed = PolicyResult{Err: &PolicyError{Status: http.StatusServiceUnavailable, Reason: ReasonStoreUnavailable,
	Message: "session store unavailable"}}

// NewRulesPolicy returns a policy running e.
func NewRulesPolicy(e *rules.Engine, clientNames map[string]string) *RulesPolicy {
	p := &RulesPolicy{ClientNames: clientNames, Connection: "stepup"}
	p.quarantine.now = time.Now
	p.engine.Store(e)
	return p
}

// Swap installs a new engine and returns the old one (for Close once the
// checks running on it are done).
func (p *RulesPolicy) Swap(e *rules.Engine) *rules.Engine { return p.engine.Swap(e) }

// Engine returns the current engine.
func (p *RulesPolicy) Engine() *rules.Engine { return p.engine.Load() }

// Evaluate implements Policy. A client whose rules ran out of time
// recently runs them once at a time; further Checks for it are denied at
// once (see quarantine).
func (p *RulesPolicy) Evaluate(ctx context.Context, in *PolicyInput) PolicyResult {
	client := in.Req.ClientID
	ok, counted := p.quarantine.enter(client)
	if !ok {
		return PolicyResult{Err: &PolicyError{Status: http.StatusServiceUnavailable, Reason: ReasonOverloaded,
			Message: "access policy is busy for this application"}}
	}
	e := p.engine.Load()
	input := p.input(in)
	md := p.Metadata
	if !e.UsesMetadata() {
		md = nil
	}
	if md != nil {
		app, usr, err := md.LoadMetadata(ctx, in.Identity.User)
		if err != nil {
			p.quarantine.leave(client, counted, false)
			return storeFailed
		}
		mergeMetadata(input.User, "app_metadata", app)
		mergeMetadata(input.User, "user_metadata", usr)
	}
	res := e.Run(ctx, input)
	p.quarantine.leave(client, counted, res.Err != nil && res.Err.Kind == rules.KindTimeout)
	if md != nil && res.Metadata != nil {
		if err := md.UpdateMetadata(ctx, in.Identity.User, res.Metadata.App, res.Metadata.User); err != nil {
			return storeFailed
		}
	}
	return mapRulesResult(&res)
}

// mergeMetadata sets user[key] to a copy of the identity's object with
// the stored keys on top (the caller's maps are not changed).
func mergeMetadata(user map[string]any, key string, stored map[string]any) {
	if len(stored) == 0 {
		return
	}
	base, _ := user[key].(map[string]any)
	out := make(map[string]any, len(base)+len(stored))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range stored {
		out[k] = v
	}
	user[key] = out
}

// input builds the data of Auth0's user (the identity's claims) and
// context (client, request, networks, MFA methods) objects from the request.
func (p *RulesPolicy) input(in *PolicyInput) rules.Input {
	r, id := in.Req, in.Identity
	var user map[string]any
	if id.claims == nil && id.payload != nil {
		// jwt_authn's payload converted straight into the user object:
		// what Claims does, without building a map only to copy it.
		f := id.payload.GetFields()
		user = make(map[string]any, len(f)+1)
		for k, v := range f {
			user[k] = v.AsInterface()
		}
	} else {
		claims := id.Claims()
		user = make(map[string]any, len(claims)+1)
		for k, v := range claims {
			user[k] = v
		}
	}
	user["user_id"] = id.User
	methods := make([]rules.Method, 0, 2)
	if t, ok := user["auth_time"].(float64); ok {
		methods = append(methods, rules.Method{Name: "pwd", Timestamp: int64(t) * 1000})
	} else if t, ok := user["iat"].(float64); ok {
		methods = append(methods, rules.Method{Name: "pwd", Timestamp: int64(t) * 1000})
	} else {
		methods = append(methods, rules.Method{Name: "pwd"})
	}
	if in.MFA != nil {
		if p, ok := newestFactor(in.MFA.Proofs); ok {
			methods = append(methods, rules.Method{Name: "mfa", Timestamp: p.At.UnixMilli()})
		}
	}
	var query map[string]any
	if r.RawQuery != "" {
		q := r.Query()
		query = make(map[string]any, len(q))
		for k, vs := range q {
			if len(vs) == 1 {
				query[k] = vs[0]
			} else {
				list := make([]any, len(vs))
				for i, v := range vs {
					list[i] = v
				}
				query[k] = list
			}
		}
	}
	c := rules.Context{
		ClientID:              r.ClientID,
		ClientName:            p.ClientNames[r.ClientID],
		Connection:            p.Connection,
		Protocol:              in.Protocol,
		Request:               rules.Request{IP: r.ClientIP.String(), Hostname: r.Host, UserAgent: r.Headers["user-agent"], Query: query, Body: in.Body, Networks: in.Networks},
		AuthenticationMethods: methods,
	}
	if c.ClientName == "" {
		c.ClientName = r.ClientID
	}
	if in.MFA != nil {
		c.SessionID = in.MFA.SessionID
	}
	return rules.Input{User: user, Context: c}
}

// mapRulesResult turns the pipeline's outcome into a policy decision
// (docs/architecture.md#a-check-step-by-step, step 6: an error never allows).
func mapRulesResult(res *rules.Result) PolicyResult {
	if e := res.Err; e != nil {
		pe := &PolicyError{Rule: e.Rule, Status: http.StatusForbidden}
		switch e.Kind {
		case rules.KindUnauthorized, rules.KindRule:
			// The rule's own message is meant for the user, as in Auth0's
			// error_description.
			pe.Reason, pe.Message = ReasonRuleDenied, e.Message
			if pe.Message == "" {
				pe.Message = "access denied"
			}
		case rules.KindTimeout:
			pe.Status, pe.Reason, pe.Message = http.StatusServiceUnavailable, ReasonRuleTimeout, "access policy timed out"
		case rules.KindException:
			pe.Reason, pe.Message = ReasonRuleException, "access policy failed"
		default:
			pe.Status, pe.Reason, pe.Message = http.StatusServiceUnavailable, ReasonRuleError, "access policy failed"
		}
		return PolicyResult{Err: pe}
	}
	var out PolicyResult
	if mf := res.Multifactor; mf != nil && mf.Provider != "none" {
		out.MFA = Requirement{Provider: mf.Provider, AllowRemember: !mf.ForceMFA(), Factors: mf.Factors}
		if len(mf.Factors) > 0 && !slices.ContainsFunc(mf.Factors, provableFactor) {
			// An Action allowed only factors stepup cannot prove (phone,
			// email, push-notification): no step could ever meet it.
			return PolicyResult{Err: &PolicyError{Status: http.StatusForbidden, Reason: ReasonRuleError,
				Message: "access policy failed", Rule: res.Rule}}
		}
		if mf.RequestedProvider == ProviderGuardian {
			// Guardian's factors outside Auth0: the authenticator app.
			out.MFA.Provider = ProviderGuardian
		}
		if age, ok := maxAgeOption(mf.Options["maxAge"]); ok {
			out.MFA.MaxAge = age
		} else {
			return PolicyResult{Err: &PolicyError{Status: http.StatusForbidden, Reason: ReasonRuleError,
				Message: "access policy failed", Rule: res.Rule}}
		}
		if len(mf.Options) > 0 || mf.Duo != nil {
			out.MFA.Options = make(map[string]any, len(mf.Options)+4)
			for k, v := range mf.Options {
				out.MFA.Options[k] = v
			}
			if d := mf.Duo; d != nil {
				out.MFA.Options[session.OptionDuoClientID] = d.IKey
				out.MFA.Options[session.OptionDuoHost] = d.Host
				// Sealed into the transaction state (WithSealer), never
				// stored or logged in plain.
				out.MFA.Options[session.OptionDuoSecret] = d.SKey
				if d.Username != "" {
					out.MFA.Options[session.OptionDuoUsername] = d.Username
				}
			}
		}
	}
	if res.Redirect != nil {
		out.RedirectURL = res.Redirect.URL
	}
	if n := len(res.IDTokenClaims) + len(res.AccessTokenClaims); n > 0 {
		out.Claims = make(map[string]string, n)
		for _, m := range []map[string]any{res.IDTokenClaims, res.AccessTokenClaims} {
			for k, v := range m {
				if name := claimHeaderName(k); name != "" {
					out.Claims[name] = claimValue(v)
				}
			}
		}
	}
	return out
}

// provableFactor reports whether the MFA step can prove factor, an
// Action's factor type.
func provableFactor(factor string) bool {
	switch factor {
	case session.FactorOTP, session.FactorRecoveryCode, session.FactorWebAuthnPlatform, session.FactorWebAuthnRoaming, session.FactorDuo:
		return true
	}
	return false
}

// maxAgeOption reads context.multifactor.maxAge, stepup's extension: the
// longest time, in seconds, since the factor was proven (as OpenID
// Connect's max_age). Absent is none; anything but a positive number is
// refused (ok false), so that a typo fails closed instead of loosening.
func maxAgeOption(v any) (time.Duration, bool) {
	switch n := v.(type) {
	case nil:
		return 0, true
	case float64:
		if n > 0 && n <= 400*24*3600 {
			return time.Duration(n * float64(time.Second)), true
		}
	case int64:
		if n > 0 && n <= 400*24*3600 {
			return time.Duration(n) * time.Second, true
		}
	}
	return 0, false
}

// claimHeaderName turns a custom claim name into a header suffix: Auth0
// namespaces claims with a URL ("https://example.com/roles"), so the part
// after the last '/' is used, lowercased, with anything outside [a-z0-9-]
// turned into '-'.
func claimHeaderName(k string) string {
	if i := strings.LastIndexByte(strings.TrimRight(k, "/"), '/'); i >= 0 {
		k = strings.TrimRight(k, "/")[i+1:]
	}
	k = strings.ToLower(k)
	b := []byte(k)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	s := strings.Trim(string(b), "-")
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

// claimValue renders a claim for a header: strings as they are, anything
// else as JSON; control characters never reach a header.
func claimValue(v any) string {
	var s string
	if str, ok := v.(string); ok {
		s = str
	} else {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	if len(s) > 4096 {
		s = s[:4096]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
