package collector

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
	"github.com/aily-exporter/aily_exporter/internal/testkit/watchkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// Helpers of the scale benchmarks, over real HTTP (loopback) to feishufake.
// Their names start with scale so that they cannot clash with the other
// tests of the package.

const (
	scaleAppID     = "cli_scale"
	scaleAppSecret = "scale_secret"
	// scaleNoFull puts the safety-net full listing out of reach.
	scaleNoFull = 100 * 365 * 24 * time.Hour
)

// scaleEnv is a fake serving over HTTP, and an HTTP transport whose
// connections can be closed so that their buffers stay out of heap figures.
type scaleEnv struct {
	fake     *feishufake.Fake
	srv      *httptest.Server
	sessions []string // the fake's own copies of the IDs
}

func newScaleEnv(order feishufake.Order) *scaleEnv {
	f := feishufake.New(feishufake.Options{})
	f.AddApp(scaleAppID, scaleAppSecret)
	f.SetOrder(order)
	return &scaleEnv{fake: f}
}

func (e *scaleEnv) serve() { e.srv = httptest.NewServer(e.fake) }

func (e *scaleEnv) close() { e.srv.Close() }

// warm makes the fake sort every session's runs now (it sorts lazily, on
// the first page asked after a change), so that the fake's memory is the
// same in every heap measurement.
func (e *scaleEnv) warm() {
	for _, id := range e.sessions {
		_ = e.fake.Runs(id)
	}
}

// client returns a client of the app, without a rate limit, and its
// transport.
func (e *scaleEnv) client(b *testing.B, conc int, obs feishu.Observer) (*feishu.Client, *http.Transport) {
	b.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc
	tr.MaxIdleConns = max(tr.MaxIdleConns, conc)
	c, err := feishu.NewClient(feishu.Config{
		BaseURL: e.srv.URL, AppID: scaleAppID, AppSecret: scaleAppSecret, PageSize: 50,
		RateLimit: 0, MaxConcurrency: conc, Observer: obs,
		HTTPClient: &http.Client{Timeout: time.Minute, Transport: tr},
	})
	if err != nil {
		b.Fatal(err)
	}
	return c, tr
}

// watch returns a collector of the app "scale" watching ids on the fake,
// and its client and transport: o's polling, on clock, without a rate limit
// or the safety-net full listing, each poll within 10 minutes.
func (e *scaleEnv) watch(b *testing.B, clock *feishufake.Clock, o watch.Options, ids []string, perSession bool) (*Collector, *feishu.Client, *http.Transport) {
	b.Helper()
	o.FullInterval, o.RateLimit, o.Timeout, o.Now = scaleNoFull, 0, 10*time.Minute, clock.Now
	c := New(watch.New(o), Options{})
	client, tr := e.client(b, o.Concurrency, c.APIObserver("scale"))
	c.SetApps([]watch.App{{Name: "scale", API: client, Sessions: ids, PerSession: perSession}})
	return c, client, tr
}

// scaleIDs are n session IDs, format applied to 0 to n-1.
func scaleIDs(format string, n int) []string {
	ids := make([]string, n)
	for s := range ids {
		ids[s] = fmt.Sprintf(format, s)
	}
	return ids
}

// closeConns closes the connections on both ends, so that their buffers
// are not counted in a heap measurement.
func (e *scaleEnv) closeConns(tr *http.Transport) {
	if tr != nil {
		tr.CloseIdleConnections()
	}
	e.srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond) // let the server's connection goroutines end
}

func (e *scaleEnv) requests() int {
	return e.fake.Requests(string(feishu.EndpointListRuns)) + e.fake.Requests(string(feishu.EndpointGetRun))
}

// scaleScrape serves one scrape as /metrics does: the collector registered
// per request with ForScrape(ctx), gathered by a registry. It returns the
// series gathered.
func scaleScrape(b *testing.B, c *Collector, timeout time.Duration) int {
	_, _, n := scrapeWithDeadline(b, c, time.Now().Add(timeout))
	return n
}

