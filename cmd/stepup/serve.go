package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
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
	"sync/atomic"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/stepup-dev/stepup/config"
	"github.com/stepup-dev/stepup/extauthz"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (default: the embedded default)")
	clockFile := fs.String(testClockFlag, "", "test hook (development only): file holding a clock offset")
	fs.Usage = func() { serveUsage(fs) }
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log.Level)
	if *cfgPath == "" {
		log.Warn("running on the embedded default configuration: a demo on loopback; write your own with `stepup config default` for production")
	}
	var bo buildOptions
	if *clockFile != "" {
		if !cfg.Development {
			return fmt.Errorf("%w: --%s is a test hook, refused unless the configuration says development: true", errUsage, testClockFlag)
		}
		clk, err := newTestClock(*clockFile, log)
		if err != nil {
			return err
		}
		bo.now = clk.Now
		log.Warn("TEST HOOK: stepup's clock is the real time plus the offset in a file; never use this outside tests", "file", *clockFile, "offset", clk.offset.String())
	}
	dataDir, err := filepath.Abs(cfg.Resolve(cfg.DataDir))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	a, err := buildApp(runCtx, cfg, log, bo)
	if err != nil {
		return err
	}
	defer a.Close()
	// With the networks and rules loaded, the live heap is known: tune the
	// collector for it (runtime section; GOGC and GOMEMLIMIT win).
	a.tuner = newRuntimeTuner(log)
	a.tuner.apply(cfg.Runtime)
	go a.tuner.watch(runCtx, retuneInterval)
	if _, err := startPprof(runCtx, log, os.LookupEnv); err != nil {
		return err
	}

	grpcLis, err := net.Listen("tcp", cfg.Server.GRPC.Listen)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.Server.HTTP.Listen)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("http listen: %w", err)
	}

	gs, err := newGRPCServer(cfg)
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return err
	}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	a.authz.Register(gs)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	var draining, storeDown atomic.Bool
	mon := newStoreMonitor(a.store, a.reg, log, func(up bool) {
		storeDown.Store(!up)
		st := healthpb.HealthCheckResponse_SERVING
		if !up {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if !draining.Load() {
			hs.SetServingStatus("", st)
			hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
		}
	})
	go mon.run(runCtx, 2*time.Second)
	checkStoreSettings(runCtx, a.store)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "draining\n")
			return
		}
		if storeDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "session store unavailable\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	a.authz.RegisterHTTP(mux)
	adminToken, err := ensureAdminToken(dataDir)
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return fmt.Errorf("admin token: %w", err)
	}
	mux.Handle(adminPath, adminHandler(a.sessions, adminToken, log))
	mux.Handle(adminFactorsPath, adminFactorsHandler(a.store, a.sessions, adminToken, log))
	step, err := newMFAStep(cfg, a, log)
	if err != nil {
		grpcLis.Close()
		httpLis.Close()
		return err
	}
	mux.Handle(cfg.MFA.Prefix, step)
	if err := writeAdminAddress(dataDir, httpLis.Addr().String()); err != nil {
		log.Warn("cannot record the admin address: the CLI will use server.http.listen", "error", err.Error())
	}
	httpSrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.Server.HTTP.TLS.Enabled() {
		tc, err := serverTLS(cfg.Server.HTTP.TLS, []string{"h2", "http/1.1"})
		if err != nil {
			grpcLis.Close()
			httpLis.Close()
			return fmt.Errorf("server.http.tls: %w", err)
		}
		httpSrv.TLSConfig = tc
	}

	errc := make(chan error, 2)
	go func() {
		if err := gs.Serve(grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("grpc: %w", err)
		}
	}()
	go func() {
		var err error
		if httpSrv.TLSConfig != nil {
			err = httpSrv.ServeTLS(httpLis, "", "")
		} else {
			err = httpSrv.Serve(httpLis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()

	bi := readBuildInfo()
	log.Info("stepup started",
		"version", bi.Version,
		"revision", bi.Revision,
		"modified", bi.Modified,
		"grpc", grpcLis.Addr().String(),
		"http", httpLis.Addr().String(),
		"data_dir", dataDir,
		"config", cfgOrDefault(*cfgPath),
		"networks", a.nets.Load().Names(),
		"prefixes", a.nets.Load().Len(),
	)
	fmt.Fprintf(stdout, "stepup %s\n  gRPC ext_authz  %s (%s)\n  HTTP            %s (%s)\n  data            %s\n  config          %s\n",
		bi.Version, grpcLis.Addr(), tlsWord(cfg.Server.GRPC.TLS), httpLis.Addr(), tlsWord(cfg.Server.HTTP.TLS), dataDir, cfgOrDefault(*cfgPath))

	if a.rules != nil && cfg.Rules.WatchOn() {
		load := func() (*config.Config, error) {
			if *cfgPath == "" {
				return cfg, nil
			}
			return config.Load(*cfgPath)
		}
		if err := a.rules.watch(runCtx, cfg, load); err != nil {
			log.Warn("cannot watch rule files: reload with SIGHUP", "error", err.Error())
		}
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-hup:
			a.reload(*cfgPath)
		}
	}

	// Graceful stop (ENVOY.md §7.2): NOT_SERVING, drain, stop with a
	// deadline.
	log.Info("shutting down", "drain_delay", cfg.Server.DrainDelay.String())
	draining.Store(true)
	hs.Shutdown()
	if d := cfg.Server.DrainDelay.D(); d > 0 && runErr == nil {
		time.Sleep(d)
	}
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout.D())
	defer cancel()
	_ = httpSrv.Shutdown(shutCtx)
	select {
	case <-stopped:
	case <-shutCtx.Done():
		log.Warn("graceful stop timed out: closing remaining connections")
		gs.Stop()
	}
	log.Info("stopped")
	return runErr
}

