package collector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// memLister is an in-memory watch.API that lists every run of a session on
// one page. Sessions can be made to fail, to block until the caller's context
// ends, or to hang regardless of it.
type memLister struct {
	mu      sync.Mutex
	runs    map[string][]feishu.Run
	errs    map[string]error
	blocks  map[string]bool          // wait for ctx.Done
	hangs   map[string]chan struct{} // wait for the channel, ignoring ctx
	gate    chan struct{}            // when set, every call waits for it to close
	entered chan string              // when set, told each session whose call began
	calls   map[string]int
}

func newMemLister() *memLister {
	return &memLister{
		runs:   make(map[string][]feishu.Run),
		errs:   make(map[string]error),
		blocks: make(map[string]bool),
		hangs:  make(map[string]chan struct{}),
		calls:  make(map[string]int),
	}
}

func (m *memLister) set(session string, runs ...feishu.Run) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range runs {
		runs[i].SessionID = session
	}
	m.runs[session] = runs
}

func (m *memLister) callsOf(session string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[session]
}

func (m *memLister) ListRunsPage(ctx context.Context, session, _ string) (feishu.RunsPage, error) {
	m.mu.Lock()
	m.calls[session]++
	runs, err, block, hang, gate, entered := m.runs[session], m.errs[session], m.blocks[session], m.hangs[session], m.gate, m.entered
	m.mu.Unlock()
	if entered != nil {
		entered <- session
	}
	if gate != nil {
		<-gate
	}
	if hang != nil {
		<-hang
		return feishu.RunsPage{}, errors.New("hung")
	}
	if block {
		<-ctx.Done()
		return feishu.RunsPage{}, fmt.Errorf("list runs of session %s: %w", session, ctx.Err())
	}
	if err != nil {
		return feishu.RunsPage{}, err
	}
	return feishu.RunsPage{Runs: append([]feishu.Run(nil), runs...)}, nil
}

func (m *memLister) GetRun(_ context.Context, session, id string) (feishu.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runs[session] {
		if r.ID == id {
			return r, nil
		}
	}
	return feishu.Run{}, &feishu.APIError{Endpoint: "get_run", HTTPStatus: 400, Code: feishu.CodeParamInvalid}
}

func (m *memLister) PageSize() int { return 1000 }

func newTestCollector(t *testing.T, clk *feishufake.Clock, logs *testkit.LogBuffer, minInterval time.Duration, opts ...func(*watch.Options)) *Collector {
	t.Helper()
	var logger log.Logger = log.NewNopLogger()
	if logs != nil {
		logger = log.NewLogfmtLogger(logs)
	}
	if minInterval == 0 {
		minInterval = -1 // no min interval: every scrape polls
	}
	o := watch.Options{
		Concurrency: 2,
		MinInterval: minInterval,
		// Idle sessions are due as often as active ones, so that each
		// scrape of these tests polls every session.
		IdleInterval:    time.Nanosecond,
		Now:             clk.Now,
		DurationBuckets: []float64{1, 10, 60},
		Logger:          logger,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return New(watch.New(o), Options{Logger: logger})
}

// saving has the watcher save its state with s.
func saving(s watch.Saver) func(*watch.Options) {
	return func(o *watch.Options) { o.Saver = s }
}

// withBuckets gives the watcher's histograms these classic buckets.
func withBuckets(b []float64) func(*watch.Options) {
	return func(o *watch.Options) { o.DurationBuckets = b }
}

// gather scrapes c once under ctx through a registry, as main does.
func gather(t *testing.T, ctx context.Context, c *Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c.ForScrape(ctx)); err != nil {
		t.Fatalf("register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return mfs
}

// value returns the value of the series of name with exactly the given label
// values (in label-name order as listed in labels), and whether it exists.
func value(mfs []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// seriesWith counts the series of all families that carry label=value.
func seriesWith(mfs []*dto.MetricFamily, label, val string) int {
	n := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == val {
					n++
				}
			}
		}
	}
	return n
}

func sess(app, id string) map[string]string { return map[string]string{"app": app, "session_id": id} }