// scaleBaseline scrapes until every session has completed its baseline.
func scaleBaseline(b *testing.B, c *Collector, clock *feishufake.Clock) {
	b.Helper()
	for i := 0; ; i++ {
		if i > 100 {
			b.Fatal("the baseline does not complete")
		}
		scaleScrape(b, c, 10*time.Minute)
		pending, firstErr := watchkit.Pending(c.w)
		if pending == 0 {
			return
		}
		if firstErr != nil {
			b.Fatalf("baseline: %d sessions pending: %v", pending, firstErr)
		}
		clock.Advance(time.Minute)
	}
}

// BenchmarkHeapPerRunOfHistory measures the live heap the exporter keeps
// per run of history: 100,000 runs, in one session or in 100 sessions of
// 1,000, in both listing orders; one run in 10,000 is in flight, the rest
// final. The heap is measured (after a GC) once the fake is built and
// sorted, and again after the baseline, a few polls that each add a run and
// finish the one before in 10 sessions, and the timed steady-state scrapes;
// the difference, connections closed, is the collector's (watcher, trackers,
// client, series). The fake's own heap is reported apart (fake-B/run).
// Each timed iteration is one scrape polling every session (nothing new).
func BenchmarkHeapPerRunOfHistory(b *testing.B) {
	for _, order := range []feishufake.Order{feishufake.NewestFirst, feishufake.OldestFirst} {
		for _, shape := range []struct{ sessions, runs int }{{1, 100_000}, {100, 1_000}} {
			b.Run(fmt.Sprintf("order=%s/sessions=%d/runs=%d", order, shape.sessions, shape.runs), func(b *testing.B) {
				benchHeapPerRunOfHistory(b, order, shape.sessions, shape.runs)
			})
		}
	}
}

func benchHeapPerRunOfHistory(b *testing.B, order feishufake.Order, sessions, runs int) {
	total := sessions * runs
	base := testkit.LiveHeap()
	env := newScaleEnv(order)
	first := testkit.T0.Add(-time.Hour - time.Duration(runs)*time.Second)
	for s := range sessions {
		id := fmt.Sprintf("sess_%04d", s)
		env.sessions = append(env.sessions, id)
		for i := range runs {
			st := feishu.StatusCompleted
			switch g := s*runs + i; {
			case g%10_000 == 5_000:
				st = feishu.StatusInProgress
			case g%10 == 3:
				st = feishu.StatusFailed
			}
			env.fake.PutRun(fakeapi.Run(id, fmt.Sprintf("run_%04d_%07d", s, i), first.Add(time.Duration(i)*time.Second), st))
		}
	}
	env.serve()
	defer env.close()
	env.warm()
	env.closeConns(nil)
	before := testkit.LiveHeap()
	fakeHeap := before - base

	clock := feishufake.NewClock(testkit.T0)
	ids := scaleIDs("sess_%04d", sessions)
	// Every session is due at every scrape (2 s apart).
	c, client, tr := env.watch(b, clock, watch.Options{MinInterval: time.Second, IdleInterval: time.Second, Concurrency: 4},
		ids, true)
	scaleBaseline(b, c, clock)

	// A few polls with runs created and finished.
	var prev []feishu.Run
	for p := range 5 {
		clock.Advance(2 * time.Second)
		now := clock.Now()
		for _, r := range prev {
			r.Status, r.EndedAt = feishu.StatusCompleted, now.Add(-time.Second)
			env.fake.PutRun(r)
		}
		prev = prev[:0]
		for s := range min(sessions, 10) {
			r := fakeapi.Run(ids[s], fmt.Sprintf("new_%04d_%d", s, p), now.Add(-time.Second), feishu.StatusInProgress)
			env.fake.PutRun(r)
			prev = append(prev, r)
		}
		scaleScrape(b, c, time.Minute)
	}

	req0 := env.requests()
	for b.Loop() {
		clock.Advance(2 * time.Second)
		scaleScrape(b, c, 10*time.Second)
	}
	reqs := env.requests() - req0

	tracked := 0
	c.w.EachSnapshot(func(s *watch.Snapshot) {
		tracked += s.Tracked
		if !s.Up {
			b.Fatalf("session %s down: %v", s.ID, s.Err)
		}
	})
	env.warm()
	env.closeConns(tr)
	live := int64(testkit.LiveHeap()) - int64(before)
	runtime.KeepAlive(c)
	runtime.KeepAlive(client)

	b.ReportMetric(float64(live)/float64(total), "B/run-of-history")
	b.ReportMetric(float64(live)/float64(sessions), "B/session")
	b.ReportMetric(float64(fakeHeap)/float64(total), "fake-B/run")
	b.ReportMetric(float64(tracked), "tracked-runs")
	b.ReportMetric(float64(reqs)/float64(b.N), "requests/scrape")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/scrape")
	b.ReportMetric(0, "ns/op")
}

