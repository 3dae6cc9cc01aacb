package extauthz

import "time"

// Auditor receives one [DecisionRecord] per check decided, for the audit
// trail. The check waits for it: it must be quick, and safe for
// concurrent use.
type Auditor interface {
	AuditDecision(DecisionRecord)
}

// DecisionRecord is what the audit trail keeps of one decision: the
// fields of the decision log line. It carries no cookie, token, query or
// header value.
type DecisionRecord struct {
	DecisionID string
	RequestID  string
	Mode       Mode
	Host       string
	Method     string
	// Path is the request's path without its query.
	Path     string
	User     string
	ClientIP string // empty when unknown
	Network  string
	ClientID string
	Decision string // allow, deny or mfa_required
	Reason   Reason
	Status   int
	Rule     string
	// Factor is the factor that met the MFA requirement, if one did.
	Factor  string
	Latency time.Duration
	// DryRun: the request was let through; Would is what enforcing
	// would have decided.
	DryRun bool
	Would  string
}

// audit hands the decision to the auditor, if there is one.
func (s *Server) audit(mode Mode, r *Request, d *Decision, elapsed time.Duration) {
	if s.auditor == nil {
		return
	}
	rec := DecisionRecord{
		DecisionID: d.DecisionID, RequestID: r.ID, Mode: mode, Host: r.Host, Method: r.Method, Path: r.Path,
		User: d.User, Network: d.Network, ClientID: r.ClientID, Decision: d.Kind.String(), Reason: d.Reason,
		Status: d.Status, Rule: d.Rule, Factor: d.Method, Latency: elapsed,
	}
	if r.ClientIP.IsValid() {
		rec.ClientIP = r.ClientIP.String()
	}
	if d.DryRun {
		rec.DryRun, rec.Would = true, d.Would.String()
	}
	s.auditor.AuditDecision(rec)
}