// zeroDurations is the exposition of TestCollectorExposition's duration
// histograms of these statuses, no run seen finishing in them.
func zeroDurations(statuses ...string) string {
	var b strings.Builder
	for _, st := range statuses {
		labels := fmt.Sprintf(`app="helpdesk",session_id="s1",status=%q`, st)
		for _, le := range []string{"1", "10", "60", "+Inf"} {
			fmt.Fprintf(&b, "aily_run_duration_seconds_bucket{%s,le=%q} 0\n", labels, le)
		}
		fmt.Fprintf(&b, "aily_run_duration_seconds_sum{%s} 0\naily_run_duration_seconds_count{%s} 0\n", labels, labels)
	}
	return b.String()
}

func TestCollectorExposition(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1",
		runs.New("old", completed, -300, -290, -200), // before the watch: not counted
		runs.New("r1", inProgress, -60, -50, runs.None),
		runs.New("q1", queued, -30, runs.None, runs.None),
	)
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{{Name: "helpdesk", API: lister, PerSession: true, Sessions: []string{"s1"}}})

	clk.Advance(10 * time.Second)
	baselineServedTwice(t, c)

	clk.Advance(20 * time.Second) // t0+30
	failedRun := runs.New("r1", failed, -60, -50, 25)
	failedRun.Error = &feishu.RunError{Code: "sp_ec_sm_900101", Message: "skill missing"}
	lister.set("s1",
		runs.New("old", completed, -300, -290, -200),
		failedRun,
		runs.New("q1", inProgress, -30, 20, runs.None),
		runs.New("n1", "PAUSED", 28, runs.None, runs.None),
	)

	want := `
# HELP aily_run_duration_seconds Seconds from started_at to ended_at of runs seen finishing, by final status.
# TYPE aily_run_duration_seconds histogram
` + zeroDurations("CANCELLED", "COMPLETED", "EXPIRED") + `aily_run_duration_seconds_bucket{app="helpdesk",session_id="s1",status="FAILED",le="1"} 0
aily_run_duration_seconds_bucket{app="helpdesk",session_id="s1",status="FAILED",le="10"} 0
aily_run_duration_seconds_bucket{app="helpdesk",session_id="s1",status="FAILED",le="60"} 0
aily_run_duration_seconds_bucket{app="helpdesk",session_id="s1",status="FAILED",le="+Inf"} 1
aily_run_duration_seconds_sum{app="helpdesk",session_id="s1",status="FAILED"} 75
aily_run_duration_seconds_count{app="helpdesk",session_id="s1",status="FAILED"} 1
# HELP aily_run_failures_total FAILED runs by error.code; at most 20 codes per app, the rest as "other", runs without a code as "unknown".
# TYPE aily_run_failures_total counter
aily_run_failures_total{app="helpdesk",error_code="sp_ec_sm_900101",session_id="s1"} 0
# HELP aily_run_queue_seconds Seconds from created_at to started_at of runs seen starting.
# TYPE aily_run_queue_seconds histogram
aily_run_queue_seconds_bucket{app="helpdesk",session_id="s1",le="1"} 0
aily_run_queue_seconds_bucket{app="helpdesk",session_id="s1",le="10"} 0
aily_run_queue_seconds_bucket{app="helpdesk",session_id="s1",le="60"} 1
aily_run_queue_seconds_bucket{app="helpdesk",session_id="s1",le="+Inf"} 1
aily_run_queue_seconds_sum{app="helpdesk",session_id="s1"} 50
aily_run_queue_seconds_count{app="helpdesk",session_id="s1"} 1
# HELP aily_runs Runs by status as of the session's last successful poll; every known status is present, 0 when none.
# TYPE aily_runs gauge
aily_runs{app="helpdesk",session_id="s1",status="CANCELLED"} 0
aily_runs{app="helpdesk",session_id="s1",status="COMPLETED"} 1
aily_runs{app="helpdesk",session_id="s1",status="EXPIRED"} 0
aily_runs{app="helpdesk",session_id="s1",status="FAILED"} 1
aily_runs{app="helpdesk",session_id="s1",status="IN_PROGRESS"} 1
aily_runs{app="helpdesk",session_id="s1",status="PAUSED"} 1
aily_runs{app="helpdesk",session_id="s1",status="QUEUED"} 0
aily_runs{app="helpdesk",session_id="s1",status="REQUIRES_MESSAGE"} 0
# HELP aily_runs_created_total Runs created since the session was first watched.
# TYPE aily_runs_created_total counter
aily_runs_created_total{app="helpdesk",session_id="s1"} 1
# HELP aily_runs_finished_total Runs seen reaching a final status since the session was first watched, each run once, by that status.
# TYPE aily_runs_finished_total counter
aily_runs_finished_total{app="helpdesk",session_id="s1",status="CANCELLED"} 0
aily_runs_finished_total{app="helpdesk",session_id="s1",status="COMPLETED"} 0
aily_runs_finished_total{app="helpdesk",session_id="s1",status="EXPIRED"} 0
aily_runs_finished_total{app="helpdesk",session_id="s1",status="FAILED"} 1
# HELP aily_runs_oldest_age_seconds Seconds since the oldest run still in this non-final status was created; 0 when none is.
# TYPE aily_runs_oldest_age_seconds gauge
aily_runs_oldest_age_seconds{app="helpdesk",session_id="s1",status="IN_PROGRESS"} 60
aily_runs_oldest_age_seconds{app="helpdesk",session_id="s1",status="QUEUED"} 0
aily_runs_oldest_age_seconds{app="helpdesk",session_id="s1",status="REQUIRES_MESSAGE"} 0
# HELP aily_session_info Always 1; joins a session to the Aily app (spring_…) its runs belong to.
# TYPE aily_session_info gauge
aily_session_info{aily_app_id="spring_a",app="helpdesk",session_id="s1"} 1
# HELP aily_session_last_run_timestamp_seconds Unix time at which the session's newest run was created; absent while the session has no runs.
# TYPE aily_session_last_run_timestamp_seconds gauge
aily_session_last_run_timestamp_seconds{app="helpdesk",session_id="s1"} 1.740830428e+09
# HELP aily_session_last_success_timestamp_seconds Unix time at which the session's last successful poll began.
# TYPE aily_session_last_success_timestamp_seconds gauge
aily_session_last_success_timestamp_seconds{app="helpdesk",session_id="s1"} 1.74083043e+09
# HELP aily_session_poll_duration_seconds Seconds the session's most recent poll took.
# TYPE aily_session_poll_duration_seconds gauge
aily_session_poll_duration_seconds{app="helpdesk",session_id="s1"} 0
# HELP aily_session_up 1 if the session's most recent poll succeeded, 0 if it failed or was cut off by the scrape deadline.
# TYPE aily_session_up gauge
aily_session_up{app="helpdesk",session_id="s1"} 1
# HELP aily_sessions Configured sessions by polling state: pending (no baseline yet), active, idle, failing.
# TYPE aily_sessions gauge
aily_sessions{app="helpdesk",state="active"} 1
aily_sessions{app="helpdesk",state="failing"} 0
aily_sessions{app="helpdesk",state="idle"} 0
aily_sessions{app="helpdesk",state="pending"} 0
# HELP aily_poll_budget_requests_per_day The app's daily request budget in force (--poll.daily-budget or daily_budget): list and get-run requests a day; 0 when there is no average cap.
# TYPE aily_poll_budget_requests_per_day gauge
aily_poll_budget_requests_per_day{app="helpdesk"} 0
# HELP aily_poll_spend_requests_per_day List and get-run requests a day at the pace of the last hour (of the time since start, in the first hour).
# TYPE aily_poll_spend_requests_per_day gauge
aily_poll_spend_requests_per_day{app="helpdesk"} 4320
# HELP aily_session_staleness_seconds Age of each session's last successful poll, observed for every session at every scrape: how fresh the numbers served are.
# TYPE aily_session_staleness_seconds histogram
aily_session_staleness_seconds_bucket{app="helpdesk",le="5"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="10"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="15"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="30"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="60"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="120"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="300"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="600"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="1800"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="3600"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="7200"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="21600"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="86400"} 2
aily_session_staleness_seconds_bucket{app="helpdesk",le="+Inf"} 2
aily_session_staleness_seconds_sum{app="helpdesk"} 0
aily_session_staleness_seconds_count{app="helpdesk"} 2
# HELP aily_sessions_overdue Sessions never polled, or not polled within the staleness target (--poll.idle-interval), that the last scrape could not poll (request budget or deadline).
# TYPE aily_sessions_overdue gauge
aily_sessions_overdue{app="helpdesk"} 0
# HELP aily_tracked_runs Runs held in memory to count each finished run exactly once.
# TYPE aily_tracked_runs gauge
aily_tracked_runs 2
# HELP aily_up 1 if every session's most recent poll succeeded.
# TYPE aily_up gauge
aily_up 1
# HELP aily_api_rate_limited_total Feishu API responses that asked to slow down (HTTP 429 or code 99991400).
# TYPE aily_api_rate_limited_total counter
aily_api_rate_limited_total{app="helpdesk"} 0
`
	if err := testutil.CollectAndCompare(timed{c}, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestCollectorLint(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", inProgress, 1, 2, runs.None))
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{{Name: "helpdesk", API: lister, PerSession: true, Sessions: []string{"s1", "s2"}}})
	lister.errs["s2"] = errors.New("boom")
	obs := c.APIObserver("helpdesk")
	obs.ObserveRequest(feishu.EndpointListRuns, "0", 30*time.Millisecond)
	obs.ObserveRateLimited(feishu.EndpointListRuns, time.Second)
	gather(t, context.Background(), c)
	f := runs.New("r1", failed, 1, 2, 5)
	f.Error = &feishu.RunError{Code: "x"}
	lister.set("s1", f)
	problems, err := testutil.CollectAndLint(timed{c})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestCollectorFaultIsolation(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	logs := &testkit.LogBuffer{}
	lister := newMemLister()
	lister.set("ok", runs.New("r1", queued, 1, runs.None, runs.None))
	lister.errs["broken"] = errors.New(`list runs of session broken: feishu list_runs: HTTP 404: "404 page not found"`)
	lister.blocks["slow"] = true
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	lister.hangs["stuck"] = hang
	c := newTestCollector(t, clk, logs, 0)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"ok", "broken", "slow", "stuck"}}})

	// No timed assertion: Collect must return although one lister never
	// does; a collector that waited for it would hang the test.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	mfs := gather(t, ctx, c)

	for id, want := range map[string]float64{"ok": 1, "broken": 0, "slow": 0, "stuck": 0} {
		if got, ok := value(mfs, "aily_session_up", sess("a", id)); !ok || got != want {
			t.Errorf("aily_session_up{session_id=%q} = %v (present %v), want %v", id, got, ok, want)
		}
		l := sess("a", id)
		l["status"] = "FAILED"
		if _, ok := value(mfs, "aily_runs_finished_total", l); !ok {
			t.Errorf("aily_runs_finished_total of session %q missing: counters must be served when it is down", id)
		}
		l["status"] = "QUEUED"
		_, hasRuns := value(mfs, "aily_runs", l)
		if hasRuns != (want == 1) {
			t.Errorf("aily_runs of session %q present = %v, want %v", id, hasRuns, want == 1)
		}
	}
	if got, _ := value(mfs, "aily_runs", map[string]string{"app": "a", "session_id": "ok", "status": "QUEUED"}); got != 1 {
		t.Errorf("aily_runs{ok,QUEUED} = %v, want 1", got)
	}
	if got, _ := value(mfs, "aily_up", nil); got != 0 {
		t.Errorf("aily_up = %v, want 0", got)
	}
	// The slow and stuck sessions' polls end after the scrape, so only the
	// broken one's warning is sure to be written by now.
	out := logs.String()
	if n := strings.Count(out, "session_id=broken "); n != 1 {
		t.Errorf("session broken logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "level=warn") || !strings.Contains(out, "404 page not found") {
		t.Errorf("log lacks the warning with the error:\n%s", out)
	}
}

