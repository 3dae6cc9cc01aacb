package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stepup-dev/stepup/cidr"
	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/internal/audit"
	"github.com/stepup-dev/stepup/internal/buildinfo"
	"github.com/stepup-dev/stepup/internal/gotune"
	"github.com/stepup-dev/stepup/internal/jwtkeys"
	"github.com/stepup-dev/stepup/internal/rulesload"
	"github.com/stepup-dev/stepup/internal/sessions"
	"github.com/stepup-dev/stepup/mfa"
	"github.com/stepup-dev/stepup/session"
	"github.com/stepup-dev/stepup/session/memstore"
)

// app is everything built from a configuration, shared by serve and check.
type app struct {
	cfg      *config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	nets     *cidr.Matcher
	authz    *extauthz.Server
	store    session.Store
	sessions *session.Manager
	rules    *rulesload.Reloader // nil when no rules are configured
	// now is the clock of decisions (nil: the real one); see testClockFlag.
	now      func() time.Time
	closers  []func()
	warnings []string
	// notes are what `config validate` did not check, and why.
	notes []string
	// tuner applies the runtime section (serve only; nil elsewhere).
	tuner *gotune.Tuner
	// audit is the audit trail (serve only; nil elsewhere).
	audit *audit.Trail

	// sealer encrypts secrets at rest: TOTP seeds, and the Duo secret in
	// transaction states.
	sealer *session.Sealer
	// realms groups hosts that share sessions; Check and the MFA step use
	// the same.
	realms *session.Realms
}

func (a *app) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// loadConfig reads --config, or the embedded default when path is "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// buildOptions tune buildApp for a command.
type buildOptions struct {
	// dryRun: if the embedded store is locked by a running server, use an
	// empty in-memory store instead of failing.
	dryRun bool
	// now replaces the real clock of the session manager, identity token
	// expiry and the MFA step: the --test-clock-file hook. nil: time.Now.
	now func() time.Time
	// validate builds for `config validate`: everything serve loads is
	// loaded and refused as serve refuses it, but nothing is created or
	// written (data directory, generated keys, admin token) and nothing is
	// started. The session store is probed without being locked or
	// written (see probeStore); an in-memory store stands in for it.
	validate bool
	// audit receives decisions and MFA events (serve); nil: none.
	audit *audit.Trail
}

// buildApp wires the decision core from cfg.
func buildApp(ctx context.Context, cfg *config.Config, log *slog.Logger, bo buildOptions) (*app, error) {
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry(), now: bo.now, audit: bo.audit}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if a.audit != nil {
		a.reg.MustRegister(a.audit.Lost())
	}
	bi := buildinfo.Read()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "stepup_build_info",
		Help:        "Always 1; labels say which build runs (revision is the short commit hash, empty when unknown).",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.GoVersion},
	})
	buildInfo.Set(1)
	a.reg.MustRegister(buildInfo)

	nets, err := loadNetworks(cfg)
	if err != nil {
		return nil, err
	}
	if !bo.validate {
		if err := os.MkdirAll(mustDataDir(cfg), 0o700); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
	}
	a.nets = cidr.NewMatcher(nets)

	var store session.Store
	if bo.validate {
		a.notes, err = sessions.ProbeStore(ctx, cfg, log)
		store = memstore.New(memstore.Options{})
	} else {
		store, err = sessions.OpenStore(cfg, log)
	}
	if err != nil && bo.dryRun && sessions.IsLocked(err) {
		log.Warn("the session store is in use by a running server: this dry run checks cookies against an empty store")
		store, err = memstore.New(memstore.Options{}), nil
	}
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	a.store = store
	a.closers = append(a.closers, func() { _ = store.Close() })
	keyNote := func(note string) { a.notes = append(a.notes, note) }
	if !bo.validate {
		keyNote = nil
	}
	a.sessions, err = sessions.NewManagerKeys(cfg, store, log, bo.now, keyNote)
	if err != nil {
		a.Close()
		return nil, err
	}
	if a.sealer, err = sessions.NewSealerKeys(cfg, log, keyNote); err != nil {
		a.Close()
		return nil, err
	}
	if a.realms, err = session.NewRealms(cfg.Sessions.Realms); err != nil {
		a.Close()
		return nil, fmt.Errorf("sessions.realms: %w", err)
	}

	idOpts := extauthz.IdentityOptions{
		JWTAuthn:    cfg.Identity.JWTAuthn.On(),
		UserClaim:   cfg.Identity.UserClaim,
		Header:      strings.ToLower(cfg.Identity.Header.Name),
		EmailHeader: strings.ToLower(cfg.Identity.Header.EmailName),
		HeaderPeers: cfg.HeaderTrustedPeers(),
		Issuer:      cfg.Identity.JWT.Issuer,
		Audiences:   cfg.Identity.JWT.Audiences,
		Algorithms:  cfg.Identity.JWT.Algorithms,
		Leeway:      cfg.Identity.JWT.Leeway.D(),
		Cookie:      cfg.Identity.JWT.Cookie,
		Bearer:      cfg.Identity.JWT.BearerOn(),
		Now:         bo.now,
	}
	if kf, err := buildKeyfunc(ctx, cfg, log); err != nil {
		return nil, err
	} else if kf != nil {
		idOpts.Keyfunc = kf
	}

	var policy extauthz.Policy
	if len(cfg.Rules.List) > 0 {
		rm := rulesload.NewMetrics(a.reg)
		e, err := rulesload.NewEngine(cfg, log, rm)
		if err != nil {
			a.Close()
			return nil, err
		}
		rp := extauthz.NewRulesPolicy(e, cfg.Clients.Names)
		rp.Metadata = extauthz.StoreMetadata(a.store)
		a.closers = append(a.closers, func() { rp.Engine().Close() })
		a.rules = rulesload.NewReloader(rp, rm, log)
		policy = rp
	} else {
		// No rules: the built-in network policy.
		policy = &extauthz.NetworkPolicy{
			Exempt:        cfg.Policy.MFAExemptNetworks,
			Provider:      cfg.Policy.Provider,
			AllowRemember: cfg.Policy.AllowRememberBrowser == nil || *cfg.Policy.AllowRememberBrowser,
		}
	}

	a.authz, err = extauthz.New(authzOptions(cfg, a, policy, idOpts))
	if err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// authzOptions are the decision core's options from cfg, over a's
