package collector

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "aily"

// runMetrics are the run metrics at one granularity: per session (labels
// app, session_id) or per app (label app, for apps with per_session: false).
type runMetrics struct {
	runs      *prometheus.Desc
	oldestAge *prometheus.Desc
	finished  *prometheus.Desc
	created   *prometheus.Desc
	failures  *prometheus.Desc
	duration  *prometheus.Desc
	queue     *prometheus.Desc
}

// metrics holds the descriptors of what is made afresh on every scrape and
// the vectors of what lives across scrapes.
type metrics struct {
	perSession, perApp runMetrics

	labelledMu sync.Mutex
	// labelled are the run metrics of the apps with metadata labels, by
	// granularity and labels (labelledRunMetrics).
	labelled map[string]*runMetrics

	lastRun      *prometheus.Desc
	info         *prometheus.Desc
	sessionUp    *prometheus.Desc
	lastSuccess  *prometheus.Desc
	pollTook     *prometheus.Desc
	sessions     *prometheus.Desc
	overdue      *prometheus.Desc
	budget       *prometheus.Desc
	spend        *prometheus.Desc
	staleness    *prometheus.HistogramVec
	up           *prometheus.Desc
	trackedRuns  *prometheus.Desc
	apiRequests  *prometheus.CounterVec
	apiDuration  *prometheus.HistogramVec
	apiThrottled *prometheus.CounterVec
	tokenUp      *prometheus.Desc
}

func name(n string) string { return prometheus.BuildFQName(namespace, "", n) }

// desc describes the metric aily_<n>, with variable labels and no constant
// ones: every descriptor of the collector is one.
func desc(n, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name(n), help, labels, nil)
}

func newRunMetrics(scope ...string) runMetrics {
	withStatus := append(scope[:len(scope):len(scope)], "status")
	withCode := append(scope[:len(scope):len(scope)], "error_code")
	return runMetrics{
		runs:      desc("runs", "Runs by status as of the session's last successful poll; every known status is present, 0 when none.", withStatus...),
		oldestAge: desc("runs_oldest_age_seconds", "Seconds since the oldest run still in this non-final status was created; 0 when none is.", withStatus...),
		finished:  desc("runs_finished_total", "Runs seen reaching a final status since the session was first watched, each run once, by that status.", withStatus...),
		created:   desc("runs_created_total", "Runs created since the session was first watched.", scope...),
		failures:  desc("run_failures_total", "FAILED runs by error.code; at most 20 codes per app, the rest as \"other\", runs without a code as \"unknown\".", withCode...),
		duration:  desc("run_duration_seconds", "Seconds from started_at to ended_at of runs seen finishing, by final status.", withStatus...),
		queue:     desc("run_queue_seconds", "Seconds from created_at to started_at of runs seen starting.", scope...),
	}
}

func newMetrics() *metrics {
	session := []string{"app", "session_id"}
	return &metrics{
		perSession:  newRunMetrics("app", "session_id"),
		perApp:      newRunMetrics("app"),
		lastRun:     desc("session_last_run_timestamp_seconds", "Unix time at which the session's newest run was created; absent while the session has no runs.", session...),
		info:        desc("session_info", "Always 1; joins a session to the Aily app (spring_…) its runs belong to.", "app", "session_id", "aily_app_id"),
		sessionUp:   desc("session_up", "1 if the session's most recent poll succeeded, 0 if it failed or was cut off by the scrape deadline.", session...),
		lastSuccess: desc("session_last_success_timestamp_seconds", "Unix time at which the session's last successful poll began.", session...),
		pollTook:    desc("session_poll_duration_seconds", "Seconds the session's most recent poll took.", session...),
		sessions:    desc("sessions", "Configured sessions by polling state: pending (no baseline yet), active, idle, failing.", "app", "state"),
		overdue:     desc("sessions_overdue", "Sessions never polled, or not polled within the staleness target (--poll.idle-interval), that the last scrape could not poll (request budget or deadline).", "app"),
		budget:      desc("poll_budget_requests_per_day", "The app's daily request budget in force (--poll.daily-budget or daily_budget): list and get-run requests a day; 0 when there is no average cap.", "app"),
		spend:       desc("poll_spend_requests_per_day", "List and get-run requests a day at the pace of the last hour (of the time since start, in the first hour).", "app"),
		staleness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "session_staleness_seconds",
			Help:    "Age of each session's last successful poll, observed for every session at every scrape: how fresh the numbers served are.",
			Buckets: []float64{5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400},
		}, []string{"app"}),
		up:          desc("up", "1 if every session's most recent poll succeeded."),
		trackedRuns: desc("tracked_runs", "Runs held in memory to count each finished run exactly once."),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_requests_total",
			Help: "HTTP requests to the Feishu API by endpoint and result code: the API's code, http_<status>, transport or canceled.",
		}, []string{"app", "endpoint", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "api_request_duration_seconds",
			Help:    "Seconds a request to the Feishu API took, by endpoint.",
			Buckets: prometheus.DefBuckets,
		}, []string{"app", "endpoint"}),
		tokenUp: desc("app_token_up", "1 if the app's last attempt to obtain its access token (or to read its user access token file) worked, 0 if it failed or the API refused the token; absent before the first attempt.", "app"),
		apiThrottled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_rate_limited_total",
			Help: "Feishu API responses that asked to slow down (HTTP 429 or code 99991400).",
		}, []string{"app"}),
	}
}

// labelledRunMetrics returns the run metrics of an app with the metadata
// labels meta: their counters and histograms have those labels after app
// (and session_id when perSession), before status or error_code. Without
// metadata labels, the plain ones.
func (m *metrics) labelledRunMetrics(perSession bool, meta []string) *runMetrics {
	scope := []string{"app"}
	if perSession {
		scope = append(scope, "session_id")
	}
	if len(meta) == 0 {
		if perSession {
			return &m.perSession
		}
		return &m.perApp
	}
	key := strings.Join(append(scope, meta...), ",")
	m.labelledMu.Lock()
	defer m.labelledMu.Unlock()
	rm := m.labelled[key]
	if rm == nil {
		r := newRunMetrics(append(scope, meta...)...)
		rm = &r
		if m.labelled == nil {
			m.labelled = make(map[string]*runMetrics)
		}
		m.labelled[key] = rm
	}
	return rm
}

// vectors returns the metrics that keep state across scrapes.
func (m *metrics) vectors() []prometheus.Collector {
	return []prometheus.Collector{m.apiRequests, m.apiDuration, m.apiThrottled, m.staleness}
}