func TestCollectorFailureCodesCapped(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1", "s2"}}})
	gather(t, context.Background(), c) // baseline: nothing yet

	var batch []feishu.Run
	for i := range 21 {
		r := runs.New(fmt.Sprintf("r%02d", i), failed, 1, 2, 3)
		r.Error = &feishu.RunError{Code: fmt.Sprintf("code_%02d", i)}
		batch = append(batch, r)
	}
	batch = append(batch, runs.New("nocode", failed, 1, 2, 3))
	lister.set("s1", batch...)
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)
	// The cap is per app: a code new to s2 is the app's 22nd.
	r := runs.New("s2r", failed, 1, 2, 3)
	r.Error = &feishu.RunError{Code: "code_s2"}
	lister.set("s2", r)
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)
	// Every code is new to its session: served at zero in two scrapes
	// before its failures show.
	gather(t, context.Background(), c)
	mfs := gather(t, context.Background(), c)

	codes := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "aily_run_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "error_code" {
					codes[lp.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	if codes["other"] != 2 || codes["unknown"] != 1 || codes["code_20"] != 0 || codes["code_19"] != 1 {
		t.Errorf("failure codes = %v, want code_00..code_19 once, other 2 (code_20, code_s2), unknown 1", codes)
	}
	if len(codes) != 22 {
		t.Errorf("%d distinct error_code values, want 22 (20 codes, other, unknown): %v", len(codes), codes)
	}
}

