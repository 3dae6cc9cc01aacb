package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stepup-dev/stepup/config"
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
	cfgPath := fs.String("config", "", "configuration file (default: the embedded default)")
	user := fs.String("user", "", "the user (the identity's user claim, e.g. auth0|alice)")
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
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, "warn")
	ops, closeOps, err := openSessionOps(cfg, log)
	if err != nil {
		return err
	}
	defer closeOps()
	switch verb {
	case "list":
		s, err := ops.list(ctx, *user)
		if err != nil {
			return err
		}
		return printSessions(stdout, *user, s, *asJSON)
	default:
		n, err := ops.revoke(ctx, *user, *device)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %d session(s) and remembered browser(s) of %s\n", n, *user)
		if n == 0 && *device != "" {
			return fmt.Errorf("no session or device %q for %s", *device, *user)
		}
		return nil
	}
}

// sessionOps lists and revokes, directly on the store or through the
// running server's admin endpoint when the embedded store is locked by it.
type sessionOps struct {
	list   func(ctx context.Context, user string) (session.Sessions, error)
	revoke func(ctx context.Context, user, id string) (int, error)
}

func openSessionOps(cfg *config.Config, log *slog.Logger) (sessionOps, func(), error) {
	store, err := openStore(cfg, log)
	if err == nil {
		m, err := newManager(cfg, store, log)
		if err != nil {
			store.Close()
			return sessionOps{}, nil, err
		}
		return sessionOps{list: m.ListUser, revoke: m.Revoke}, func() { store.Close() }, nil
	}
	if !isLocked(err) {
		return sessionOps{}, nil, err
	}
	// The embedded store belongs to a running server: ask it.
	c, err := newAdminClient(cfg)
	if err != nil {
		return sessionOps{}, nil, fmt.Errorf("the session store is locked by a running stepup, and its admin endpoint cannot be used: %w", err)
	}
	return sessionOps{list: c.list, revoke: c.revoke}, func() {}, nil
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

// The admin endpoint lets the CLI reach a running server's embedded store.
// It answers only loopback peers presenting the token kept in the data
// directory (mode 0600): whoever can read the data directory could open the
// store anyway. Proxies route only the MFA prefix to stepup, never /admin.
const (
	adminPath      = "/admin/sessions"
	adminTokenFile = "admin-token"
	// adminAddrFile records the HTTP listener's bound address (the
	// configured port may be 0).
	adminAddrFile = "admin-address"
)

func writeAdminAddress(dataDir, addr string) error {
	return os.WriteFile(filepath.Join(dataDir, adminAddrFile), []byte(addr+"\n"), 0o600)
}

// ensureAdminToken creates the admin token file if needed and returns it.
func ensureAdminToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, adminTokenFile)
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

// adminHandler serves list (GET) and revoke (DELETE) for the CLI.
func adminHandler(m *session.Manager, token string, log *slog.Logger) http.Handler {
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
		user := r.URL.Query().Get("user")
		if user == "" {
			http.Error(w, "user is required", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		switch r.Method {
		case http.MethodGet:
			s, err := m.ListUser(r.Context(), user)
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			_ = json.NewEncoder(w).Encode(s)
		case http.MethodDelete:
			n, err := m.Revoke(r.Context(), user, r.URL.Query().Get("id"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			log.Info("sessions revoked through the admin endpoint", "user", user, "count", n)
			_ = json.NewEncoder(w).Encode(map[string]int{"revoked": n})
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

func remotePeer(s string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

type adminClient struct {
	base, token string
	hc          *http.Client
}

func newAdminClient(cfg *config.Config) (*adminClient, error) {
	dir, err := dataDirOf(cfg)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil {
		return nil, err
	}
	if cfg.Server.HTTP.TLS.Enabled() {
		return nil, errors.New("the HTTP listener uses TLS; stop the server or use the Redis store")
	}
	listen := cfg.Server.HTTP.Listen
	if b, err := os.ReadFile(filepath.Join(dir, adminAddrFile)); err == nil {
		listen = strings.TrimSpace(string(b))
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return &adminClient{
		base:  "http://" + net.JoinHostPort(host, port) + adminPath,
		token: strings.TrimSpace(string(b)),
		hc:    &http.Client{Timeout: 10 * time.Second},
	}, nil
}

func (c *adminClient) do(ctx context.Context, method, user, id string, out any) error {
	q := url.Values{"user": {user}}
	if id != "" {
		q.Set("id", id)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("admin endpoint: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *adminClient) list(ctx context.Context, user string) (session.Sessions, error) {
	var s session.Sessions
	err := c.do(ctx, http.MethodGet, user, "", &s)
	return s, err
}

func (c *adminClient) revoke(ctx context.Context, user, id string) (int, error) {
	var r struct{ Revoked int }
	err := c.do(ctx, http.MethodDelete, user, id, &r)
	return r.Revoked, err
}
