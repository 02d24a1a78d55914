package main

import (
	"context"
	"fmt"
	stdlog "log"
	"net/http"
	"strconv"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// routeOptions are the flags that shape the HTTP endpoints.
type routeOptions struct {
	telemetryPath          string
	disableExporterMetrics bool
	timeoutOffset          time.Duration
}

// routes returns every endpoint the README lists.
func (e *exporter) routes(o routeOptions) http.Handler {
	// The persistent registry: what is the same whatever the scrape's
	// deadline. The runs' metrics are gathered from a registry made per
	// request, bound to that request's deadline.
	reg := prometheus.NewRegistry()
	reg.MustRegister(versioncollector.NewCollector(programName), e.reloadSuccess, e.reloadTimestamp)
	if e.storage != nil {
		reg.MustRegister(newStateMetrics(e.storage.store))
	}
	mh := &metricsHandler{
		exporter:      e,
		persistent:    reg,
		timeoutOffset: o.timeoutOffset,
		errorLog:      stdlog.New(log.NewStdlibAdapter(level.Error(e.logger)), "", 0),
	}
	var metrics http.Handler = mh
	if !o.disableExporterMetrics {
		reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
		mh.instrumentation = reg
		metrics = promhttp.InstrumentMetricHandler(reg, mh)
	}

	mux := http.NewServeMux()
	mux.Handle(o.telemetryPath, metrics)
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	// The configuration is loaded before the server starts, so once it
	// answers it is ready.
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "This endpoint requires a POST request.", http.StatusMethodNotAllowed)
			return
		}
		if err := e.requestReload(r.Context()); err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Config reloaded")
	})
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		b, err := e.redactedConfig()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(b)
	})
	if o.telemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Aily Exporter",
			Description: "Prometheus exporter for the runs of Feishu Aily agent sessions",
			Version:     version.Info(),
			Profiling:   "false", // no /debug/pprof is served
			Links: []web.LandingLinks{
				{Address: o.telemetryPath, Text: "Metrics"},
				{Address: "/config", Text: "Configuration", Description: "the loaded configuration, secrets redacted"},
				{Address: "/-/healthy", Text: "Health"},
				{Address: "/-/ready", Text: "Readiness"},
			},
		})
		if err != nil {
			// The landing page is built from constants; failing here is a
			// programming error, not a runtime condition.
			panic(fmt.Sprintf("landing page: %v", err))
		}
		mux.Handle("/", landing)
	}
	return mux
}

// metricsHandler serves one scrape: the runs' metrics bound to the scrape's
// deadline, together with the persistent registry.
type metricsHandler struct {
	exporter      *exporter
	persistent    prometheus.Gatherer
	timeoutOffset time.Duration
	errorLog      promhttp.Logger
	// instrumentation, when set, receives promhttp_metric_handler_errors_total.
	instrumentation prometheus.Registerer
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	timeout := scrapeTimeout(r.Header, h.timeoutOffset)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	h.exporter.refreshSessions()
	scrape := prometheus.NewRegistry()
	if err := scrape.Register(h.exporter.collector.ForScrape(ctx)); err != nil {
		http.Error(w, fmt.Sprintf("register collector: %s", err), http.StatusInternalServerError)
		return
	}
	promhttp.HandlerFor(prometheus.Gatherers{h.persistent, scrape}, promhttp.HandlerOpts{
		ErrorLog: h.errorLog,
		// A failing session is a series (aily_session_up 0), not a failed
		// scrape; anything else going wrong still leaves the rest served.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      h.instrumentation,
	}).ServeHTTP(w, r)
}

// scrapeTimeout is the time a scrape may take: Prometheus' scrape timeout
// header minus offset (to leave time to send the answer), or
// defaultScrapeTimeout minus offset when there is no header. An offset as
// large as the timeout is ignored rather than leaving no time at all.
func scrapeTimeout(h http.Header, offset time.Duration) time.Duration {
	timeout := defaultScrapeTimeout
	if v := h.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			timeout = time.Duration(s * float64(time.Second))
		}
	}
	if offset > 0 && offset < timeout {
		timeout -= offset
	}
	return timeout
}