// inFlightS1 is a collector of app a's one session, s1, whose run r1 is in
// flight, polled at most every minInterval.
func inFlightS1(t *testing.T, minInterval time.Duration) (*feishufake.Clock, *memLister, *Collector) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", inProgress, 1, 2, runs.None))
	c := newTestCollector(t, clk, nil, minInterval)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	return clk, lister, c
}

func TestCollectorMinIntervalReusesListing(t *testing.T) {
	clk, lister, c := inFlightS1(t, 5*time.Second)

	gather(t, context.Background(), c)
	lister.set("s1", runs.New("r1", completed, 1, 2, 3))
	clk.Advance(4 * time.Second)
	mfs := gather(t, context.Background(), c)
	if n := lister.callsOf("s1"); n != 1 {
		t.Fatalf("listed %d times within the min interval, want 1", n)
	}
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 0 {
		t.Errorf("finished = %v from a reused listing, want 0 (the old listing showed it running)", got)
	}

	clk.Advance(time.Second)
	mfs = gather(t, context.Background(), c)
	if n := lister.callsOf("s1"); n != 2 {
		t.Fatalf("listed %d times after the min interval, want 2", n)
	}
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 1 {
		t.Errorf("finished = %v, want 1", got)
	}
	clk.Advance(time.Second) // reused again: the run must not be counted twice
	mfs = gather(t, context.Background(), c)
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 1 {
		t.Errorf("finished = %v after a reused listing, want 1", got)
	}
}