// networks, sessions and metrics.
func authzOptions(cfg *config.Config, a *app, policy extauthz.Policy, idOpts extauthz.IdentityOptions) extauthz.Options {
	return extauthz.Options{
		Networks:                  a.nets,
		Policy:                    policy,
		Sessions:                  extauthz.NewSessions(a.sessions, extauthz.WithSealer(a.sealer)),
		Identity:                  idOpts,
		JWTNamespace:              cfg.Identity.JWTAuthn.Namespace,
		JWTKey:                    cfg.Identity.JWTAuthn.Key,
		TrustEnvoyExternalAddress: cfg.ClientIP.TrustEnvoyExternalAddress(),
		TrustedProxies:            cfg.TrustedProxyPrefixes(),
		TrustedHops:               cfg.ClientIP.TrustedHops,
		ClientHosts:               cfg.Clients.Hosts,
		DefaultClient:             cfg.Clients.Default,
		Prefix:                    cfg.MFA.Prefix,
		LoginURL:                  cfg.Identity.LoginURL,
		UserHeader:                cfg.Upstream.UserHeader,
		EmailHeader:               cfg.Upstream.EmailHeader,
		MFAHeader:                 cfg.Upstream.MFAHeader,
		NetworkHeader:             cfg.Upstream.NetworkHeader,
		ClaimPrefix:               cfg.Upstream.ClaimPrefix,
		RemoveHeaders:             lower(cfg.Upstream.Remove),
		Limits: extauthz.Limits{
			MaxHeaderBytes:  cfg.Limits.MaxHeaderBytes,
			MaxHeadersBytes: cfg.Limits.MaxHeadersBytes,
			MaxPathBytes:    cfg.Limits.MaxPathBytes,
		},
		LogDecisions:     cfg.Log.Decisions,
		Logger:           a.log,
		MaxInFlight:      cfg.Server.MaxInFlight,
		Metrics:          extauthz.NewMetrics(a.reg),
		Realms:           a.realms,
		RedirectServices: redirectServices(cfg),
		DuoFallback:      cfg.MFA.Duo.Fallback == mfa.DuoFallbackTOTP,
		ClientMaxAge:     clientMaxAge(cfg),
		DryRun:           cfg.Policy.Mode == extauthz.ModeDryRun,
		Audit:            a.audit.DecisionHook(),
	}
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}

func loadNetworks(cfg *config.Config) (*cidr.Set, error) {
	lists, err := cfg.NetworkCIDRs()
	if err != nil {
		return nil, err
	}
	set, err := cidr.New(lists)
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	return set, nil
}

// buildKeyfunc loads the keys of identity.jwt (nil: none configured).
func buildKeyfunc(ctx context.Context, cfg *config.Config, log *slog.Logger) (extauthz.Keyfunc, error) {
	j := cfg.Identity.JWT
	switch {
	case j.JWKSFile != "":
		kf, err := jwtkeys.JWKSFile(cfg.Resolve(j.JWKSFile))
		if err != nil {
			return nil, fmt.Errorf("identity.jwt.jwks_file: %w", err)
		}
		return kf, nil
	case j.JWKSURL != "":
		kf, err := jwtkeys.JWKSURL(ctx, j.JWKSURL, j.JWKSRefresh.D(), log)
		if err != nil {
			return nil, fmt.Errorf("identity.jwt.jwks_url: %w", err)
		}
		return kf, nil
	}
	return nil, nil
}

func mustDataDir(cfg *config.Config) string {
	d, err := sessions.DataDir(cfg)
	if err != nil {
		return cfg.DataDir
	}
	return d
}

// redirectServices are the declared custom MFA services.
func redirectServices(cfg *config.Config) []extauthz.RedirectService {
	out := make([]extauthz.RedirectService, len(cfg.MFA.Redirect.Services))
	for i, svc := range cfg.MFA.Redirect.Services {
		out[i] = extauthz.RedirectService{Name: svc.Name, URL: svc.URL}
	}
	return out
}

// clientMaxAge is clients.mfa_max_age as durations.
func clientMaxAge(cfg *config.Config) map[string]time.Duration {
	out := make(map[string]time.Duration, len(cfg.Clients.MFAMaxAge))
	for c, d := range cfg.Clients.MFAMaxAge {
		out[c] = d.D()
	}
	return out
}
