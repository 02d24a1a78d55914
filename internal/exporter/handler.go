package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
)

// RouteOptions are the flags that shape the HTTP endpoints.
type RouteOptions struct {
	TelemetryPath          string
	DisableExporterMetrics bool
	TimeoutOffset          time.Duration
}

// Routes returns every endpoint the README lists.
func (e *Exporter) Routes(o RouteOptions) http.Handler {
	// The persistent registry: what is the same whatever the scrape's
	// deadline. The runs' metrics are gathered from a registry made per
	// request, bound to that request's deadline.
	reg := prometheus.NewRegistry()
	// A shard labels all its series with its ordinal: shards that share out
	// an app's sessions each export the app's series (aily_sessions, the
	// summed run counters), which the label keeps apart, while the HA
	// replicas of one shard still export the same series, merged with
	// max without (instance, pod).
	r := e.shardLabels(reg)
	r.MustRegister(versioncollector.NewCollector(ProgramName), e.reloadSuccess, e.reloadTimestamp, newDiscoveryMetrics(e),
		newShardMetrics(e.shard))
	if e.storage != nil {
		r.MustRegister(newStateMetrics(e.storage.store))
	}
	mh := &metricsHandler{
		exporter:      e,
		persistent:    reg,
		timeoutOffset: o.TimeoutOffset,
		logger:        e.logger,
	}
	var metrics http.Handler = mh
	if !o.DisableExporterMetrics {
		r.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
		mh.instrumentation = r
		metrics = promhttp.InstrumentMetricHandler(r, mh)
	}

	mux := http.NewServeMux()
	mux.Handle(o.TelemetryPath, metrics)
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
	mux.Handle("/status", e.statusHandler(false, o.TelemetryPath))
	mux.Handle("/status.json", e.statusHandler(true, o.TelemetryPath))
	mux.HandleFunc("/config", func(w http.ResponseWriter, _ *http.Request) {
		b, err := e.redactedConfig()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(b)
	})
	if o.TelemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Aily Exporter",
			Description: "Prometheus exporter for the runs of Feishu Aily agent sessions",
			Version:     version.Info(),
			Profiling:   "false", // no /debug/pprof is served
			Links: []web.LandingLinks{
				{Address: o.TelemetryPath, Text: "Metrics"},
				{Address: "/status", Text: "Status", Description: "sessions, their state and freshness, recent failed runs"},
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
	return nosniff(mux)
}

// nosniff tells browsers to take every answer as the type it says it is
// (text, not HTML to render or a script to run), whatever it contains.
func nosniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// metricsHandler serves one scrape: the runs' metrics bound to the scrape's
// deadline, together with the persistent registry.
type metricsHandler struct {
	exporter      *Exporter
	persistent    prometheus.Gatherer
	timeoutOffset time.Duration
	logger        log.Logger
	// instrumentation, when set, receives promhttp_metric_handler_errors_total.
	instrumentation prometheus.Registerer
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Noted as it arrives: /status tells "no scrape yet" from "polling".
	h.exporter.lastScrape.Store(time.Now().UnixNano())
	timeout := scrapeTimeout(r.Header, h.timeoutOffset)
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	h.exporter.refreshSessions()
	scrape := prometheus.NewRegistry()
	sc := h.exporter.collector.ForScrape(ctx)
	if err := h.exporter.shardLabels(scrape).Register(sc); err != nil {
		http.Error(w, fmt.Sprintf("register collector: %s", err), http.StatusInternalServerError)
		return
	}
	sw := &scrapeWriter{ResponseWriter: w}
	// The scrape's registry first: it polls and saves the state, which the
	// persistent registry's aily_state_* then report, for this scrape.
	g := &scrapeGatherer{scrape: scrape, persistent: h.persistent}
	promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: promhttpLogger{h.logger},
		// A failing session is a series (aily_session_up 0), not a failed
		// scrape; anything else going wrong still leaves the rest served.
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      h.instrumentation,
		// OpenMetrics, when the scraper asks for it, carries the exemplars
		// (the run_id of the latest run) of the failure and duration metrics.
		EnableOpenMetrics: true,
	}).ServeHTTP(sw, r)
	switch {
	case sw.err == nil && r.Context().Err() == nil:
		// Sent in full: the time it took is what the next scrapes reserve.
		sc.Answered(g.series)
	case sw.err == nil:
	case clientWentAway(r, sw.err):
		level.Debug(h.logger).Log("msg", "Client went away before the scrape was sent", "remote", r.RemoteAddr, "err", sw.err)
	default:
		level.Error(h.logger).Log("msg", "Error sending the scrape", "remote", r.RemoteAddr, "err", sw.err)
	}
}