func TestCollectorConcurrentScrapesShareOnePoll(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", completed, 1, 2, 3))
	lister.gate = make(chan struct{})
	lister.entered = make(chan string, 1)
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})

	first := make(chan []*dto.MetricFamily)
	go func() { first <- gather(t, context.Background(), c) }()
	<-lister.entered // the first scrape's poll is under way

	// A second scrape, while that poll is under way, does not poll the
	// session again; it gives up at its own deadline and shows the session's
	// last state: none yet, since the poll (bound by the first scrape's
	// deadline, not yet passed) has not finished.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	mfs := gather(t, ctx, c)
	if n := lister.callsOf("s1"); n != 1 {
		t.Errorf("polled %d times for two concurrent scrapes, want 1", n)
	}
	if got, ok := value(mfs, "aily_session_up", sess("a", "s1")); ok {
		t.Errorf("the second scrape shows aily_session_up = %v, want none before the first poll ends", got)
	}
	close(lister.gate)
	<-first
}

func TestCollectorConcurrentScrapesRace(t *testing.T) {
	// Many scrapes at once and a reload in the middle, for the race detector.
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", completed, 1, 2, 3))
	lister.set("s2", runs.New("r2", inProgress, 1, 2, runs.None))
	c := newTestCollector(t, clk, nil, time.Second)
	apps := []watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1", "s2"}}}
	c.SetApps(apps)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if i == 4 {
				c.SetApps(apps[:0])
				c.SetApps(apps)
			}
			obs := c.APIObserver("a")
			obs.ObserveRequest(feishu.EndpointListRuns, "0", time.Millisecond)
			testutil.CollectAndCount(timed{c})
		})
	}
	wg.Wait()
}

