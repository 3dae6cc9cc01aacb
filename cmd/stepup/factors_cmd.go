package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/mfa"
	"github.com/stepup-dev/stepup/session"
)

// adminFactorsPath is the admin endpoint that resets a user's factors for
// the CLI while a running server holds the embedded store (DELETE
// ?user=U). Like adminPath, it answers loopback peers with the admin token
// only, and proxies never route it.
const adminFactorsPath = "/admin/factors"

// runFactors implements `stepup factors reset --user U [--config FILE]`.
func runFactors(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "reset" {
		return fmt.Errorf("%w: factors reset --user U [--config FILE]", errUsage)
	}
	fs := flag.NewFlagSet("factors reset", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded default)")
	user := fs.String("user", "", "the user (the identity's user claim, e.g. auth0|alice)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *user == "" {
		return fmt.Errorf("%w: --user is required", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, "warn")
	reset, closeReset, err := openFactorReset(cfg, log)
	if err != nil {
		return err
	}
	defer closeReset()
	res, err := reset(ctx, *user)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "reset %s: removed %d authenticator(s) and %d recovery code(s), revoked %d session(s) and remembered browser(s)\n",
		*user, res.Authenticators, res.RecoveryCodes, res.Sessions)
	if res.Authenticators == 0 && res.RecoveryCodes == 0 {
		fmt.Fprintf(stdout, "%s had no factors enrolled\n", *user)
	}
	return nil
}

type factorResetFunc func(ctx context.Context, user string) (mfa.ResetResult, error)

// openFactorReset resets directly on the store, or through the running
// server's admin endpoint when the embedded store is locked by it.
func openFactorReset(cfg *config.Config, log *slog.Logger) (factorResetFunc, func(), error) {
	store, err := openStore(cfg, log)
	if err == nil {
		m, err := newManager(cfg, store, log)
		if err != nil {
			store.Close()
			return nil, nil, err
		}
		return func(ctx context.Context, user string) (mfa.ResetResult, error) {
			return mfa.ResetFactors(ctx, store, m, user)
		}, func() { store.Close() }, nil
	}
	if !isLocked(err) {
		return nil, nil, err
	}
	c, err := newAdminClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("the session store is locked by a running stepup, and its admin endpoint cannot be used: %w", err)
	}
	c.base = strings.TrimSuffix(c.base, adminPath) + adminFactorsPath
	return func(ctx context.Context, user string) (mfa.ResetResult, error) {
		var res mfa.ResetResult
		err := c.do(ctx, http.MethodDelete, user, "", &res)
		return res, err
	}, func() {}, nil
}

// adminFactorsHandler resets a user's factors (DELETE ?user=U) for the
// CLI; mount it at adminFactorsPath next to adminHandler.
func adminFactorsHandler(store session.Store, m *session.Manager, token string, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := remotePeer(r.RemoteAddr)
		if err != nil || !peer.IsLoopback() {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodDelete {
			w.Header().Set("Allow", http.MethodDelete)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		user := r.URL.Query().Get("user")
		if user == "" {
			http.Error(w, "user is required", http.StatusBadRequest)
			return
		}
		res, err := mfa.ResetFactors(r.Context(), store, m, user)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		log.Info("factors reset through the admin endpoint", "user", user,
			"authenticators", res.Authenticators, "recovery_codes", res.RecoveryCodes, "sessions", res.Sessions)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(res)
	})
}