// serveUsage prints serve's flags except the hidden test hook.
func serveUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "Usage: stepup serve [--config FILE]")
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == testClockFlag {
			return
		}
		fmt.Fprintf(w, "  --%s\n    \t%s\n", f.Name, f.Usage)
	})
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
		_ = a.rules.reload(cfg)
	}
	if a.tuner != nil {
		a.tuner.apply(cfg.Runtime)
	}
}

func cfgOrDefault(p string) string {
	if p == "" {
		return "(embedded default)"
	}
	return p
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
		// Envoy pings idle HTTP/2 connections; tolerate it instead of
		// answering too_many_pings (ENVOY.md §7.2).
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
	if cfg.Server.GRPC.TLS.Enabled() {
		tc, err := serverTLS(cfg.Server.GRPC.TLS, []string{"h2"})
		if err != nil {
			return nil, fmt.Errorf("server.grpc.tls: %w", err)
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	return grpc.NewServer(opts...), nil
}

// serverTLS builds a TLS config; with a client CA it requires and verifies
// client certificates (mTLS). The certificate is re-read when its file
// changes, so rotation needs no restart.
func serverTLS(t config.TLS, alpn []string) (*tls.Config, error) {
	cr, err := newCertReloader(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     alpn,
		GetCertificate: cr.get,
	}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_ca_file %s: no certificates found", t.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// certReloader serves the current certificate, reloading it when the
// files' modification time changes (checked at most every 10 s).
type certReloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	mod               atomic.Int64
	checked           atomic.Int64
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return err
	}
	c.cur.Store(&cert)
	if fi, err := os.Stat(c.certFile); err == nil {
		c.mod.Store(fi.ModTime().UnixNano())
	}
	return nil
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := time.Now().Unix()
	if last := c.checked.Load(); now-last >= 10 && c.checked.CompareAndSwap(last, now) {
		if fi, err := os.Stat(c.certFile); err == nil && fi.ModTime().UnixNano() != c.mod.Load() {
			_ = c.load() // on error keep serving the current certificate
		}
	}
	return c.cur.Load(), nil
}