func TestCollectorSetAppsRemovesSessionSeries(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("keep", runs.New("k1", inProgress, 1, 2, runs.None))
	lister.set("gone", runs.New("g1", inProgress, 1, 2, runs.None))
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{
		{Name: "a", API: lister, PerSession: true, Sessions: []string{"keep", "gone"}},
		{Name: "b", API: lister, PerSession: true, Sessions: []string{"other"}},
	})
	gather(t, context.Background(), c)
	lister.set("keep", runs.New("k1", completed, 1, 2, 5))
	f := runs.New("g1", failed, 1, 2, 5)
	f.Error = &feishu.RunError{Code: "c1"}
	lister.set("gone", f)
	c.APIObserver("b").ObserveRequest(feishu.EndpointListRuns, "0", time.Millisecond)
	clk.Advance(10 * time.Second)
	mfs := gather(t, context.Background(), c)
	if seriesWith(mfs, "session_id", "gone") == 0 || seriesWith(mfs, "app", "b") == 0 {
		t.Fatal("test set-up: no series for the sessions to remove")
	}

	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"keep"}}})
	c.APIObserver("b").ObserveRequest(feishu.EndpointListRuns, "0", time.Millisecond) // a late request of a removed app
	mfs = gather(t, context.Background(), c)
	if n := seriesWith(mfs, "session_id", "gone"); n != 0 {
		t.Errorf("%d series of the removed session remain", n)
	}
	if n := seriesWith(mfs, "app", "b"); n != 0 {
		t.Errorf("%d series of the removed app remain", n)
	}
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "keep", "status": "COMPLETED"}); got != 1 {
		t.Errorf("kept session's finished counter = %v, want 1 (kept across the reload)", got)
	}
	if got, _ := value(mfs, "aily_tracked_runs", nil); got != 1 {
		t.Errorf("aily_tracked_runs = %v, want 1: the removed session's runs must be dropped", got)
	}

	// Re-adding the session starts a new watch: its old runs are history.
	clk.Advance(time.Minute)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"keep", "gone"}}})
	mfs = gather(t, context.Background(), c)
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "gone", "status": "FAILED"}); got != 0 {
		t.Errorf("re-added session's FAILED = %v, want 0", got)
	}
}

func TestCollectorRestartStartsAtZero(t *testing.T) {
	lister := newMemLister()
	lister.set("s1",
		runs.New("a", completed, -300, -290, -200),
		runs.New("b", failed, -250, -240, -100),
		runs.New("c", inProgress, -50, -40, runs.None),
	)
	clk := feishufake.NewClock(testkit.T0)
	first := newTestCollector(t, clk, nil, 0)
	first.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	baselineServedTwice(t, first)
	lister.set("s1",
		runs.New("a", completed, -300, -290, -200),
		runs.New("b", failed, -250, -240, -100),
		runs.New("c", completed, -50, -40, 5),
	)
	clk.Advance(10 * time.Second)
	mfs := gather(t, context.Background(), first)
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 1 {
		t.Fatalf("first process: COMPLETED = %v, want 1", got)
	}

	// The restarted process watches from now and sees the same runs.
	clk.Advance(10 * time.Second)
	second := newTestCollector(t, clk, nil, 0)
	second.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	for range 2 {
		mfs = gather(t, context.Background(), second)
		for _, st := range feishu.FinalStatuses() {
			if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": string(st)}); got != 0 {
				t.Errorf("after restart %s = %v, want 0", st, got)
			}
		}
		clk.Advance(10 * time.Second)
	}
}