// scrapeGatherer gathers the scrape's registry, then the persistent one, and
// counts the series. Their metric names are disjoint, so unlike
// prometheus.Gatherers it does not check and sort every series of the
// scrape a second time, which costs some 15% of the gathering's time and
// memory (BenchmarkScrapeGatherer, docs/performance.md); should two
// families share a name, it merges them as prometheus.Gatherers does.
type scrapeGatherer struct {
	scrape, persistent prometheus.Gatherer
	series             int // those of the last Gather
}

func (g *scrapeGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := g.scrape.Gather()
	more, merr := g.persistent.Gather()
	names := make(map[string]bool, len(mfs))
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	clash := false
	for _, mf := range more {
		clash = clash || names[mf.GetName()]
	}
	if clash {
		mfs, err = prometheus.Gatherers{gathered(mfs, err), gathered(more, merr)}.Gather()
	} else {
		mfs = append(mfs, more...)
		slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
		var errs prometheus.MultiError
		for _, e := range []error{err, merr} {
			var me prometheus.MultiError
			if errors.As(e, &me) {
				errs = append(errs, me...)
			} else {
				errs.Append(e)
			}
		}
		err = errs.MaybeUnwrap()
	}
	g.series = 0
	for _, mf := range mfs {
		g.series += len(mf.GetMetric())
	}
	return mfs, err
}

// gathered is a Gatherer of what was already gathered.
func gathered(mfs []*dto.MetricFamily, err error) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, err })
}

// scrapeWriter is the response writer of one scrape. Once a write fails the
// connection is gone for good: it keeps the first error, for the scrape's one
// log line, and takes the rest of the answer without trying to send it, so
// that promhttp does not log every metric family it could not send.
type scrapeWriter struct {
	http.ResponseWriter
	err error
}

func (w *scrapeWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return len(p), nil
	}
	n, err := w.ResponseWriter.Write(p)
	if err != nil {
		w.err = err
		return len(p), nil
	}
	return n, nil
}

// Unwrap gives http.ResponseController the connection's writer.
func (w *scrapeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientWentAway reports whether err, from writing r's answer, means that
// the client closed the connection or gave up on the request: routine when
// a scraper times out or a curl is piped into head, not the exporter's error.
func clientWentAway(r *http.Request, err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.Canceled) || r.Context().Err() != nil
}

// promhttpLogger is promhttp's error log on the go-kit logger. promhttp
// calls Println with a message ending in a colon, then the error.
type promhttpLogger struct{ logger log.Logger }

func (l promhttpLogger) Println(v ...any) {
	if len(v) == 0 {
		return
	}
	msg := strings.TrimRight(fmt.Sprint(v[0]), ": ")
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	kv := []any{"msg", msg}
	if len(v) > 1 {
		kv = append(kv, "err", strings.TrimSuffix(fmt.Sprintln(v[1:]...), "\n"))
	}
	level.Error(l.logger).Log(kv...)
}

// The scrape timeouts X-Prometheus-Scrape-Timeout-Seconds may ask for. The
// header comes from whoever sends the request: out of this range (too short
// to poll anything, or long enough to hold a listing open for hours, or
// beyond what a time.Duration holds) it is ignored.
const (
	minHeaderScrapeTimeout = 500 * time.Millisecond
	maxHeaderScrapeTimeout = 10 * time.Minute
)

// scrapeTimeout is the time a scrape may take: Prometheus' scrape timeout
// header minus offset (to leave time to send the answer), or
// defaultScrapeTimeout minus offset when there is no header or it is not a
// number of seconds between 0.5 and 600. An offset as large as the timeout
// is ignored rather than leaving no time at all.
func scrapeTimeout(h http.Header, offset time.Duration) time.Duration {
	timeout := defaultScrapeTimeout
	if v := h.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		// The comparisons are false for NaN, and made before converting,
		// which would overflow for ±Inf and 1e10.
		s, err := strconv.ParseFloat(v, 64)
		if err == nil && s >= minHeaderScrapeTimeout.Seconds() && s <= maxHeaderScrapeTimeout.Seconds() {
			timeout = time.Duration(s * float64(time.Second))
		}
	}
	if offset > 0 && offset < timeout {
		timeout -= offset
	}
	return timeout
}
