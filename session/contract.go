package session

// Names shared by Check (package extauthz) and the MFA step (package mfa),
// which do not import each other: both read them from here.
const (
	// AssertionHeader is the request header in which Check hands the MFA
	// step the signed identity assertion ([Manager.IssueAssertion]).
	AssertionHeader = "x-stepup-assertion"
	// AssertionUserClaim is the assertion claim that holds the identity's
	// whole claim set, when it fits in the token: the step hands it back
	// to Check's rules on a redirect callback, so that they see the same
	// user object.
	AssertionUserClaim = "user"
	// AssertionClientIP and AssertionNetworks are the assertion claims
	// with the client address and the names of the networks containing it,
	// as Check saw them.
	AssertionClientIP = "client_ip"
	AssertionNetworks = "networks"
)

// Option names of a Duo requirement ([Requirement.Options]): the rule's
// Duo application and username. The secret travels only sealed, as
// [OptionDuoSecret]+[SealedOptionSuffix].
const (
	OptionDuoClientID = "ikey"
	OptionDuoHost     = "host"
	OptionDuoSecret   = "skey"
	OptionDuoUsername = "username"
)
