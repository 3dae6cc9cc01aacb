package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
	"github.com/stepup-dev/stepup/internal/admin"
	"github.com/stepup-dev/stepup/internal/audit"
	"github.com/stepup-dev/stepup/internal/buildinfo"
	"github.com/stepup-dev/stepup/internal/gotune"
	"github.com/stepup-dev/stepup/internal/profiling"
	"github.com/stepup-dev/stepup/internal/readiness"
	"github.com/stepup-dev/stepup/internal/servertls"
	"github.com/stepup-dev/stepup/internal/sessions"
	"github.com/stepup-dev/stepup/internal/testclock"
	"github.com/stepup-dev/stepup/session"
)

// testClockFlag names serve's hidden test hook: a file holding a Go
// duration that is added to the real time wherever stepup decides by the
// clock (see package testclock). It is not shown in usage, and serve
// refuses it unless the configuration says development: true, so a
// production configuration can never run on a shifted clock.
const testClockFlag = "test-clock-file"

// runServe implements `stepup serve`: build, listen, serve until a signal
// or a server error, then drain.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfgPath, clockFile, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log.Level)
	if cfgPath == "" {
		log.Warn("running on the embedded default configuration: a demo on loopback; write your own with `stepup config default` for production")
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	s, err := buildServer(runCtx, cfg, cfgPath, clockFile, log, false)
	if err != nil {
		return err
	}
	// Stops the gRPC server too (its stream workers) when serve returns
	// before draining; stopping it again after a drain is harmless.
	defer s.close()
	for _, w := range cfg.IdentityHeaderWarnings(s.a.nets.Load()) {
		log.Warn(w)
	}
	if err := s.listen(); err != nil {
		return err
	}
	errc := s.serve(runCtx, stdout)
	runErr := s.wait(ctx, errc)
	s.drain(runErr)
	return runErr
}

// parseServeFlags returns --config and the test hook's file.
func parseServeFlags(args []string, stderr io.Writer) (cfgPath, clockFile string, err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfgPath, "config", "", "configuration file (default: the embedded default)")
	fs.StringVar(&clockFile, testClockFlag, "", "test hook (development only): file holding a clock offset")
	fs.Usage = func() {
		// serve's flags except the hidden test hook.
		w := fs.Output()
		fmt.Fprintln(w, "Usage: stepup serve [--config FILE]")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name != testClockFlag {
				fmt.Fprintf(w, "  --%s\n    \t%s\n", f.Name, f.Usage)
			}
		})
	}
	if err := fs.Parse(args); err != nil {
		return "", "", fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return "", "", fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return cfgPath, clockFile, nil
}

// server is a built `stepup serve`: the decision core, the gRPC and HTTP
// servers, their listeners once listening, and the health they report.
type server struct {
	a       *app
	cfgPath string
	dataDir string
	log     *slog.Logger

	gs      *grpc.Server
	ready   *readiness.State
	httpSrv *http.Server

	grpcLis, httpLis net.Listener

	// validate: built for `config validate`, never to listen (see
	// buildOptions.validate).
	validate bool
}

// close releases a server that was built but never listened.
func (s *server) close() {
	if s.gs != nil {
		s.gs.Stop()
	}
	s.a.Close()
}

