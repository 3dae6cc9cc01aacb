package extauthz

// Reason says why a Check was decided as it was: a short fixed word, the
// same in the metric label (stepup_check_requests_total{reason}), the
// CheckResponse's dynamic metadata, the HTTP-mode JSON body and the
// decision log.
type Reason string

// The reasons. [Reasons] describes each; the table in docs/envoy.md#decisions-and-reasons
// lists the same (TestReasonsDocumented).
const (
	ReasonNetwork          Reason = "network"
	ReasonNoMFARequired    Reason = "no_mfa_required"
	ReasonMFASession       Reason = "mfa_session"
	ReasonRemembered       Reason = "remembered"
	ReasonStepUpPrefix     Reason = "stepup_prefix"
	ReasonMFARequired      Reason = "mfa_required"
	ReasonRedirect         Reason = "redirect"
	ReasonNoIdentity       Reason = "no_identity"
	ReasonInvalidIdentity  Reason = "invalid_identity"
	ReasonRuleDenied       Reason = "rule_denied"
	ReasonRuleError        Reason = "rule_error"
	ReasonRuleTimeout      Reason = "rule_timeout"
	ReasonRuleException    Reason = "rule_exception"
	ReasonBadRequest       Reason = "bad_request"
	ReasonTooLarge         Reason = "too_large"
	ReasonOverloaded       Reason = "overloaded"
	ReasonStoreUnavailable Reason = "store_unavailable"
	ReasonInternal         Reason = "internal"
	ReasonDeadline         Reason = "deadline"
)

// ReasonInfo describes a reason.
type ReasonInfo struct {
	Reason Reason
	// Kind is the decision the reason goes with.
	Kind Kind
	// Fault is true for a Check that failed closed because something went
	// wrong (counted in stepup_check_errors_total), not because of policy.
	Fault bool
	// Meaning is one sentence for operators.
	Meaning string
}

// Reasons is every reason stepup gives, in the order of the docs.
var Reasons = []ReasonInfo{
	{ReasonNetwork, Allow, false, "No MFA was required and the client is in a configured network."},
	{ReasonNoMFARequired, Allow, false, "No MFA was required, from outside the configured networks."},
	{ReasonMFASession, Allow, false, "The MFA session proves a factor the requirement accepts, on this realm, recently enough."},
	{ReasonRemembered, Allow, false, "A remembered browser stands in for a factor the requirement accepts."},
	{ReasonStepUpPrefix, Allow, false, "A request for the MFA step itself, allowed with an identity assertion."},
	{ReasonMFARequired, StepUp, false, "A second factor is needed: 302 to the MFA step, or 401 for API clients."},
	{ReasonRedirect, Redirect, false, "A rule's context.redirect that this session has not completed."},
	{ReasonNoIdentity, Login, false, "No primary login: 401, or 302 to the login URL."},
	{ReasonInvalidIdentity, Login, false, "A token was presented but did not verify."},
	{ReasonRuleDenied, Deny, false, "A rule refused the request (UnauthorizedError or callback(error)): 403 with its message."},
	{ReasonRuleError, Deny, true, "A rule could not be run or set something invalid."},
	{ReasonRuleTimeout, Deny, true, "The rules ran out of time: 503."},
	{ReasonRuleException, Deny, true, "A rule threw: 403."},
	{ReasonBadRequest, Deny, true, "The CheckRequest could not be understood: 400."},
	{ReasonTooLarge, Deny, true, "The CheckRequest was larger than server.grpc.max_recv_bytes: 413."},
	{ReasonStoreUnavailable, Deny, true, "The session store did not answer: 503."},
	{ReasonInternal, Deny, true, "An internal error: 503."},
	{ReasonDeadline, Deny, true, "The Check's deadline had passed before it started."},
	// Counted in stepup_check_overloaded_total (admission), not as a fault.
	{ReasonOverloaded, Deny, false, "More than server.max_in_flight Checks at once, or a client whose rules keep running out of time (quarantined): 503 at once, not decided."},
}

// reasonFault is the Fault of each reason in Reasons.
var reasonFault = func() map[Reason]bool {
	m := make(map[Reason]bool, len(Reasons))
	for _, r := range Reasons {
		m[r.Reason] = r.Fault
	}
	return m
}()
