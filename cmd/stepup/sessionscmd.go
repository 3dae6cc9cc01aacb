package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/internal/admin"
	"github.com/stepup-dev/stepup/internal/audit"
	"github.com/stepup-dev/stepup/internal/sessions"
	"github.com/stepup-dev/stepup/mfa"
	"github.com/stepup-dev/stepup/session"
)

// runKeys implements `stepup keys generate [--count N]`.
func runKeys(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "generate" {
		return fmt.Errorf("%w: keys generate [--count N]", errUsage)
	}
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("count", 1, "number of keys")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *n < 1 || *n > 16 {
		return fmt.Errorf("%w: --count must be 1 to 16", errUsage)
	}
	keys := make([]session.Key, 0, *n)
	for i := 0; i < *n; i++ {
		k, err := session.GenerateKey()
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	fmt.Fprintln(stdout, "# stepup session keys: id:secret (base64). Keep them secret; the first one signs.")
	fmt.Fprintln(stdout, "# Put them in sessions.keys as {id: ID, secret: {env: VAR}} or {file: PATH}.")
	for _, k := range keys {
		fmt.Fprintln(stdout, session.FormatKeys([]session.Key{k}))
	}
	return nil
}

// runSessions implements `stepup sessions list|revoke`.
func runSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "revoke") {
		return fmt.Errorf("%w: sessions list --user U | sessions revoke --user U [--device ID]", errUsage)
	}
	verb := args[0]
	fs := flag.NewFlagSet("sessions "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath, user := userFlags(fs)
	device := fs.String("device", "", "revoke only this remembered browser or MFA session id")
	asJSON := fs.Bool("json", false, "print JSON (list)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *user == "" {
		return fmt.Errorf("%w: --user is required", errUsage)
	}
	if verb == "list" && *device != "" {
		return fmt.Errorf("%w: --device is for revoke", errUsage)
	}
	u, err := openUserCommand(*cfgPath, stderr)
	if err != nil {
		return err
	}
	defer u.close()
	switch verb {
	case "list":
		s, err := u.ops.ListUser(ctx, *user)
		if err != nil {
			return err
		}
		return printSessions(stdout, *user, s, *asJSON)
	default:
		n, err := u.ops.Revoke(ctx, *user, *device)
		if err != nil {
			return err
		}
		u.record(mfa.AuditEvent{Name: mfa.AuditSessionsRevoked, User: *user, Device: *device, Removed: &mfa.ResetResult{Sessions: n}})
		fmt.Fprintf(stdout, "revoked %d session(s) and remembered browser(s) of %s\n", n, *user)
		if n == 0 && *device != "" {
			return fmt.Errorf("no session or device %q for %s", *device, *user)
		}
		return nil
	}
}

// userFlags defines the --config and --user flags of the commands on one
// user's factors and sessions.
func userFlags(fs *flag.FlagSet) (cfgPath, user *string) {
	cfgPath = fs.String("config", "", "configuration file (default: the embedded default)")
	user = fs.String("user", "", "the user (the identity's user claim, e.g. auth0|alice)")
	return cfgPath, user
}

// userCommand is what `factors reset` and `sessions list|revoke` work
// with: the configuration, a quiet log, and the operations on a user.
type userCommand struct {
	cfg   *config.Config
	log   *slog.Logger
	ops   admin.Ops
	close func()
}

// openUserCommand loads the configuration at cfgPath and opens the user
// operations (see openUserOps). The caller closes it.
func openUserCommand(cfgPath string, stderr io.Writer) (*userCommand, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	log := newLogger(stderr, "warn")
	ops, closeOps, err := openUserOps(cfg, log)
	if err != nil {
		return nil, err
	}
	return &userCommand{cfg: cfg, log: log, ops: ops, close: closeOps}, nil
}

// record writes e to log.audit.file, unless the command went through the
// running server's admin endpoint (the server wrote it).
func (u *userCommand) record(e mfa.AuditEvent) {
	_, direct := u.ops.(admin.StoreOps)
	audit.CLIRecord(u.cfg, direct, e, u.log)
}

// openUserOps works directly on the store, or through the running server's
// admin endpoint when the embedded store is locked by it.
func openUserOps(cfg *config.Config, log *slog.Logger) (admin.Ops, func(), error) {
	store, err := sessions.OpenStore(cfg, log)
	if err == nil {
		m, err := sessions.NewManager(cfg, store, log)
		if err != nil {
			store.Close()
			return nil, nil, err
		}
		return admin.StoreOps{Manager: m, Store: store}, func() { store.Close() }, nil
	}
	if !sessions.IsLocked(err) {
		return nil, nil, err
	}
	// The embedded store belongs to a running server: ask it.
	dir, err := sessions.DataDir(cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := admin.NewClient(dir, cfg.Server.HTTP.Listen, cfg.Server.HTTP.TLS.Enabled())
	if err != nil {
		return nil, nil, fmt.Errorf("the session store is locked by a running stepup, and its admin endpoint cannot be used: %w", err)
	}
	return c, func() {}, nil
}

func printSessions(w io.Writer, user string, s session.Sessions, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KIND\tID\tREALM\tPROVES\tCREATED\tLAST USED\tEXPIRES\tBROWSER\n")
	for _, m := range s.MFA {
		fmt.Fprintf(tw, "mfa-session\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, orDash(m.Realm), proofList(m.Proofs), ts(m.IssuedAt), ts(m.LastSeen), ts(m.ExpiresAt), m.UserAgent)
	}
	for _, d := range s.Devices {
		fmt.Fprintf(tw, "remembered\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, orDash(d.Realm), proofList(d.Proofs), ts(d.Created), ts(d.LastUsed), ts(d.ExpiresAt), d.UserAgent)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d MFA session(s), %d remembered browser(s) for %s\n", len(s.MFA), len(s.Devices), user)
	return nil
}

// proofList shows what a session proves: each factor with the time it
// was proven; a completed redirect that is no factor shows as such. A
// session recorded before sessions named their factors proves nothing.
func proofList(ps []session.Proof) string {
	if len(ps) == 0 {
		return "nothing (outdated)"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		name := p.Factor
		if strings.HasPrefix(name, session.CompletedPrefix) {
			name = "redirect-completed"
		}
		parts[i] = name + "@" + ts(p.At)
	}
	return strings.Join(parts, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
