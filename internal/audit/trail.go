package audit

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/mfa"
)

// Trail is log.audit for a running server: it turns the decision
// core's and the MFA step's records into audit events, counts the events
// it could not write, and logs when writing starts and stops failing. With
// no file configured it writes nothing; its counter is exported anyway.
type Trail struct {
	w         *Writer // nil: no audit trail
	decisions string  // all, non_allow or none
	lost      prometheus.Counter
	log       *slog.Logger
	failing   atomic.Bool
}

// OpenTrail opens log.audit.file, if set. With validate it only
// checks that serve could open it, creating and writing nothing.
func OpenTrail(cfg *config.Config, log *slog.Logger, validate bool) (*Trail, error) {
	t := &Trail{
		decisions: cfg.Log.Audit.Decisions,
		log:       log,
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stepup_audit_write_errors_total",
			Help: "Audit events that could not be written to log.audit.file (each is lost).",
		}),
	}
	if cfg.Log.Audit.File == "" {
		return t, nil
	}
	if validate {
		if err := Check(cfg.Resolve(cfg.Log.Audit.File)); err != nil {
			return nil, fmt.Errorf("log.audit.file: %w", err)
		}
		return t, nil
	}
	w, err := Open(cfg.Resolve(cfg.Log.Audit.File))
	if err != nil {
		return nil, fmt.Errorf("log.audit.file: %w", err)
	}
	t.w = w
	return t, nil
}

// on reports whether there is a file to write to.
func (t *Trail) On() bool { return t != nil && t.w != nil }

// DecisionHook is the decision core's auditor; nil when decisions do not
// go into the trail.
func (t *Trail) DecisionHook() extauthz.Auditor {
	if !t.On() || t.decisions == "none" {
		return nil
	}
	return t
}

// MFAHook is the MFA step's and the admin endpoint's auditor; nil without
// a trail.
func (t *Trail) MFAHook() mfa.Auditor {
	if !t.On() {
		return nil
	}
	return t
}

// AuditDecision implements extauthz.Auditor.
func (t *Trail) AuditDecision(r extauthz.DecisionRecord) {
	if t.decisions == "non_allow" && r.Decision == "allow" && (!r.DryRun || r.Would == "allow") {
		return
	}
	t.record(decisionEvent(r))
}

// AuditMFA implements mfa.Auditor.
func (t *Trail) AuditMFA(e mfa.AuditEvent) { t.record(mfaEvent(e)) }

func (t *Trail) record(e Event) {
	if err := t.w.Record(e); err != nil {
		t.lost.Inc()
		if t.failing.CompareAndSwap(false, true) {
			t.log.Error("audit trail: cannot write, audit events are being lost", "file", t.w.Path(), "error", err.Error())
		}
		return
	}
	if t.failing.Load() && t.failing.CompareAndSwap(true, false) {
		t.log.Info("audit trail: writing again", "file", t.w.Path())
	}
}

// Reopen opens the file again after log rotation (SIGHUP).
func (t *Trail) Reopen() {
	if !t.On() {
		return
	}
	if err := t.w.Reopen(); err != nil {
		t.log.Error("audit trail: cannot reopen, still writing to the previous file", "file", t.w.Path(), "error", err.Error())
		return
	}
	t.log.Info("audit trail reopened", "file", t.w.Path())
}

// Lost counts the audit events that could not be written.
func (t *Trail) Lost() prometheus.Counter { return t.lost }

// Close closes the file, if there is one.
func (t *Trail) Close() {
	if t.On() {
		_ = t.w.Close()
	}
}

// decisionEvent is the audit line of a decision.
func decisionEvent(r extauthz.DecisionRecord) Event {
	return Event{
		Event: Decision, DecisionID: r.DecisionID, RequestID: r.RequestID, Mode: string(r.Mode),
		Host: r.Host, Method: r.Method, Path: r.Path, User: r.User, ClientIP: r.ClientIP, Network: r.Network,
		ClientID: r.ClientID, Decision: r.Decision, Reason: string(r.Reason), Status: r.Status, Rule: r.Rule,
		Factor: r.Factor, LatencyMS: Float(float64(r.Latency.Microseconds()) / 1000), DryRun: r.DryRun, Would: r.Would,
	}
}

// mfaEvent is the audit line of an MFA event. The names are the same
// (TestAuditNames).
func mfaEvent(e mfa.AuditEvent) Event {
	ev := Event{
		Event: Name(e.Name), By: e.By, User: e.User, ClientIP: e.ClientIP, Host: e.Host, RequestID: e.RequestID,
		Factor: e.Factor, Result: e.Result, Scope: e.Scope, Failures: e.Failures, Device: e.Device,
	}
	if e.Pause > 0 {
		ev.PauseSeconds = Float(e.Pause.Seconds())
	}
	if r := e.Removed; r != nil {
		ev.Counts = &Counts{Authenticators: r.Authenticators, Passkeys: r.Passkeys, RecoveryCodes: r.RecoveryCodes, Sessions: r.Sessions}
	}
	return ev
}

// CLIRecord writes an event of the command line to log.audit.file. When
// the command went through the running server's admin endpoint, the
// server wrote it (by admin) and CLIRecord writes nothing.
func CLIRecord(cfg *config.Config, direct bool, e mfa.AuditEvent, log *slog.Logger) {
	if !direct || cfg.Log.Audit.File == "" {
		return
	}
	e.By = mfa.AuditByCLI
	w, err := Open(cfg.Resolve(cfg.Log.Audit.File))
	if err == nil {
		err = w.Record(mfaEvent(e))
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		log.Error("audit trail: cannot write this change", "file", cfg.Log.Audit.File, "error", err.Error())
	}
}