func TestShortDeadlineOfOneScrapeDoesNotDecideWhatOthersSee(t *testing.T) {
	clk, lister, c := inFlightS1(t, 5*time.Second)
	gather(t, context.Background(), c) // the baseline

	// A scrape with a deadline too short for the poll: down in its answer.
	clk.Advance(10 * time.Second)
	lister.mu.Lock()
	lister.blocks["s1"] = true
	lister.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	mfs := gather(t, ctx, c)
	if got, _ := value(mfs, "aily_session_up", sess("a", "s1")); got != 0 {
		t.Errorf("the scrape whose deadline cut the poll shows aily_session_up %v, want 0", got)
	}

	// The next scrape is not served that failure: the session is still due
	// and polled, not backed off as if it had failed.
	clk.Advance(time.Second)
	lister.mu.Lock()
	lister.blocks["s1"] = false
	lister.mu.Unlock()
	mfs = gather(t, context.Background(), c)
	if got, _ := value(mfs, "aily_session_up", sess("a", "s1")); got != 1 {
		t.Errorf("the next scrape shows aily_session_up %v, want 1", got)
	}
	if got, _ := value(mfs, "aily_sessions", map[string]string{"app": "a", "state": "failing"}); got != 0 {
		t.Errorf("aily_sessions{state=\"failing\"} = %v after a cut-off poll, want 0", got)
	}
}

func TestLabelsTheAPICanBlowUpAreBounded(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	gather(t, context.Background(), c) // the baseline
	var batch []feishu.Run
	for i := range 1000 {
		batch = append(batch, runs.New(fmt.Sprintf("r%04d", i), feishu.RunStatus(fmt.Sprintf("STATUS_%04d", i)), 1, 2, runs.None))
	}
	long := runs.New("long", feishu.RunStatus(strings.Repeat("X", 10000)), 1, 2, runs.None)
	f := runs.New("f", failed, 1, 2, 3)
	f.Error = &feishu.RunError{Code: strings.Repeat("e", 10000)}
	lister.set("s1", append(batch, long, f)...)
	clk.Advance(10 * time.Second)
	mfs := gather(t, context.Background(), c)

	statuses := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if len(lp.GetValue()) > 128 {
					t.Errorf("%s has a label %s of %d bytes, want at most 128", mf.GetName(), lp.GetName(), len(lp.GetValue()))
				}
			}
		}
		if mf.GetName() == "aily_runs" {
			statuses = len(mf.GetMetric())
		}
	}
	// The 7 documented statuses, at most 8 others, and "other" for the rest.
	if statuses > 7+8+1 {
		t.Errorf("aily_runs has %d series for one session, want at most 16", statuses)
	}
	if got, _ := value(mfs, "aily_runs", map[string]string{"app": "a", "session_id": "s1", "status": "other"}); got < 1000-8 {
		t.Errorf(`aily_runs{status="other"} = %v, want the batch of every status beyond the first 8 others`, got)
	}
}

func TestMalformedRunIsLoggedOnce(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	logs := &testkit.LogBuffer{}
	c := newTestCollector(t, clk, logs, 0)
	c.SetApps([]watch.App{{Name: "a", API: newMemLister(), PerSession: true, Sessions: []string{"s1"}}})
	obs := c.APIObserver("a")
	for range 3 {
		obs.ObserveMalformedRun("s1", "r1", errors.New("ended_at: timestamp out of range"))
	}
	obs.ObserveMalformedRun("s1", "r2", errors.New("ended_at: timestamp out of range"))
	if n := strings.Count(logs.String(), "run with a malformed field"); n != 2 {
		t.Errorf("%d log lines for two malformed runs listed five times, want 2:\n%s", n, logs.String())
	}
}

// The staleness histogram of an app is first served empty, its first
// observations from the next scrape on: increase() sees every one.
func TestStalenessHistogramIsFirstServedEmpty(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r", completed, -30, -20, -10))
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{{Name: "helpdesk", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	count := func() (uint64, bool) {
		for _, mf := range gather(t, context.Background(), c) {
			if mf.GetName() == "aily_session_staleness_seconds" {
				return mf.GetMetric()[0].GetHistogram().GetSampleCount(), true
			}
		}
		return 0, false
	}
	if n, ok := count(); !ok || n != 0 {
		t.Fatalf("first scrape: staleness histogram present %v with %d observations, want present and empty", ok, n)
	}
	clk.Advance(10 * time.Second)
	if n, _ := count(); n != 1 {
		t.Errorf("second scrape: %d observations, want the first scrape's 1", n)
	}
}
