// Command bucketd is a token-bucket rate limiter: one binary that answers
// takes over HTTP (GET /{key}) and the Redis protocol (CL.THROTTLE), with
// bucket state in memory and persisted in an embedded bbolt file.
//
// main.go only wires: configuration (flags, BUCKETD_* environment variables,
// the policies file and the RLS directory), the store, the limiter above
// it, the fronts (HTTP, RESP, and gRPC for Envoy), signals (SIGHUP reloads
// the policies and the RLS configuration), shutdown and the exit code.
package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/bucketd/bucketd/bucket"
	"github.com/bucketd/bucketd/internal/app"
	"github.com/bucketd/bucketd/limiter"
	"github.com/bucketd/bucketd/metrics"
	"github.com/bucketd/bucketd/policyfile"
	"github.com/bucketd/bucketd/respcompat"
	"github.com/bucketd/bucketd/rlsconfig"
	"github.com/bucketd/bucketd/rlsfront"
	"github.com/bucketd/bucketd/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bucketd:", err)
		os.Exit(1)
	}
}

// run is bucketd: it serves until ctx is done or a client asks for a
// shutdown, then shuts down in order and returns.
func run(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "check" {
		return app.RunCheck(args[1:], stdout, stderr)
	}
	cfg, err := app.ParseConfig(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.Version {
		return app.PrintVersion(stdout)
	}
	if cfg.CheckConfig != "" {
		err := app.CheckConfig(cfg.CheckConfig, stdout)
		if cfg.RLSConfig != "" && cfg.RLSConfig != cfg.CheckConfig {
			err = errors.Join(err, app.CheckRLSConfig(cfg.RLSConfig, stdout))
		}
		return err
	}
	var pc policyfile.Config
	if cfg.ConfigFile != "" {
		if pc, err = policyfile.Load(cfg.ConfigFile); err != nil {
			return err // before the data file is opened
		}
	}
	var rc *rlsconfig.Config
	if cfg.RLSConfig != "" {
		if rc, err = rlsconfig.Load(cfg.RLSConfig); err != nil {
			return err
		}
	}
	log := app.NewLogger(cfg.LogFormat, cfg.LogLevel, stderr)
	if n := app.MinProcs(cfg, env, runtime.GOMAXPROCS(0)); n != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
	}
	certs, err := app.LoadCert(cfg.TLSCert, cfg.TLSKey) // before the data file is opened
	if err != nil {
		return err
	}

	db, storeInfo, err := app.OpenStore(cfg, log)
	if err != nil {
		return err
	}
	defer db.Close() // on the error paths; the clean path closes below
	lim, err := limiter.New(db, limiter.Options{
		Default: bucket.Limit{Capacity: cfg.Capacity, Rate: cfg.Rate},
		Logger:  log,

		OnStoreError: cfg.OnStoreError,
	})
	if err != nil {
		return err
	}
	if cfg.ConfigFile != "" {
		if err := lim.SetPolicies(pc.Default, pc.Policies); err != nil {
			return fmt.Errorf("%s: %w", cfg.ConfigFile, err)
		}
	}
	lim.SetRLSConfig(rc)
	var reload func() error // nil without --config: nothing to reload
	if cfg.ConfigFile != "" {
		reload = app.Reloader(cfg.ConfigFile, lim, log)
	}
	if cfg.RLSConfig != "" { // SIGHUP and POST /v1/reload reload both
		reload = app.JoinReloads(reload, app.RLSReloader(cfg.RLSConfig, lim, log))
	}

	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer httpLn.Close()
	warnExposed(log, "http", httpLn.Addr(), cfg.AdminToken == "", "--admin-token: the admin routes are open to any client")
	var respLn net.Listener
	if cfg.RESPAddr != "" {
		if respLn, err = net.Listen("tcp", cfg.RESPAddr); err != nil {
			return fmt.Errorf("resp: %w", err)
		}
		defer respLn.Close()
		if certs != nil { // rediss://, with the certificate SIGHUP reloads
			respLn = tls.NewListener(respLn, certs.TLSConfig())
		}
		warnExposed(log, "resp", respLn.Addr(), cfg.RequirePass == "", "--requirepass: any client may take")
		warnExposed(log, "resp", respLn.Addr(), cfg.AdminToken == "", "--admin-token: any client may FLUSHALL, DEL, CONFIG SET or SHUTDOWN")
	}
	var grpcLn net.Listener
	if cfg.GRPCAddr != "" {
		if grpcLn, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
			return fmt.Errorf("grpc: %w", err)
		}
		defer grpcLn.Close()
	}
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		defer metricsLn.Close()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if cfg.Store != "" {
		go app.RefreshOverrides(ctx, lim, cfg.Refresh, log)
	}
	// SIGHUP reloads the policies. Notify before the start line, so that a
	// SIGHUP sent once bucketd has said it started never kills it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var respSrv *respcompat.Server
	mopts := metrics.Options{
		Build:   app.BuildInfo(),
		Store:   metrics.StoreFunc(app.StoreStats(db)),
		MaxKeys: cfg.MaxKeys,
	}
	if respLn != nil { // respSrv is set before either front serves
		mopts.RESP = metrics.RESPFunc(func() metrics.RESPStats { return metrics.RESPStats(respSrv.Stats()) })
	}
	met := metrics.New(mopts)
	met.Policies(app.PolicyNames(lim))
	if reload != nil { // the new policies' counters show at 0 at once
		r := reload
		reload = func() error {
			err := r()
			met.Policies(app.PolicyNames(lim))
			return err
		}
	}
	httpSrv := server.New(lim, server.Config{Logger: log, Reload: reload, AdminToken: cfg.AdminToken,
		Metrics: met, AccessLog: cfg.AccessLog, TLS: certs.TLSConfig()})
	errc := make(chan error, 4)
	if respLn != nil {
		respSrv = respcompat.New(lim, respcompat.Config{
			Logger:      log,
			RequirePass: cfg.RequirePass,
			AdminToken:  cfg.AdminToken,
			OutputLimit: cfg.OutputLimit,
			MaxClients:  cfg.MaxClients,
			IdleTimeout: cfg.IdleTimeout,
			Shutdown:    cancel,
			Metrics:     met,
			AccessLog:   cfg.AccessLog,
			Info: func() map[string]string { // the same numbers as /metrics
				m := met.Info()
				for k, v := range storeInfo(lim) {
					m[k] = v
				}
				return m
			},
		})
	}
	go func() { errc <- wrap("http", httpSrv.Serve(httpLn)) }()
	if respSrv != nil {
		go func() { errc <- wrap("resp", respSrv.Serve(respLn)) }()
	}
	var rlsSrv *rlsfront.Server
	if grpcLn != nil {
		rlsSrv = rlsfront.New(lim, rlsfront.Config{Logger: log, Metrics: met})
		go func() { errc <- wrap("grpc", rlsSrv.Serve(grpcLn)) }()
	}
	var metricsSrv *http.Server
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", met.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsSrv.Serve(metricsLn); !errors.Is(err, http.ErrServerClosed) {
				errc <- wrap("metrics", err)
			}
		}()
		log.Info("metrics listening", "addr", metricsLn.Addr().String())
	}
	resp, grpcAddr := "off", "off"
	if respLn != nil {
		resp = respLn.Addr().String()
	}
	if grpcLn != nil {
		grpcAddr = grpcLn.Addr().String()
	}
	log.Info("bucketd started",
		"http", httpLn.Addr().String(), "resp", resp, "data", cmp.Or(app.Redacted(cfg.Store), cfg.Data),
		"capacity", cfg.Capacity.String(), "rate", cfg.Rate.String(),
		"sync", cfg.Sync.String(), "sync_interval", cfg.SyncInterval.String(),
		"config", cmp.Or(cfg.ConfigFile, "none"), "tls", certs != nil, app.Policies(lim),
		"grpc", grpcAddr, "rls_config", cmp.Or(cfg.RLSConfig, "none"), app.RLSDomains(rc),
		"gomaxprocs", runtime.GOMAXPROCS(0))

	var serveErr error