// buildServer builds everything serve runs, before it listens: networks,
// session store, keys, rules, identity, the decision core, both servers
// and the MFA step. It is the one place that decides whether a
// configuration can be served: `config validate` calls it too (validate
// true: see buildOptions.validate), so that validate refuses, with the
// same message, everything serve refuses. Close the result with close.
func buildServer(ctx context.Context, cfg *config.Config, cfgPath, clockFile string, log *slog.Logger, validate bool) (*server, error) {
	bo := buildOptions{validate: validate}
	if clockFile != "" {
		if !cfg.Development {
			return nil, fmt.Errorf("%w: --%s is a test hook, refused unless the configuration says development: true", errUsage, testClockFlag)
		}
		clk, err := testclock.New(clockFile, log)
		if err != nil {
			return nil, err
		}
		bo.now = clk.Now
		log.Warn("TEST HOOK: stepup's clock is the real time plus the offset in a file; never use this outside tests", "file", clockFile, "offset", clk.Offset().String())
	}
	dataDir, err := filepath.Abs(cfg.Resolve(cfg.DataDir))
	if err != nil {
		return nil, err
	}
	if !validate {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
	}
	if bo.audit, err = audit.OpenTrail(cfg, log, validate); err != nil {
		return nil, err
	}
	a, err := buildApp(ctx, cfg, log, bo)
	if err != nil {
		bo.audit.Close()
		return nil, err
	}
	a.closers = append([]func(){bo.audit.Close}, a.closers...) // closed last
	s := &server{a: a, cfgPath: cfgPath, dataDir: dataDir, log: log, validate: validate}
	if err := s.build(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// build adds the runtime tuning, the profiling endpoint, the store monitor
// and the two servers to s.a.
func (s *server) build(ctx context.Context) error {
	a, cfg := s.a, s.a.cfg
	if !s.validate {
		// With the networks and rules loaded, the live heap is known: tune
		// the collector for it (runtime section; GOGC and GOMEMLIMIT win).
		a.tuner = gotune.New(s.log)
		a.tuner.Apply(cfg.Runtime)
		go a.tuner.Watch(ctx, gotune.RetuneInterval)
		if _, err := profiling.Start(ctx, s.log, os.LookupEnv); err != nil {
			return err
		}
	}

	gs, err := newGRPCServer(cfg)
	if err != nil {
		return err
	}
	s.gs, s.ready = gs, readiness.New(authv3.Authorization_ServiceDesc.ServiceName)
	s.ready.Register(gs)
	a.authz.Register(gs)
	if !s.validate {
		mon := session.NewStoreMonitor(a.store, a.reg, s.log, s.ready.SetStore)
		go mon.Run(ctx, 2*time.Second)
		sessions.CheckStoreSettings(ctx, a.store)
	}

	mux, err := s.httpMux()
	if err != nil {
		return err
	}
	s.httpSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if t := cfg.Server.HTTP.TLS; t.Enabled() {
		if s.httpSrv.TLSConfig, err = servertls.Config(t.CertFile, t.KeyFile, t.ClientCAFile, []string{"h2", "http/1.1"}); err != nil {
			return fmt.Errorf("server.http.tls: %w", err)
		}
	}
	return nil
}

// httpMux serves health, readiness, metrics, the HTTP ext_authz check, the
// admin endpoint and the MFA step.
func (s *server) httpMux() (*http.ServeMux, error) {
	a := s.a
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", s.ready.Readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	a.authz.RegisterHTTP(mux)
	token := "config validate: never served"
	if !s.validate {
		var err error
		if token, err = admin.EnsureToken(s.dataDir); err != nil {
			return nil, fmt.Errorf("admin token: %w", err)
		}
	}
	admin.Register(mux, admin.Options{
		Token:  token,
		Ops:    admin.StoreOps{Manager: a.sessions, Store: a.store},
		Logger: s.log,
		Audit:  a.audit.MFAHook(),
	})
	step, err := newMFAStep(a.cfg, a, s.log)
	if err != nil {
		return nil, err
	}
	mux.Handle(a.cfg.MFA.Prefix, step)
	return mux, nil
}

// listen opens the gRPC and HTTP listeners and records the HTTP address
// for the command line's admin client.
func (s *server) listen() error {
	cfg := s.a.cfg
	var err error
	if s.grpcLis, err = net.Listen("tcp", cfg.Server.GRPC.Listen); err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	if s.httpLis, err = net.Listen("tcp", cfg.Server.HTTP.Listen); err != nil {
		s.grpcLis.Close()
		return fmt.Errorf("http listen: %w", err)
	}
	if err := admin.WriteAddress(s.dataDir, s.httpLis.Addr().String()); err != nil {
		s.log.Warn("cannot record the admin address: the CLI will use server.http.listen", "error", err.Error())
	}
	return nil
}

// serve announces both servers, starts them and starts watching the rule
// files; the channel receives the first server error.
func (s *server) serve(ctx context.Context, stdout io.Writer) <-chan error {
	a, cfg := s.a, s.a.cfg
	errc := make(chan error, 2)
	// Announced before serving: the listeners are bound, and whoever reaches
	// the server has been told where it is.
	bi := buildinfo.Read()
	cfgName := s.cfgPath
	if cfgName == "" {
		cfgName = "(embedded default)"
	}
	s.log.Info("stepup started",
		"version", bi.Version,
		"revision", bi.Revision,
		"modified", bi.Modified,
		"grpc", s.grpcLis.Addr().String(),
		"http", s.httpLis.Addr().String(),
		"data_dir", s.dataDir,
		"config", cfgName,
		"networks", a.nets.Load().Names(),
		"prefixes", a.nets.Load().Len(),
	)
	fmt.Fprintf(stdout, "stepup %s\n  gRPC ext_authz  %s (%s)\n  HTTP            %s (%s)\n  data            %s\n  config          %s\n",
		bi.Version, s.grpcLis.Addr(), tlsWord(cfg.Server.GRPC.TLS), s.httpLis.Addr(), tlsWord(cfg.Server.HTTP.TLS), s.dataDir, cfgName)

	go func() {
		if err := s.gs.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	go func() {
		var err error
		if s.httpSrv.TLSConfig != nil {
			err = s.httpSrv.ServeTLS(s.httpLis, "", "")
		} else {
			err = s.httpSrv.Serve(s.httpLis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()

	if a.rules != nil && cfg.Rules.WatchOn() {
		load := func() (*config.Config, error) {
			if s.cfgPath == "" {
				return cfg, nil
			}
			return config.Load(s.cfgPath)
		}
		if err := a.rules.Watch(ctx, cfg, load); err != nil {
			s.log.Warn("cannot watch rule files: reload with SIGHUP", "error", err.Error())
		}
	}
	return errc
}

// wait reloads on SIGHUP, and opens the audit trail's file again (log
// rotation), until ctx ends (nil) or a server fails (its error).
func (s *server) wait(ctx context.Context, errc <-chan error) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-hup:
			s.a.audit.Reopen()
			s.a.reload(s.cfgPath)
		}
	}
}

// drain stops gracefully: health turns NOT_SERVING and /readyz 503 so that
// Envoy and load balancers stop sending, server.drain_delay passes (unless
// a server failed), then both servers stop, waiting for calls in flight up
// to server.shutdown_timeout.
func (s *server) drain(runErr error) {
	cfg := s.a.cfg
	s.log.Info("shutting down", "drain_delay", cfg.Server.DrainDelay.String())
	s.ready.Drain()
	if d := cfg.Server.DrainDelay.D(); d > 0 && runErr == nil {
		time.Sleep(d)
	}
	stopped := make(chan struct{})
	go func() {
		s.gs.GracefulStop()
		close(stopped)
	}()
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	_ = s.httpSrv.Shutdown(shutCtx)
	select {
	case <-stopped:
	case <-shutCtx.Done():
		s.log.Warn("graceful stop timed out: closing remaining connections")
		s.gs.Stop()
	}
	s.log.Info("stopped")
}

// reload re-reads the configuration's networks; a bad reload keeps the
// current set.
func (a *app) reload(path string) {
	cfg := a.cfg
	if path != "" {
		c, err := config.Load(path)
		if err != nil {
			a.log.Error("reload failed: keeping the current configuration", "error", err.Error())
			return
		}
		cfg = c
	}
	set, err := loadNetworks(cfg)
	if err != nil {
		a.log.Error("reload failed: keeping the current networks", "error", err.Error())
		return
	}
	a.nets.Store(set)
	a.log.Info("networks reloaded", "networks", set.Names(), "prefixes", set.Len())
	if a.rules != nil {
		_ = a.rules.Reload(cfg)
	}
	if a.tuner != nil {
		a.tuner.Apply(cfg.Runtime)
	}
}

func tlsWord(t config.TLS) string {
	switch {
	case t.ClientCAFile != "":
		return "mTLS"
	case t.Enabled():
		return "TLS"
	default:
		return "plaintext"
	}
}

// streamWorkers is the number of gRPC stream workers: enough to keep every
// CPU busy while some Checks wait on the session store, and to take the
// usual number of Checks in flight from Envoy without falling back to a
// fresh goroutine, whose small stack grows (and is copied) on each call.
func streamWorkers() int { return 16 * runtime.GOMAXPROCS(0) }

func newGRPCServer(cfg *config.Config) (*grpc.Server, error) {
	opts := []grpc.ServerOption{
		// Long-lived workers handle the Check streams: a new goroutine
		// per call grows its stack (decoding the CheckRequest's nested
		// metadata, running rules) and copies it each time, ~10% of the
		// CPU of a Check (docs/performance.md). A worker keeps its grown
		// stack; grpc-go spawns a goroutine when all workers are busy.
		grpc.NumStreamWorkers(uint32(streamWorkers())),
		// Envoy pings idle HTTP/2 connections (its HTTP/2 keepalive);
		// tolerate pings as often as keepalive_min_time instead of
		// answering too_many_pings and closing the connection.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.Server.GRPC.KeepaliveMinTime.D(),
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    2 * time.Minute,
			Timeout: 20 * time.Second,
		}),
	}
	// Every CheckRequest gets a decision: over-size and undecodable ones
	// are denied rather than refused with a gRPC error.
	opts = append(opts, extauthz.GRPCServerOptions(cfg.Server.GRPC.MaxRecvBytes)...)
	if t := cfg.Server.GRPC.TLS; t.Enabled() {
		tc, err := servertls.Config(t.CertFile, t.KeyFile, t.ClientCAFile, []string{"h2"})
		if err != nil {
			return nil, fmt.Errorf("server.grpc.tls: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return grpc.NewServer(opts...), nil
}
