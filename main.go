// Command aily_exporter is a Prometheus exporter for the runs of Feishu Aily
// agent sessions. This package is wiring only: the flags (flags.go), the
// logger, the exporter built from them and the HTTP server that serves it,
// and the signals; the application is internal/exporter.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	sloggokit "github.com/tjhop/slog-gokit"

	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/exporter"
	"github.com/aily-exporter/aily_exporter/internal/sharding"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

const (
	programName = exporter.ProgramName
	// shutdownTimeout bounds how long in-flight scrapes may finish on SIGTERM.
	shutdownTimeout = 10 * time.Second
)

func main() {
	a := kingpin.CommandLine
	a.Help = "Prometheus exporter for the runs of Feishu Aily agent sessions."
	f := addFlags(a)
	if info, ok := debug.ReadBuildInfo(); ok {
		stampVersion(info)
	}
	a.Version(version.Print(programName))
	a.HelpFlag.Short('h')
	if err := parseFlags(a, os.Args[1:]); err != nil {
		a.Fatalf("%s, try --help", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, f, os.Stdout, os.Stderr))
}

// run is the exporter's life after flag parsing; it returns the exit code.
func run(ctx context.Context, f *flags, stdout, stderr io.Writer) (code int) {
	buckets, shard, err := checkedFlags(f)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// With session keys every shard polls every app, on its share of the
	// app's quota.
	rateLimit := f.feishuRateLimit / shard.Divisor()
	clients := exporter.ClientOptions{Timeout: f.feishuTimeout, PageSize: f.feishuPageSize, RateLimit: rateLimit,
		Concurrency: f.feishuConcurrency}

	if f.configCheck {
		return exporter.CheckConfig(f.configFile, *f.web.WebConfigFile, clients, shard, stdout, stderr)
	}

	logger, slogger := newLogger(stderr, f.logLevel, f.logFormat)
	level.Info(logger).Log("msg", "Starting "+programName, "version", version.Info())
	level.Info(logger).Log("msg", "Build context", "build_context", version.BuildContext())
	if shard.Sharded() {
		level.Info(logger).Log("msg", "Sharded", "shard", shard.Ordinal, "total_shards", shard.Total, "key", shard.Key,
			"rate_limit_per_app", rateLimit)
	}

	source := func() (*config.Config, error) { return exporter.LoadShared(f.configFile, shard) }
	if f.demo {
		if f.configFileSet {
			level.Warn(logger).Log("msg", "--config.file is ignored with --demo", "file", f.configFile)
		}
		demo, err := exporter.StartDemo(ctx, exporter.DemoOptions{Speed: f.demoSpeed, BurstInterval: f.demoBurstInterval,
			APIAddress: f.demoAPIAddress, FailingSession: f.demoFailingSession}, logger)
		if err != nil {
			level.Error(logger).Log("msg", "Cannot start the demo simulator", "err", err)
			return 1
		}
		source = demo.Config
	}

	var store *exporter.Storage
	if f.demo && !f.storagePathSet {
		f.storagePath = "" // the simulator starts afresh each time: so does the demo
	}
	if f.storagePath != "" {
		// A start that fails (no aily.yml, a port in use) must not leave
		// behind an empty directory it made, which the next start, or
		// someone looking for their data, would take for state.
		made := exporter.MissingDirs(f.storagePath)
		defer func() {
			if code != 0 {
				exporter.RemoveEmptyDirs(made)
			}
		}()
		if store, err = exporter.OpenStorage(f.storagePath, logger); err != nil {
			level.Error(logger).Log("msg", "Cannot keep the state", "err", err)
			return 1
		}
	}
	e := exporter.New(exporter.Options{
		Logger:      logger,
		Source:      source,
		Clients:     clients,
		Storage:     store,
		DailyBudget: f.pollDailyBudget,
		Shard:       shard,
		Watch: watch.Options{
			MinInterval:     f.pollMinInterval,
			IdleAfter:       f.pollIdleAfter,
			IdleInterval:    f.pollIdleInterval,
			FullInterval:    f.pollFullInterval,
			RateLimit:       rateLimit,
			Concurrency:     f.feishuConcurrency,
			DurationBuckets: buckets,
		},
	})
	// After the server's shutdown: the sessions_url sources stop last.
	defer e.Close()
	if err := e.Reload(); err != nil {
		level.Error(logger).Log("msg", "Error loading config", "err", err)
		return 1
	}
	if !f.demo {
		level.Info(logger).Log("msg", "Loaded config", "file", f.configFile)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go e.RunReloader(ctx, hup)

	srv := newHTTPServer(e.Routes(exporter.RouteOptions{
		TelemetryPath:          f.telemetryPath,
		DisableExporterMetrics: f.disableExporterMetrics,
		TimeoutOffset:          f.scrapeTimeoutOffset,
	}), logger)
	served := make(chan error, 1)
	go func() { served <- web.ListenAndServe(srv, f.web, slogger) }()

	select {
	case err := <-served:
		level.Error(logger).Log("msg", "Error running HTTP server", "err", err)
		return 1
	case <-ctx.Done():
	}
	level.Info(logger).Log("msg", "Shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if store != nil {
		// After the last scrape: what it counted is kept for the next run.
		if err := e.SaveState(); err != nil {
			level.Error(logger).Log("msg", "Cannot save the state at shutdown", "err", err)
		}
	}
	if shutdownErr != nil {
		level.Error(logger).Log("msg", "Error shutting down HTTP server", "err", shutdownErr)
		return 1
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		level.Error(logger).Log("msg", "Error running HTTP server", "err", err)
		return 1
	}
	return 0
}

// newHTTPServer is the exporter's HTTP server in front of h. What net/http
// itself logs (TLS handshake errors, accept errors) goes to logger too. A
// keep-alive connection left idle (Prometheus keeps one per target between
// scrapes) is closed after two minutes, longer than any usual scrape interval.
func newHTTPServer(h http.Handler, logger log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          stdlog.New(serverErrorLog{logger}, "", 0),
	}
}

