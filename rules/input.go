package rules

// DefaultProtocol is context.protocol when Context.Protocol is empty: the
// value under which gallery rules behave as for an interactive browser
// login.
const DefaultProtocol = "oidc-basic-profile"

// RedirectCallbackProtocol is context.protocol when resuming from a redirect
// (Auth0's redirect protocol).
const RedirectCallbackProtocol = "redirect-callback"

// Input is the per-request data of one pipeline run.
//
// The engine never mutates the maps and slices of an Input. It converts
// them to JavaScript when a rule first reads them, which can happen after
// Run returns if a rule kept user or context (in global, say): do not
// modify them once passed to Run.
type Input struct {
	// User holds the identity claims (user_id, email, name, app_metadata,
	// ...). Rules get a fresh JavaScript object with these properties.
	// app_metadata and user_metadata default to {}.
	User map[string]any
	// Context becomes the rule's context argument.
	Context Context
	// Event, when set, is deep-merged over every Action's event (built
	// from User and Context by Auth0's migration mapping), last.
	Event map[string]any
}

// Context is the data of Auth0's context object. Empty strings are passed
// as "" (not undefined); nil maps become empty objects.
type Context struct {
	ClientID           string
	ClientName         string
	ClientMetadata     map[string]string
	Connection         string
	ConnectionStrategy string
	// Protocol defaults to DefaultProtocol.
	Protocol  string
	SessionID string
	Tenant    string
	Request   Request
	// AuthenticationMethods becomes context.authentication.methods.
	AuthenticationMethods []Method
	// Stats becomes context.stats, e.g. {"loginsCount": 3}.
	Stats map[string]any
	// SSO becomes context.sso.
	SSO map[string]any
	// Extra holds further context properties. The fields above take
	// precedence over keys of the same name.
	Extra map[string]any
}

// Request is context.request.
type Request struct {
	IP        string
	Hostname  string
	UserAgent string
	Query     map[string]any
	Body      map[string]any
	// Networks are the names of the configured networks containing IP.
	Networks []string
	// Geoip becomes context.request.geoip when non-nil.
	Geoip map[string]any
}

// Method is one entry of context.authentication.methods.
type Method struct {
	// Name is e.g. "pwd", "mfa", "federated".
	Name string
	// Timestamp is in milliseconds since the Unix epoch.
	Timestamp int64
}
