package rules

import (
	"encoding/json"
	"fmt"
)

// ErrorKind classifies why a pipeline stopped.
type ErrorKind int

// Error kinds. The zero value is not used.
const (
	// KindUnauthorized: the rule called back with an UnauthorizedError.
	KindUnauthorized ErrorKind = iota + 1
	// KindRule: the rule called back with any other non-null error
	// (new Error(msg), a string, an object...).
	KindRule
	// KindTimeout: the rule did not call back within its budget, or can
	// never call back (nothing left pending), or was interrupted.
	KindTimeout
	// KindException: the rule threw (including ReferenceError, stack
	// overflow, or an async rule whose promise was rejected).
	KindException
	// KindInternal: an engine fault, an oversized input, an invalid
	// context.multifactor / context.redirect, or an unsupported provider.
	KindInternal
)

var kindNames = [...]string{
	KindUnauthorized: "unauthorized",
	KindRule:         "rule",
	KindTimeout:      "timeout",
	KindException:    "exception",
	KindInternal:     "internal",
}

// String returns the lower-case name of the kind ("unauthorized", "rule",
// "timeout", "exception", "internal").
func (k ErrorKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// MarshalText encodes the kind as its String.
func (k ErrorKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Error is why a pipeline stopped. Every Error means deny.
type Error struct {
	// Kind classifies the failure.
	Kind ErrorKind `json:"kind"`
	// Name is the JavaScript error name ("UnauthorizedError", "Error",
	// "TypeError", ...) or a Go-side label for internal errors.
	Name string `json:"name"`
	// Message is the error message. For KindUnauthorized and KindRule it
	// is the rule author's message, suitable for a 403 body.
	Message string `json:"message"`
	// Rule is the name of the rule that stopped the pipeline ("" when the
	// fault is not tied to a rule, such as an oversized input).
	Rule string `json:"rule,omitempty"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Rule == "" {
		return fmt.Sprintf("rules: %s: %s: %s", e.Kind, e.Name, e.Message)
	}
	return fmt.Sprintf("rule %q: %s: %s: %s", e.Rule, e.Kind, e.Name, e.Message)
}

// Outcome is the metrics label for the kind: "error", "timeout" or
// "exception".
func (e *Error) Outcome() string {
	switch e.Kind {
	case KindTimeout:
		return "timeout"
	case KindException:
		return "exception"
	default:
		return "error"
	}
}

// Multifactor is context.multifactor as left by the pipeline.
type Multifactor struct {
	// Provider is "any", "google-authenticator", "duo" or "none" (see the
	// package documentation for the mapping of other values).
	Provider string `json:"provider"`
	// RequestedProvider is the provider the rule asked for when it was
	// mapped to another one ("guardian" becomes "any"); otherwise "".
	// For an Action it is the provider as given to
	// api.multifactor.enable ("" for api.authentication's methods).
	RequestedProvider string `json:"requestedProvider,omitempty"`
	// AllowRememberBrowser is true unless the rule set it to false.
	AllowRememberBrowser bool `json:"allowRememberBrowser"`
	// IgnoreCookie is the deprecated flag forcing MFA on every login.
	IgnoreCookie bool `json:"ignoreCookie"`
	// Factors, when set, are the only factor types that may meet the
	// requirement, as an Action's api.authentication.challengeWith (and
	// its kin) listed them: "otp", "recovery-code", "webauthn-platform",
	// "webauthn-roaming", ...
	Factors []string `json:"factors,omitempty"`
	// Duo holds the Duo settings when Provider is "duo".
	Duo *DuoOptions `json:"duo,omitempty"`
	// Options holds every other key of context.multifactor as given.
	Options map[string]any `json:"options,omitempty"`
}

// ForceMFA reports whether the rule forbids remembering the browser
// (allowRememberBrowser: false or ignoreCookie: true).
func (m *Multifactor) ForceMFA() bool { return !m.AllowRememberBrowser || m.IgnoreCookie }

// DuoOptions are the Duo settings of a duo multifactor request. The secret
// fields are excluded from JSON (skey shows as "[redacted]" when set).
type DuoOptions struct {
	IKey     string         `json:"ikey"`
	SKey     string         `json:"-"`
	Host     string         `json:"host"`
	Username string         `json:"username,omitempty"`
	Admin    map[string]any `json:"-"`
}

// MarshalJSON encodes ikey, host and username, and skey as "[redacted]"
// when it is set: the secret never leaves in JSON.
func (d DuoOptions) MarshalJSON() ([]byte, error) {
	type shown struct {
		IKey     string `json:"ikey"`
		SKey     string `json:"skey,omitempty"`
		Host     string `json:"host"`
		Username string `json:"username,omitempty"`
	}
	s := shown{IKey: d.IKey, Host: d.Host, Username: d.Username}
	if d.SKey != "" {
		s.SKey = redacted
	}
	return json.Marshal(s)
}

// Redirect is context.redirect as left by the pipeline.
type Redirect struct {
	URL string `json:"url"`
}

// Result is the outcome of one pipeline run. When Err is nil every rule
// called back successfully; otherwise the request must be denied.
type Result struct {
	// Rule is the rule that stopped the pipeline (on error), else "".
	Rule string
	// Err is nil when every rule called callback(null, ...).
	Err *Error
	// Multifactor is context.multifactor after the pipeline (nil if unset).
	Multifactor *Multifactor
	// Redirect is context.redirect after the pipeline (nil if unset).
	Redirect *Redirect
	// IDTokenClaims and AccessTokenClaims are the custom claims rules set
	// on context.idToken / context.accessToken (nil when none).
	IDTokenClaims, AccessTokenClaims map[string]any
	// User and Context are the final objects as JSON-able maps; only
	// RunDebug fills them.
	User, Context map[string]any
	// Metadata are the updates of the user's metadata the scripts made
	// (nil when none), to persist and merge into the user's later runs.
	// They are kept when the pipeline succeeded or a script denied, not
	// after a fault.
	Metadata *MetadataUpdate
}

// MetadataUpdate are updates of a user's app_metadata and user_metadata:
// top-level keys to set, a nil value deleting the key (Auth0's merge of
// a metadata update).
type MetadataUpdate struct {
	App  map[string]any `json:"app_metadata,omitempty"`
	User map[string]any `json:"user_metadata,omitempty"`
}
