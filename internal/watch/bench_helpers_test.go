package watch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
	"github.com/aily-exporter/aily_exporter/internal/testkit/watchkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// Helpers of the benchmarks over real HTTP. Their names start with bench so
// that they cannot clash with the other external tests of the package.

const (
	benchAppID     = "cli_bench"
	benchAppSecret = "bench_secret"
	benchUserToken = "u-bench"
	// benchNoFull puts the safety-net full listing out of reach, so that
	// the figures are those of incremental polls.
	benchNoFull = 100 * 365 * 24 * time.Hour
)

// benchStart is when the benchmarks' watches begin; history is older.
var benchStart = testkit.T0

// benchClock is a fake clock for the watcher, moved by hand.
type benchClock struct{ ns atomic.Int64 }

func newBenchClock(t time.Time) *benchClock {
	c := &benchClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *benchClock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func (c *benchClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// benchRecorder counts what polls count, to check that the benchmarks
// measure exact counting (history never counted).
type benchRecorder struct{ finished, created atomic.Int64 }

func (r *benchRecorder) Record(_ *watch.Session, obs *watch.Observation) {
	r.finished.Add(int64(len(obs.Finished)))
	r.created.Add(int64(len(obs.Created)))
}

// benchHistory puts n runs into a session of the fake, one a second, ending
// an hour before the watch begins; every inflightEvery-th run (0: none) is
// still in progress.
func benchHistory(f *feishufake.Fake, session string, n, inflightEvery int) {
	first := benchStart.Add(-time.Hour - time.Duration(n)*time.Second)
	for i := range n {
		st := feishu.StatusCompleted
		switch {
		case inflightEvery > 0 && i%inflightEvery == inflightEvery/2:
			st = feishu.StatusInProgress
		case i%10 == 3:
			st = feishu.StatusFailed
		}
		f.PutRun(fakeapi.Run(session, fmt.Sprintf("run_%s_%07d", session, i), first.Add(time.Duration(i)*time.Second), st))
	}
}

// newBenchFake returns a fake knowing the bench app and user token.
func newBenchFake(order feishufake.Order) *feishufake.Fake {
	f := feishufake.New(feishufake.Options{})
	f.AddApp(benchAppID, benchAppSecret)
	f.AddUserToken(benchUserToken)
	f.SetOrder(order)
	return f
}

// newBenchClient returns a client of the bench app at url, without a rate
// limit, with an HTTP client whose idle connections the caller may close.
func newBenchClient(b *testing.B, url string, pageSize, conc int) (*feishu.Client, *http.Transport) {
	b.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc
	tr.MaxIdleConns = max(tr.MaxIdleConns, conc)
	c, err := feishu.NewClient(feishu.Config{
		BaseURL: url, AppID: benchAppID, AppSecret: benchAppSecret, PageSize: pageSize,
		RateLimit: 0, MaxConcurrency: conc, HTTPClient: &http.Client{Timeout: time.Minute, Transport: tr},
	})
	if err != nil {
		b.Fatal(err)
	}
	return c, tr
}

// warmSort makes the fake sort a session's runs now (it sorts lazily, on the
// first page asked after a change), so that a timed poll does not pay for
// the fake's sorting. It asks the handler directly: no request is counted
// at the HTTP server, but the fake counts one list_runs.
func warmSort(b *testing.B, f *feishufake.Fake, session string) {
	req := httptest.NewRequest(http.MethodGet, feishufake.ListRunsPath(session)+"?page_size=1", nil)
	req.Header.Set("Authorization", "Bearer "+benchUserToken)
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("warm %s: HTTP %d: %s", session, rec.Code, rec.Body)
	}
}

// fakeRequests returns the list_runs and get_run requests the fake counted.
func fakeRequests(f *feishufake.Fake) int {
	return f.Requests(string(feishu.EndpointListRuns)) + f.Requests(string(feishu.EndpointGetRun))
}

// baselineAll polls until every session of w has completed its baseline.
func baselineAll(b *testing.B, w *watch.Watcher, clock *benchClock) {
	b.Helper()
	for i := 0; ; i++ {
		if i > 100 {
			b.Fatal("baseline does not complete")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		w.Poll(ctx)
		cancel()
		pending, firstErr := watchkit.Pending(w)
		if pending == 0 {
			return
		}
		if firstErr != nil {
			b.Fatalf("baseline: %d sessions pending: %v", pending, firstErr)
		}
		clock.Advance(time.Minute)
	}
}
