package collector

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// deadlineLister is a memLister that notes the deadline of every listing.
type deadlineLister struct {
	*memLister
	mu        sync.Mutex
	deadlines []time.Time
}

func (l *deadlineLister) ListRunsPage(ctx context.Context, session, cursor string) (feishu.RunsPage, error) {
	d, _ := ctx.Deadline()
	l.mu.Lock()
	l.deadlines = append(l.deadlines, d)
	l.mu.Unlock()
	return l.memLister.ListRunsPage(ctx, session, cursor)
}

// takeDeadlines returns the deadlines noted since the last call.
func (l *deadlineLister) takeDeadlines() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.deadlines
	l.deadlines = nil
	return d
}

// answerClock is a clock moved by hand, for timing answers and saves.
type answerClock struct{ ns atomic.Int64 }

func (c *answerClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *answerClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// newAnswerCollector returns a collector of one app with sessions sessions,
// each with one finished run, every session due at every scrape, answers
// assumed to take secondsPerSeries until measured, and its lister.
func newAnswerCollector(t testing.TB, sessions int, secondsPerSeries float64, saver watch.Saver, logs *testkit.LogBuffer) (*Collector, *deadlineLister) {
	t.Helper()
	l := &deadlineLister{memLister: newMemLister()}
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprintf("session_%06d", i)
		l.set(ids[i], runs.New("r"+ids[i], feishu.StatusCompleted, 0, 1, 2))
	}
	var logger log.Logger = log.NewNopLogger()
	if logs != nil {
		logger = log.NewLogfmtLogger(logs)
	}
	c := New(watch.New(watch.Options{
		Concurrency: 4, MinInterval: -1, IdleInterval: time.Nanosecond,
		Now:    func() time.Time { return testkit.T0.Add(time.Hour) },
		Logger: logger,
		Saver:  saver,
	}), Options{
		Logger:           logger,
		SecondsPerSeries: secondsPerSeries,
	})
	c.SetApps([]watch.App{{Name: "big", API: l, Sessions: ids, PerSession: true}})
	return c, l
}

// scrapeRegistry is the registry /metrics makes for one scrape bounded by
// ctx, and the collector's Scrape registered in it.
func scrapeRegistry(ctx context.Context, c *Collector) (*Scrape, *prometheus.Registry) {
	sc := c.ForScrape(ctx)
	reg := prometheus.NewRegistry()
	reg.MustRegister(sc)
	return sc, reg
}

