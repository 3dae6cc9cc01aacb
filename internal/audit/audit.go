// Package audit writes stepup's audit trail: one JSON line per event, a
// decision on a check or something that happened to a user's second
// factors, to a file that log rotation can move away (the server reopens
// it on SIGHUP).
//
// The contract:
//
//   - An [Event] has a fixed set of fields, none of which can hold a
//     cookie, a token, a code, a secret, a query string or a header
//     value: what a caller cannot put in, the file cannot leak.
//   - Event names are a fixed set ([Names]); an event with another name is
//     refused, not written.
//   - A [Writer] is safe for concurrent use; each event is one write(2) of
//     one whole line to a file opened with O_APPEND, so lines from
//     several goroutines, or from several processes appending to the same
//     file (the server and `stepup sessions revoke`), never interleave.
//   - [Writer.Reopen] opens the path again before it lets go of the old
//     file: every line is written to the old file or to the new one, none
//     is lost while the file is being rotated.
//
// A [Trail] is the server's use of a Writer: it turns the decision core's
// and the MFA step's records into events (as their auditors) and counts
// the events it could not write; [CLIRecord] is the command line's.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Name names an event.
type Name string

// The events. Every one carries the time, the event name and, where one
// is involved, the user; MFA events say who acted in By.
const (
	// Decision is one check decided (allow, deny or MFA required), with
	// the fields of the decision log line.
	Decision Name = "decision"
	// Enrolled: a user confirmed their first factor (Factor says which).
	Enrolled Name = "enrolled"
	// Verified: a user passed the MFA step with Factor.
	Verified Name = "verified"
	// Failed: a wrong, reused or refused answer to the MFA step (Result
	// says which).
	Failed Name = "failed"
	// Locked: verification was paused for a user or an address (Scope)
	// after too many failures.
	Locked Name = "locked"
	// FactorsReset: every factor and recovery code of the user removed.
	FactorsReset Name = "factors_reset"
	// CodesRegenerated: a new set of recovery codes replaced the old one.
	CodesRegenerated Name = "recovery_codes_regenerated"
	// PasskeyAdded: another passkey or security key was added.
	PasskeyAdded Name = "passkey_added"
	// PasskeyRemoved: a passkey or security key was removed.
	PasskeyRemoved Name = "passkey_removed"
	// AuthenticatorRemoved: the authenticator app was removed.
	AuthenticatorRemoved Name = "authenticator_removed"
	// BrowserForgotten: one remembered browser (Device) was forgotten.
	BrowserForgotten Name = "browser_forgotten"
	// SessionsRevoked: MFA sessions and remembered browsers of the user
	// were revoked (all of them, or the one named by Device).
	SessionsRevoked Name = "sessions_revoked"
)

// names is the fixed set, in documentation order.
var names = []Name{Decision, Enrolled, Verified, Failed, Locked, FactorsReset, CodesRegenerated,
	PasskeyAdded, PasskeyRemoved, AuthenticatorRemoved, BrowserForgotten, SessionsRevoked}

// Names returns every event name.
func Names() []Name { return slices.Clone(names) }

// Known reports whether n is one of [Names].
func Known(n Name) bool { return slices.Contains(names, n) }

// Who acted, for By.
const (
	ByUser  = "user"  // the user, on the MFA step's pages
	ByCLI   = "cli"   // the command line, on the session store
	ByAdmin = "admin" // the command line, through the running server's admin endpoint
)

// Event is one audit line. Empty fields are left out of the line; the
// counts of a reset or a revocation are always written.
type Event struct {
	Time  time.Time `json:"time"`
	Event Name      `json:"event"`
	// By is who acted: ByUser, ByCLI or ByAdmin (MFA events).
	By string `json:"by,omitempty"`

	// Decisions and MFA events.
	DecisionID string `json:"decision_id,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	Mode       string `json:"mode,omitempty"`
	Host       string `json:"host,omitempty"`
	Method     string `json:"method,omitempty"`
	// Path never carries the query: queries carry codes and states.
	Path     string `json:"path,omitempty"`
	User     string `json:"user,omitempty"`
	ClientIP string `json:"client_ip,omitempty"`
	Network  string `json:"network,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Decision string `json:"decision,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Status   int    `json:"status,omitempty"`
	Rule     string `json:"rule,omitempty"`
	// Factor is the factor that met the requirement (decisions), or the
	// factor the event is about (MFA events).
	Factor    string   `json:"factor,omitempty"`
	LatencyMS *float64 `json:"latency_ms,omitempty"`
	DryRun    bool     `json:"dry_run,omitempty"`
	Would     string   `json:"would,omitempty"`

	// MFA events.
	Result       string   `json:"result,omitempty"`
	Scope        string   `json:"scope,omitempty"`
	Failures     int64    `json:"failures,omitempty"`
	PauseSeconds *float64 `json:"pause_seconds,omitempty"`
	// Device is the id of a remembered browser or MFA session (as
	// `stepup sessions list` shows it), never its cookie.
	Device string  `json:"device,omitempty"`
	Counts *Counts `json:"counts,omitempty"`
}

// Counts are what a reset or a revocation removed.
type Counts struct {
	Authenticators int `json:"authenticators"`
	Passkeys       int `json:"passkeys"`
	RecoveryCodes  int `json:"recovery_codes"`
	Sessions       int `json:"sessions"`
}

// Float returns a pointer to f, for LatencyMS and PauseSeconds.
func Float(f float64) *float64 { return &f }

// ErrClosed is returned by [Writer.Record] after [Writer.Close].
var ErrClosed = errors.New("audit: the writer is closed")

// Writer appends events to a file. It is safe for concurrent use.
type Writer struct {
	path string
	now  func() time.Time

	mu sync.Mutex
	f  *os.File
}

// FileMode is the mode of a file the writer creates: the trail names
// users and their addresses.
const FileMode = 0o600

// Open opens path for appending, creating it (and not its directory) if
// needed.
func Open(path string) (*Writer, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return &Writer{path: path, now: time.Now, f: f}, nil
}

// Check reports whether [Open] could open path, without creating or
// writing anything: the file must be writable, or its directory exist.
func Check(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("audit: %w", err)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("audit: %s is not a directory", filepath.Dir(path))
	}
	return nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return f, nil
}

// Path is the file the writer appends to.
func (w *Writer) Path() string { return w.path }

// Record writes e as one line. A zero Time is the current time. It
// returns an error when the name is not one of [Names], or the line
// could not be written (the event is then lost: the caller counts it).
func (w *Writer) Record(e Event) error {
	if !Known(e.Event) {
		return fmt.Errorf("audit: unknown event %q", e.Event)
	}
	if e.Time.IsZero() {
		e.Time = w.now()
	}
	e.Time = e.Time.UTC()
	line, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	line = append(line, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return ErrClosed
	}
	// One write of the whole line: with O_APPEND it lands in one piece.
	if _, err := w.f.Write(line); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Reopen opens the path again (after log rotation moved the file away)
// and switches to it; on error the writer keeps appending to the file it
// has. Lines are never lost: each goes whole to the old file or the new.
func (w *Writer) Reopen() error {
	f, err := openFile(w.path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	old := w.f
	if old == nil {
		w.mu.Unlock()
		f.Close()
		return ErrClosed
	}
	w.f = f
	w.mu.Unlock()
	// No Record holds old any more: it wrote under the lock.
	if err := old.Close(); err != nil {
		return fmt.Errorf("audit: closing the previous file: %w", err)
	}
	return nil
}

// Close closes the file; later events are refused with [ErrClosed].
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