// checkedFlags checks the flags (checkFlags) and returns the duration
// buckets and the shard they give: the first problem is run's one error
// line.
func checkedFlags(f *flags) (buckets []float64, shard sharding.Shard, err error) {
	if err := checkFlags(f); err != nil {
		return nil, sharding.Shard{}, err
	}
	if buckets, err = parseBuckets(f.durationBuckets); err != nil {
		return nil, sharding.Shard{}, err
	}
	if shard, err = shardOf(f, os.Hostname); err != nil {
		return nil, sharding.Shard{}, err
	}
	return buckets, shard, nil
}

// shardOf is the shard the flags give; hostname names the host for
// --shard=auto.
func shardOf(f *flags, hostname func() (string, error)) (sharding.Shard, error) {
	host := ""
	if f.shard == "auto" {
		h, err := hostname()
		if err != nil {
			return sharding.Shard{}, fmt.Errorf("--shard=auto: cannot read the host name: %w", err)
		}
		host = h
	}
	ordinal, err := sharding.ParseOrdinal(f.shard, host)
	if err != nil {
		return sharding.Shard{}, err
	}
	return sharding.New(ordinal, f.totalShards, sharding.Key(f.shardKey))
}

// newLogger returns the go-kit logger of --log.level and --log.format, and
// the *slog.Logger exporter-toolkit takes, writing the same lines to w.
func newLogger(w io.Writer, lvl, format string) (log.Logger, *slog.Logger) {
	w = log.NewSyncWriter(w)
	var base log.Logger
	if format == "json" {
		base = log.NewJSONLogger(w)
	} else {
		base = log.NewLogfmtLogger(w)
	}
	base = level.NewFilter(base, level.Allow(level.ParseDefault(lvl, level.InfoValue())))
	logger := log.With(base, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)

	// The bridge adds its own time and caller (the caller seen through it
	// would be wrong), so it writes to base; its "time" becomes our "ts".
	slogLevel := map[string]slog.Level{
		"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
	}[lvl]
	toolkit := log.LoggerFunc(func(kv ...any) error {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == slog.TimeKey {
				kv[i] = "ts"
				if t, ok := kv[i+1].(time.Time); ok {
					kv[i+1] = t.UTC().Format(time.RFC3339Nano)
				}
			}
		}
		return base.Log(kv...)
	})
	return logger, slog.New(sloggokit.NewGoKitHandler(toolkit, slogLevel))
}

// serverErrorLog is the writer of http.Server.ErrorLog: each line net/http
// logs becomes an error on the go-kit logger, a TLS handshake error with the
// client's address in a key of its own.
type serverErrorLog struct{ logger log.Logger }

func (l serverErrorLog) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	const handshake = "http: TLS handshake error from "
	if rest, ok := strings.CutPrefix(line, handshake); ok {
		if remote, err, ok := strings.Cut(rest, ": "); ok {
			level.Error(l.logger).Log("msg", "TLS handshake error", "remote", remote, "err", err)
			return len(p), nil
		}
	}
	level.Error(l.logger).Log("msg", "HTTP server error", "err", strings.TrimPrefix(line, "http: "))
	return len(p), nil
}