// scrapeWithDeadline gathers one scrape bounded by deadline, as /metrics
// does, and returns its Scrape, what it served and how many series.
func scrapeWithDeadline(t testing.TB, c *Collector, deadline time.Time) (*Scrape, []*dto.MetricFamily, int) {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	sc, reg := scrapeRegistry(ctx, c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return sc, mfs, n
}

// checkCost fails the test unless cost has the series given, and the
// seconds a series and the reserve given (to a nanosecond).
func checkCost(t *testing.T, what string, cost AnswerCost, series int, perSeries float64, reserve time.Duration) {
	t.Helper()
	if cost.Series != series || math.Abs(cost.SecondsPerSeries-perSeries) > 1e-12 || (cost.Reserve-reserve).Abs() > time.Nanosecond {
		t.Errorf("%s: %+v, want %d series, %g s a series, reserve %v", what, cost, series, perSeries, reserve)
	}
}

// The tests below have 16 sessions of an app with per_session: true:
// expected to answer 30 + 16×25 = 430 series before an answer is measured,
// and to read 16 sessions, as long as 1 series more: 431 series' time.

func TestPollsGetTheDeadlineLessTheTimeReservedForAnswering(t *testing.T) {
	// 1 ms a series, as if answering were slow.
	c, l := newAnswerCollector(t, 16, 1e-3, nil, nil)
	reserve := c.AnswerCost().Reserve
	checkCost(t, "before any answer", c.AnswerCost(), 430, 1e-3, 431*time.Millisecond)
	deadline := time.Now().Add(time.Hour)
	scrapeWithDeadline(t, c, deadline)
	got := l.takeDeadlines()
	if len(got) != 16 {
		t.Fatalf("%d listings, want one for each of the 16 sessions", len(got))
	}
	for _, d := range got {
		if want := deadline.Add(-reserve); !d.Equal(want) {
			t.Errorf("a poll's deadline is %v, want the scrape's less %v: %v", d, reserve, want)
		}
	}
}

func TestNoPollsWhenAnsweringTakesTheWholeDeadline(t *testing.T) {
	logs := &testkit.LogBuffer{}
	clock := &answerClock{}
	// 1 s a series: 431 s to answer, more than the minute of the deadline.
	c, l := newAnswerCollector(t, 16, 1, nil, logs)
	c.cost.now = clock.Now
	checkCost(t, "before any answer", c.AnswerCost(), 430, 1, 431*time.Second)
	warned := regexp.MustCompile(`level=warn msg="No time left for polling[^"]*" deadline=\S+ reserved_for_answering=7m11s series=430`)
	for i := range 3 {
		sc, mfs, _ := scrapeWithDeadline(t, c, time.Now().Add(time.Minute))
		if d := l.takeDeadlines(); len(d) != 0 {
			t.Fatalf("scrape %d: %d polls, want none: answering takes the whole deadline", i+1, len(d))
		}
		// Served from the last state: pending, none down.
		if v, _ := value(mfs, "aily_sessions", map[string]string{"app": "big", "state": "pending"}); v != 16 {
			t.Errorf("aily_sessions{state=pending} = %v, want 16", v)
		}
		if n := seriesWith(mfs, "session_id", "session_000015"); n == 0 {
			t.Errorf("the sessions' series are not served")
		}
		// The first scrape's reserve is a guess: no warning until an
		// answer has measured it, then one.
		want := min(i, 1)
		if n := len(warned.FindAllString(logs.String(), -1)); n != want {
			t.Errorf("after scrape %d: %d warnings that the polls got no time, want %d:\n%s", i+1, n, want, logs.String())
		}
		clock.Advance(431 * time.Second)
		sc.Answered(430)
	}

	// A deadline beyond the reserve: polling again, and told.
	scrapeWithDeadline(t, c, time.Now().Add(time.Hour))
	if d := l.takeDeadlines(); len(d) != 16 {
		t.Errorf("%d polls with a deadline beyond the reserve, want 16", len(d))
	}
	if !regexp.MustCompile(`level=info msg="Polling again`).MatchString(logs.String()) {
		t.Errorf("polling again is not logged:\n%s", logs.String())
	}
}

func TestTheReserveIsMeasuredFromTheAnswersBefore(t *testing.T) {
	clock := &answerClock{}
	c, l := newAnswerCollector(t, 16, 1e-3, nil, nil)
	c.cost.now = clock.Now

	// The first answer: 399 series (and 16 sessions, as long as one more)
	// in 2 s, 5 ms each, above the assumed 1 ms: taken at once.
	sc, _, _ := scrapeWithDeadline(t, c, time.Now().Add(time.Hour))
	clock.Advance(2 * time.Second)
	sc.Answered(399)
	checkCost(t, "after 399 series in 2 s", c.AnswerCost(), 399, 5e-3, 2*time.Second)
	l.takeDeadlines()
	deadline := time.Now().Add(time.Hour)
	sc, _, _ = scrapeWithDeadline(t, c, deadline)
	for _, d := range l.takeDeadlines() {
		if want := deadline.Add(-2 * time.Second); !d.Equal(want) {
			t.Errorf("a poll's deadline is %v, want the scrape's less the 2 s measured: %v", d, want)
		}
	}

	// A faster answer (2.5 ms a series): the estimate comes down halfway.
	clock.Advance(time.Second)
	sc.Answered(399)
	checkCost(t, "then 399 series in 1 s", c.AnswerCost(), 399, 3.75e-3, 1500*time.Millisecond)

	// An answer of a Scrape that never collected says nothing.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.ForScrape(ctx).Answered(1)
	checkCost(t, "after an answer never collected", c.AnswerCost(), 399, 3.75e-3, 1500*time.Millisecond)

	// A new configuration: series guessed again until an answer, 30 + 25
	// and 1/16 for the session.
	c.SetApps([]watch.App{{Name: "big", API: l, Sessions: []string{"session_000000"}, PerSession: true}})
	checkCost(t, "after a reload to one session", c.AnswerCost(), 55, 3.75e-3,
		time.Duration(55.0625*3.75e-3*float64(time.Second)))
}

// slowSaver is a Saver whose saves take took by the clock.
type slowSaver struct {
	clock *answerClock
	took  time.Duration
	saves atomic.Int32
}

func (s *slowSaver) Save(*watch.State) error {
	s.clock.Advance(s.took)
	s.saves.Add(1)
	return nil
}

func TestTheReserveHoldsTheSaveOfTheState(t *testing.T) {
	clock := &answerClock{}
	saver := &slowSaver{clock: clock, took: 3 * time.Second}
	c, _ := newAnswerCollector(t, 16, 1e-3, saver, nil)
	c.cost.now = clock.Now
	// Before a save: defaultSaveSecondsPerSession for each of 16 sessions.
	checkCost(t, "before a save", c.AnswerCost(), 430, 1e-3,
		431*time.Millisecond+time.Duration(16*defaultSaveSecondsPerSession*float64(time.Second)))
	sc, _, _ := scrapeWithDeadline(t, c, time.Now().Add(time.Hour))
	if saver.saves.Load() != 1 {
		t.Fatalf("%d saves, want 1", saver.saves.Load())
	}
	// The save's 3 s are not part of the answer's time: 399 series in
	// 100 ms, 0.25 ms each, bring the estimate halfway down to 0.625 ms.
	clock.Advance(100 * time.Millisecond)
	sc.Answered(399)
	checkCost(t, "after a save of 3 s and 399 series in 100 ms", c.AnswerCost(), 399, 6.25e-4, 3250*time.Millisecond)
}

func TestRateFollowsARiseAtOnceAndAFallHalfway(t *testing.T) {
	for _, tc := range []struct {
		name  string
		from  float64
		units float64
		took  time.Duration
		want  float64
	}{
		{"slower: taken at once", 1e-6, 1000, 10 * time.Millisecond, 1e-5},
		{"faster: halfway", 1e-5, 1000, 0, 5e-6},
		{"the same", 1e-5, 1000, 10 * time.Millisecond, 1e-5},
		{"no units: ignored", 1e-5, 0, time.Second, 1e-5},
		{"a negative time: ignored", 1e-5, 1000, -time.Second, 1e-5},
	} {
		r := rate{perUnit: tc.from}
		r.observe(tc.units, tc.took)
		if r.perUnit != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, r.perUnit, tc.want)
		}
	}
}

