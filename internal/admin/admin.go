// Package admin is the endpoint through which the command line reaches a
// running server whose embedded session store it cannot open (the store is
// locked by the server), and the client the command line uses.
//
// The endpoint answers only loopback peers presenting the token kept in
// the data directory (mode 0600): whoever can read the data directory could
// open the store anyway. Proxies route only the MFA prefix to stepup, never
// the admin paths.
package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/stepup-dev/stepup/mfa"
	"github.com/stepup-dev/stepup/session"
)

const (
	// SessionsPath lists (GET ?user=U) and revokes (DELETE ?user=U[&id=ID])
	// a user's MFA sessions and remembered browsers.
	SessionsPath = "/admin/sessions"
	// FactorsPath resets a user's factors (DELETE ?user=U).
	FactorsPath = "/admin/factors"
	// TokenFile, in the data directory, holds the bearer token.
	TokenFile = "admin-token"
	// AddressFile, in the data directory, records the HTTP listener's
	// bound address (the configured port may be 0).
	AddressFile = "admin-address"
)

// WriteAddress records addr, the HTTP listener's address, in dataDir.
func WriteAddress(dataDir, addr string) error {
	return os.WriteFile(filepath.Join(dataDir, AddressFile), []byte(addr+"\n"), 0o600)
}

// EnsureToken creates the token file in dataDir if needed and returns the
// token.
func EnsureToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); len(tok) >= 32 {
			return tok, nil
		}
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(buf)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return tok, nil
}

// Ops are what the command line does to a user: list and revoke their MFA
// sessions and remembered browsers, reset their factors. [StoreOps] does
// it on the store, a [Client] through a running server.
type Ops interface {
	ListUser(ctx context.Context, user string) (session.Sessions, error)
	// Revoke revokes one session or remembered browser (id), or all of
	// them (id ""), and returns how many.
	Revoke(ctx context.Context, user, id string) (int, error)
	// ResetFactors removes the user's factors and forgets their sessions.
	ResetFactors(ctx context.Context, user string) (mfa.ResetResult, error)
}

// StoreOps are the [Ops] on a store and its session manager.
type StoreOps struct {
	*session.Manager
	Store session.Store
}

// ResetFactors implements [Ops].
func (o StoreOps) ResetFactors(ctx context.Context, user string) (mfa.ResetResult, error) {
	return mfa.ResetFactors(ctx, o.Store, o.Manager, user)
}

// Options configure [Register].
type Options struct {
	// Token is the bearer token every request must present.
	Token  string
	Ops    Ops
	Logger *slog.Logger
	// Audit, when set, receives each revocation and reset (by admin).
	Audit mfa.Auditor
}

// audit hands e to the auditor, if any.
func (o Options) audit(e mfa.AuditEvent) {
	if o.Audit != nil {
		e.By = mfa.AuditByAdmin
		o.Audit.AuditMFA(e)
	}
}

// Register mounts the admin endpoints on mux.
func Register(mux *http.ServeMux, o Options) {
	mux.Handle(SessionsPath, o.guard(o.sessions))
	mux.Handle(FactorsPath, o.guard(o.factors))
}

// guard admits loopback peers with the token to h, and asks for a user.
func (o Options) guard(h func(w http.ResponseWriter, r *http.Request, user string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !peer.Addr().Unmap().IsLoopback() {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(o.Token)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		user := r.URL.Query().Get("user")
		if user == "" {
			http.Error(w, "user is required", http.StatusBadRequest)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, user)
	})
}

func (o Options) sessions(w http.ResponseWriter, r *http.Request, user string) {
	var out any
	switch r.Method {
	case http.MethodGet:
		s, err := o.Ops.ListUser(r.Context(), user)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out = s
	case http.MethodDelete:
		id := r.URL.Query().Get("id")
		n, err := o.Ops.Revoke(r.Context(), user, id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		o.Logger.Info("sessions revoked through the admin endpoint", "user", user, "count", n)
		o.audit(mfa.AuditEvent{Name: mfa.AuditSessionsRevoked, User: user, Device: id, Removed: &mfa.ResetResult{Sessions: n}})
		out = map[string]int{"revoked": n}
	default:
		w.Header().Set("Allow", "GET, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (o Options) factors(w http.ResponseWriter, r *http.Request, user string) {
	if r.Method != http.MethodDelete {
		w.Header().Set("Allow", http.MethodDelete)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	res, err := o.Ops.ResetFactors(r.Context(), user)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	o.Logger.Info("factors reset through the admin endpoint", "user", user,
		"authenticators", res.Authenticators, "recovery_codes", res.RecoveryCodes, "sessions", res.Sessions)
	o.audit(mfa.AuditEvent{Name: mfa.AuditFactorsReset, User: user, Removed: &res})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}