// idleSessions is how many sessions BenchmarkIdleSessions configures; one
// in activeEvery has a run in flight, the others 0 to 2 final runs.
const (
	idleSessions = 100_000
	activeEvery  = 1_000
)

// BenchmarkIdleSessions measures 100,000 configured sessions, nearly all
// idle (0 to 2 final runs each; one in 1,000 has a run in flight), with
// per_session false and true:
//   - B/session-at-start: live heap per session once configured, before
//     any poll; B/session: once every session is baselined (one scrape
//     without a budget: RateLimit 0, Concurrency 16, a 10-minute deadline,
//     taking baseline-s seconds); both without the fake's own heap;
//   - ns/scrape: one steady-state scrape, gathered through a registry with
//     ForScrape(ctx) and a 10 s deadline, when only the 100 sessions with a
//     run in flight are due (the idle interval is set to 1 h so that idle
//     sessions do not fall due during the benchmark); series/scrape and
//     requests/scrape with it.
func BenchmarkIdleSessions(b *testing.B) {
	base := testkit.LiveHeap()
	env := newScaleEnv(feishufake.OldestFirst)
	statuses := []feishu.RunStatus{feishu.StatusCompleted, feishu.StatusFailed}
	for s := range idleSessions {
		id := fmt.Sprintf("idle_%06d", s)
		env.sessions = append(env.sessions, id)
		env.fake.AddSession(id)
		for i := range s % 3 {
			created := testkit.T0.Add(-time.Hour - time.Duration(s)*time.Second - time.Duration(i)*time.Second)
			env.fake.PutRun(fakeapi.Run(id, fmt.Sprintf("run_%06d_%d", s, i), created, statuses[(s+i)%2]))
		}
		if s%activeEvery == 0 {
			env.fake.PutRun(fakeapi.Run(id, fmt.Sprintf("run_%06d_live", s), testkit.T0.Add(-time.Minute), feishu.StatusInProgress))
		}
	}
	env.serve()
	defer env.close()
	env.warm()
	env.closeConns(nil)
	fakeHeap := testkit.LiveHeap() - base
	b.Logf("fake: %.0f B/session", float64(fakeHeap)/idleSessions)

	for _, perSession := range []bool{false, true} {
		b.Run(fmt.Sprintf("per_session=%t", perSession), func(b *testing.B) {
			before := testkit.LiveHeap()
			clock := feishufake.NewClock(testkit.T0)
			c, client, tr := env.watch(b, clock, watch.Options{MinInterval: time.Second, IdleInterval: time.Hour, Concurrency: 16},
				scaleIDs("idle_%06d", idleSessions), perSession)
			atStart := int64(testkit.LiveHeap()) - int64(before)

			t := time.Now()
			scaleBaseline(b, c, clock)
			baseline := time.Since(t)
			env.closeConns(tr)
			live := int64(testkit.LiveHeap()) - int64(before)

			states := map[watch.SessionState]int{}
			c.w.EachSnapshot(func(s *watch.Snapshot) { states[s.State]++ })
			b.Logf("states after the baseline: %v", states)

			series, req0 := 0, env.requests()
			for b.Loop() {
				clock.Advance(1500 * time.Millisecond)
				series = scaleScrape(b, c, 10*time.Second)
			}
			reqs := env.requests() - req0
			runtime.KeepAlive(c)
			runtime.KeepAlive(client)

			b.ReportMetric(float64(atStart)/idleSessions, "B/session-at-start")
			b.ReportMetric(float64(live)/idleSessions, "B/session")
			b.ReportMetric(baseline.Seconds(), "baseline-s")
			b.ReportMetric(float64(series), "series/scrape")
			b.ReportMetric(float64(reqs)/float64(b.N), "requests/scrape")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/scrape")
			b.ReportMetric(0, "ns/op")
		})
	}
}
