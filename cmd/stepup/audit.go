package main

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/internal/audit"
	"github.com/stepup-dev/stepup/mfa"
)

// auditTrail is log.audit for a running server: it turns the decision
// core's and the MFA step's records into audit events, counts the events
// it could not write, and logs when writing starts and stops failing. With
// no file configured it writes nothing; its counter is exported anyway.
type auditTrail struct {
	w         *audit.Writer // nil: no audit trail
	decisions string        // all, non_allow or none
	lost      prometheus.Counter
	log       *slog.Logger
	failing   atomic.Bool
}

// openAuditTrail opens log.audit.file, if set. With validate it only
// checks that serve could open it, creating and writing nothing.
func openAuditTrail(cfg *config.Config, log *slog.Logger, validate bool) (*auditTrail, error) {
	t := &auditTrail{
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
		if err := audit.Check(cfg.Resolve(cfg.Log.Audit.File)); err != nil {
			return nil, fmt.Errorf("log.audit.file: %w", err)
		}
		return t, nil
	}
	w, err := audit.Open(cfg.Resolve(cfg.Log.Audit.File))
	if err != nil {
		return nil, fmt.Errorf("log.audit.file: %w", err)
	}
	t.w = w
	return t, nil
}

// on reports whether there is a file to write to.
func (t *auditTrail) on() bool { return t != nil && t.w != nil }

// decisionHook is the decision core's auditor; nil when decisions do not
// go into the trail.
func (t *auditTrail) decisionHook() extauthz.Auditor {
	if !t.on() || t.decisions == "none" {
		return nil
	}
	return t
}

// mfaHook is the MFA step's and the admin endpoint's auditor; nil without
// a trail.
func (t *auditTrail) mfaHook() mfa.Auditor {
	if !t.on() {
		return nil
	}
	return t
}

// AuditDecision implements extauthz.Auditor.
func (t *auditTrail) AuditDecision(r extauthz.DecisionRecord) {
	if t.decisions == "non_allow" && r.Decision == "allow" && (!r.DryRun || r.Would == "allow") {
		return
	}
	t.record(decisionEvent(r))
}

// AuditMFA implements mfa.Auditor.
func (t *auditTrail) AuditMFA(e mfa.AuditEvent) { t.record(mfaEvent(e)) }

func (t *auditTrail) record(e audit.Event) {
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

// reopen opens the file again after log rotation (SIGHUP).
func (t *auditTrail) reopen() {
	if !t.on() {
		return
	}
	if err := t.w.Reopen(); err != nil {
		t.log.Error("audit trail: cannot reopen, still writing to the previous file", "file", t.w.Path(), "error", err.Error())
		return
	}
	t.log.Info("audit trail reopened", "file", t.w.Path())
}

func (t *auditTrail) close() {
	if t.on() {
		_ = t.w.Close()
	}
}

// decisionEvent is the audit line of a decision.
func decisionEvent(r extauthz.DecisionRecord) audit.Event {
	return audit.Event{
		Event: audit.Decision, DecisionID: r.DecisionID, RequestID: r.RequestID, Mode: string(r.Mode),
		Host: r.Host, Method: r.Method, Path: r.Path, User: r.User, ClientIP: r.ClientIP, Network: r.Network,
		ClientID: r.ClientID, Decision: r.Decision, Reason: string(r.Reason), Status: r.Status, Rule: r.Rule,
		Factor: r.Factor, LatencyMS: audit.Float(float64(r.Latency.Microseconds()) / 1000), DryRun: r.DryRun, Would: r.Would,
	}
}

// mfaEvent is the audit line of an MFA event. The names are the same
// (TestAuditNames).
func mfaEvent(e mfa.AuditEvent) audit.Event {
	ev := audit.Event{
		Event: audit.Name(e.Name), By: e.By, User: e.User, ClientIP: e.ClientIP, Host: e.Host, RequestID: e.RequestID,
		Factor: e.Factor, Result: e.Result, Scope: e.Scope, Failures: e.Failures, Device: e.Device,
	}
	if e.Pause > 0 {
		ev.PauseSeconds = audit.Float(e.Pause.Seconds())
	}
	if r := e.Removed; r != nil {
		ev.Counts = &audit.Counts{Authenticators: r.Authenticators, Passkeys: r.Passkeys, RecoveryCodes: r.RecoveryCodes, Sessions: r.Sessions}
	}
	return ev
}

// cliAudit writes an event of the command line to log.audit.file. When
// the command went through the running server's admin endpoint, the
// server wrote it (by admin) and cliAudit writes nothing.
func cliAudit(cfg *config.Config, direct bool, e mfa.AuditEvent, log *slog.Logger) {
	if !direct || cfg.Log.Audit.File == "" {
		return
	}
	e.By = mfa.AuditByCLI
	w, err := audit.Open(cfg.Resolve(cfg.Log.Audit.File))
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
