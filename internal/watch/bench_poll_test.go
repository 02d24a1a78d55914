package watch_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// benchPageSize is the exporter's default page size (--feishu.page-size).
const benchPageSize = 50

// BenchmarkPollRequests measures what one poll of a session costs against
// its history, over real HTTP (loopback) to the fake, in both listing
// orders: the requests it makes, counted at the fake (list_runs + get_run),
// and its wall time (HTTP round trips and the fake's page encoding
// included; the fake's sorting after a change, and collecting its garbage,
// are not). After the baseline
// (outside the timer), each iteration changes the session and polls once
// (the session is due at every iteration):
//   - new: one new run, already final;
//   - new+finish: one new run in progress, and the one added by the
//     iteration before finishes;
//   - deep: as new+finish, and one run stays in flight in the middle of
//     the history (refreshed with get run rather than paged to).
//
// Run it with -benchtime=200x: each iteration also re-sorts the fake's
// session outside the timer, which for 100,000 runs costs more than the poll.
func BenchmarkPollRequests(b *testing.B) {
	for _, order := range []feishufake.Order{feishufake.NewestFirst, feishufake.OldestFirst} {
		for _, n := range []int{100, 1_000, 10_000, 100_000} {
			for _, mode := range []string{"new", "new+finish", "deep"} {
				b.Run(fmt.Sprintf("order=%s/history=%d/%s", order, n, mode), func(b *testing.B) {
					benchPollRequests(b, order, n, mode)
				})
			}
		}
	}
}

func benchPollRequests(b *testing.B, order feishufake.Order, n int, mode string) {
	const session = "sess_bench"
	fake := newBenchFake(order)
	inflightEvery := 0
	if mode == "deep" {
		inflightEvery = n // one run in flight, in the middle
	}
	benchHistory(fake, session, n, inflightEvery)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	client, _ := newBenchClient(b, srv.URL, benchPageSize, 1)

	clock := newBenchClock(benchStart)
	rec := &benchRecorder{}
	w := watch.NewRecorded(watch.Options{
		// Every session is due at every iteration (2 s apart), idle or not:
		// the figures are those of one poll, not of the polling policy.
		MinInterval: time.Second, IdleInterval: time.Second, FullInterval: benchNoFull, RateLimit: 0,
		Concurrency: 1, Timeout: 5 * time.Minute, Now: clock.Now,
	}, rec)
	w.SetApps([]watch.App{{Name: "bench", API: client, Sessions: []string{session}}})
	baselineAll(b, w, clock)
	if got := rec.finished.Load() + rec.created.Load(); got != 0 {
		b.Fatalf("the baseline counted %d events of history", got)
	}

	var prev feishu.Run
	requests, finishes, maxReq := 0, 0, 0
	ctx := context.Background()
	i := 0
	for b.Loop() {
		b.StopTimer()
		clock.Advance(2 * time.Second)
		now := clock.Now()
		st := feishu.StatusCompleted
		if mode != "new" {
			st = feishu.StatusInProgress
		}
		r := fakeapi.Run(session, fmt.Sprintf("new_%07d", i), now.Add(-time.Second), st)
		r.StartedAt = now.Add(-900 * time.Millisecond)
		if st.Final() {
			r.EndedAt = now.Add(-500 * time.Millisecond)
			finishes++
		}
		fake.PutRun(r)
		if prev.ID != "" {
			prev.Status, prev.EndedAt = feishu.StatusCompleted, now.Add(-500*time.Millisecond)
			fake.PutRun(prev)
			finishes++
			prev = feishu.Run{}
		}
		if !st.Final() {
			prev = r
		}
		warmSort(b, fake, session)
		// Collect the garbage of the fake's sorting now, not in the poll.
		runtime.GC()
		before := fakeRequests(fake)
		b.StartTimer()

		w.Poll(ctx)

		b.StopTimer()
		got := fakeRequests(fake) - before
		requests += got
		maxReq = max(maxReq, got)
		if got == 0 {
			b.Fatalf("iteration %d: the session was not polled", i)
		}
		i++
		b.StartTimer()
	}
	b.ReportMetric(float64(requests)/float64(b.N), "requests/poll")
	b.ReportMetric(float64(maxReq), "max-requests/poll")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/poll")
	b.ReportMetric(0, "ns/op")

	// Exact counting: every run finished after the watch began is counted
	// once, nothing of the history is.
	if got := rec.finished.Load(); got != int64(finishes) {
		b.Fatalf("counted %d runs finished, want %d", got, finishes)
	}
	if got := rec.created.Load(); got != int64(b.N) {
		b.Fatalf("counted %d runs created, want %d", got, b.N)
	}
	var snap watch.Snapshot
	w.EachSnapshot(func(s *watch.Snapshot) { snap = *s })
	if !snap.Up {
		b.Fatalf("session down: %v", snap.Err)
	}
}
