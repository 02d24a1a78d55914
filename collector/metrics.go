package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "aily"

// DefaultDurationBuckets returns the classic buckets of the run duration and
// queue histograms when Options.DurationBuckets is empty, in seconds: from a
// second to an hour, as SPEC §2's --collector.duration-buckets default.
func DefaultDurationBuckets() []float64 {
	return []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}
}

// Native (sparse) bucket settings of the run histograms: a 10% bucket width
// resolves p95 well from seconds to hours, ~100 buckets bound the memory of a
// series, and a reset at most hourly keeps rate() over the buckets usable.
const (
	nativeBucketFactor    = 1.1
	nativeMaxBucketNumber = 100
	nativeMinReset        = time.Hour
)

// metrics holds the descriptors of the per-scrape gauges and the vectors of
// the counters and histograms, which live across scrapes.
type metrics struct {
	runs         *prometheus.Desc
	oldestAge    *prometheus.Desc
	lastRun      *prometheus.Desc
	info         *prometheus.Desc
	sessionUp    *prometheus.Desc
	scrapeTook   *prometheus.Desc
	up           *prometheus.Desc
	trackedRuns  *prometheus.Desc
	finished     *prometheus.CounterVec
	created      *prometheus.CounterVec
	failures     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	queue        *prometheus.HistogramVec
	apiRequests  *prometheus.CounterVec
	apiDuration  *prometheus.HistogramVec
	apiThrottled *prometheus.CounterVec
}

func newMetrics(buckets []float64) *metrics {
	session := []string{"app", "session_id"}
	withStatus := []string{"app", "session_id", "status"}
	name := func(n string) string { return prometheus.BuildFQName(namespace, "", n) }
	return &metrics{
		runs: prometheus.NewDesc(name("runs"),
			"Runs the session lists now, by status; every known status is present, 0 when the session has none.",
			withStatus, nil),
		oldestAge: prometheus.NewDesc(name("runs_oldest_age_seconds"),
			"Seconds since the oldest run still in this non-final status was created; 0 when none is.",
			withStatus, nil),
		lastRun: prometheus.NewDesc(name("session_last_run_timestamp_seconds"),
			"Unix time at which the session's newest run was created; absent while the session has no runs.",
			session, nil),
		info: prometheus.NewDesc(name("session_info"),
			"Always 1; joins a session to the Aily app (spring_…) its runs belong to.",
			[]string{"app", "session_id", "aily_app_id"}, nil),
		sessionUp: prometheus.NewDesc(name("session_up"),
			"1 if this scrape's listing of the session's runs succeeded, 0 if it failed or missed the scrape deadline.",
			session, nil),
		scrapeTook: prometheus.NewDesc(name("session_scrape_duration_seconds"),
			"Seconds this scrape's listing of the session's runs took.",
			session, nil),
		up: prometheus.NewDesc(name("up"),
			"1 if every configured session was listed successfully in this scrape.",
			nil, nil),
		trackedRuns: prometheus.NewDesc(name("tracked_runs"),
			"Runs held in memory to count each finished run exactly once.",
			nil, nil),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_finished_total",
			Help: "Runs seen reaching a final status since the session was first watched, each run once, by that status.",
		}, withStatus),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "runs_created_total",
			Help: "Runs created since the session was first watched.",
		}, session),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "run_failures_total",
			Help: "FAILED runs by error.code; at most 20 codes per app, the rest as \"other\", runs without a code as \"unknown\".",
		}, []string{"app", "session_id", "error_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "run_duration_seconds",
			Help:                            "Seconds from started_at to ended_at of runs seen finishing, by final status.",
			Buckets:                         buckets,
			NativeHistogramBucketFactor:     nativeBucketFactor,
			NativeHistogramMaxBucketNumber:  nativeMaxBucketNumber,
			NativeHistogramMinResetDuration: nativeMinReset,
		}, withStatus),
		queue: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "run_queue_seconds",
			Help:                            "Seconds from created_at to started_at of runs seen starting.",
			Buckets:                         buckets,
			NativeHistogramBucketFactor:     nativeBucketFactor,
			NativeHistogramMaxBucketNumber:  nativeMaxBucketNumber,
			NativeHistogramMinResetDuration: nativeMinReset,
		}, session),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_requests_total",
			Help: "HTTP requests to the Feishu API by endpoint and result code: the API's code, http_<status> or transport.",
		}, []string{"app", "endpoint", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "api_request_duration_seconds",
			Help:    "Seconds a request to the Feishu API took, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"app", "endpoint"}),
		apiThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_rate_limited_total",
			Help: "Feishu API responses that asked to slow down (HTTP 429 or code 99991400).",
		}, []string{"app"}),
	}
}

// vectors returns the metrics that keep state across scrapes.
func (m *metrics) vectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.finished, m.created, m.failures, m.duration, m.queue,
		m.apiRequests, m.apiDuration, m.apiThrottled,
	}
}

// sessionVectors returns the vectors with app and session_id labels, whose
// series go when the session is no longer configured.
func (m *metrics) sessionVectors() []interface {
	DeletePartialMatch(prometheus.Labels) int
} {
	return []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.finished, m.created, m.failures, m.duration, m.queue}
}

func (m *metrics) describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		m.runs, m.oldestAge, m.lastRun, m.info, m.sessionUp, m.scrapeTook, m.up, m.trackedRuns,
	} {
		ch <- d
	}
	for _, v := range m.vectors() {
		v.Describe(ch)
	}
}