// discardWriter is an http.ResponseWriter that counts what it is sent.
type discardWriter struct {
	header http.Header
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// prometheusRequest is a scrape as Prometheus sends it: OpenMetrics
// preferred, gzip.
func prometheusRequest() *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	req.Header.Set("Accept-Encoding", "gzip")
	return req
}

// answer serves one scrape bounded by deadline as /metrics does, through
// promhttp, and tells the collector the answer was sent. It returns the
// series answered.
func answer(t testing.TB, c *Collector, deadline time.Time) int {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	sc, reg := scrapeRegistry(ctx, c)
	series := 0
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := reg.Gather()
		for _, mf := range mfs {
			series += len(mf.GetMetric())
		}
		return mfs, err
	})
	w := &discardWriter{header: http.Header{}}
	promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true}).ServeHTTP(w, prometheusRequest())
	if w.n == 0 {
		t.Fatal("nothing answered")
	}
	sc.Answered(series)
	return series
}

// TestManySessionsAnswerWithinTheDeadline checks, with many sessions and
// answers timed by the real clock, that what a scrape reserves for
// answering is what the answers before took, and that the polls get the
// rest of the deadline, or nothing when the deadline is shorter than that.
// No assertion depends on how fast the machine is.
func TestManySessionsAnswerWithinTheDeadline(t *testing.T) {
	sessions := 500 // 12,500 series: some 0.1 s to answer, a few seconds under -race
	if testing.Short() {
		sessions = 100
	}
	c, l := newAnswerCollector(t, sessions, DefaultSecondsPerSeries, nil, nil)

	series := answer(t, c, time.Now().Add(time.Hour)) // the baseline of every session
	if d := l.takeDeadlines(); len(d) != sessions {
		t.Fatalf("%d sessions polled, want %d", len(d), sessions)
	}
	cost := c.AnswerCost()
	if cost.Series != series || cost.Reserve <= 0 {
		t.Fatalf("after an answer of %d series: %+v, want those series and a reserve above 0", series, cost)
	}
	t.Logf("%d sessions: %d series answered in about %v (%.2f µs a series)", sessions, series, cost.Reserve,
		cost.SecondsPerSeries*1e6)

	// A deadline shorter than the measured reserve: no polls, and every
	// session is served from its last state, up.
	_, mfs, _ := scrapeWithDeadline(t, c, time.Now().Add(cost.Reserve/2))
	if d := l.takeDeadlines(); len(d) != 0 {
		t.Errorf("%d sessions polled within a deadline half the time answering takes, want none", len(d))
	}
	if v, _ := value(mfs, "aily_sessions", map[string]string{"app": "big", "state": "idle"}); int(v) != sessions {
		t.Errorf("aily_sessions{state=idle} = %v, want all %d sessions served from their last state", v, sessions)
	}
	if n := seriesWith(mfs, "session_id", fmt.Sprintf("session_%06d", sessions-1)); n == 0 {
		t.Error("the last session's series are not served")
	}

	// A longer deadline: the polls get it less the reserve.
	reserve := c.AnswerCost().Reserve
	deadline := time.Now().Add(time.Hour)
	answer(t, c, deadline)
	got := l.takeDeadlines()
	if len(got) != sessions {
		t.Fatalf("%d sessions polled, want %d", len(got), sessions)
	}
	for _, d := range got {
		if want := deadline.Add(-reserve); !d.Equal(want) {
			t.Fatalf("a poll's deadline is %v, want the scrape's less the %v measured: %v", d, reserve, want)
		}
	}
}

func TestNoSessionSeriesForAClientThatWentAway(t *testing.T) {
	c, _ := newAnswerCollector(t, 16, DefaultSecondsPerSeries, nil, nil)
	scrapeWithDeadline(t, c, time.Now().Add(time.Hour)) // the baselines

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client went away
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.ForScrape(ctx))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := seriesWith(mfs, "app", "big"); n == 0 {
		t.Error("no series of the app at all")
	}
	for i := range 16 {
		if n := seriesWith(mfs, "session_id", fmt.Sprintf("session_%06d", i)); n != 0 {
			t.Errorf("session_%06d: %d series made for a client that went away, want none", i, n)
		}
	}
}