serve:
	for {
		select {
		case <-ctx.Done():
			break serve
		case serveErr = <-errc:
			break serve
		case <-hup:
			if certs != nil {
				certs.Reload(log) // it logs its outcome
			}
			if reload != nil {
				_ = reload() // it logs its outcome
			} else if certs == nil {
				log.Warn("no --config to reload")
			}
		}
	}
	log.Info("bucketd shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownWait)
	defer scancel()
	// Both fronts at once: each closes its idle and silent connections at
	// once and waits for its own requests in flight, so neither waits on
	// the other's.
	var wg sync.WaitGroup
	var httpErr, respErr, rlsErr error
	wg.Go(func() { httpErr = httpSrv.Shutdown(sctx) })
	if respSrv != nil {
		wg.Go(func() { respErr = respSrv.Shutdown(sctx) })
	}
	if rlsSrv != nil {
		wg.Go(func() { rlsErr = rlsSrv.Shutdown(sctx) })
	}
	wg.Wait()
	if httpErr != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("http: shutdown: %w", httpErr))
	}
	if respErr != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("resp: shutdown: %w", respErr))
	}
	if rlsErr != nil {
		serveErr = errors.Join(serveErr, fmt.Errorf("grpc: shutdown: %w", rlsErr))
	}
	if metricsSrv != nil {
		if err := metricsSrv.Shutdown(sctx); err != nil {
			serveErr = errors.Join(serveErr, fmt.Errorf("metrics: shutdown: %w", err))
		}
	}
	if err := db.Close(); err != nil {
		serveErr = errors.Join(serveErr, err)
	}
	if serveErr == nil {
		log.Info("bucketd stopped")
	}
	return serveErr
}

// warnExposed logs a warning when addr is not a loopback address and the
// secret that guards it is missing.
func warnExposed(log *slog.Logger, front string, addr net.Addr, missing bool, what string) {
	if ta, ok := addr.(*net.TCPAddr); ok && missing && !ta.IP.IsLoopback() {
		log.Warn(front+" listens beyond this machine without "+what, "addr", addr.String())
	}
}

// wrap names the front in a serve error; nil stays nil.
func wrap(front string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", front, err)
}
