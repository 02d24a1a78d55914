package watch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// benchListingRuns is the session BenchmarkBaselineHTTP lists in full.
const benchListingRuns = 10_000

// BenchmarkBaselineHTTP measures the cost per fetched run end to end: each
// iteration is the baseline (a full listing) of a session of 10,000 runs by
// a new Watcher, through feishu.Client over real HTTP (loopback), with
// pages of 50 (the default) and 100 runs. It reports the wall time per run
// (ns/run), the CPU time of the whole process per run (cpu-ns/run, from
// getrusage) and the bytes allocated per run (B/run):
//   - "fake" serves the pages from feishufake, which computes and encodes
//     each page in the same process;
//   - "static" serves the same pages as precomputed bodies, so cpu-ns/run is
//     the client and watcher side (HTTP on both ends included); the fake's
//     encoding is the difference between the two.
func BenchmarkBaselineHTTP(b *testing.B) {
	const session = "sess_listing"
	fake := newBenchFake(feishufake.NewestFirst)
	benchHistory(fake, session, benchListingRuns, 1000)
	for _, size := range []int{50, 100} {
		b.Run(fmt.Sprintf("page=%d/fake", size), func(b *testing.B) {
			benchBaseline(b, fake, session, size)
		})
		b.Run(fmt.Sprintf("page=%d/static", size), func(b *testing.B) {
			benchBaseline(b, fakeapi.CapturePages(b, fake, session, size), session, size)
		})
	}
}

func benchBaseline(b *testing.B, h http.Handler, session string, pageSize int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client, _ := newBenchClient(b, srv.URL, pageSize, 1)
	// The token, and a connection, before the timer.
	if _, err := client.ListRunsPage(context.Background(), session, ""); err != nil {
		b.Fatal(err)
	}
	clock := newBenchClock(benchStart)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := testkit.CPUTime()
	b.ResetTimer()
	for b.Loop() {
		w := watch.NewRecorded(watch.Options{MinInterval: 5 * time.Second,
			FullInterval: benchNoFull, Concurrency: 1, Timeout: time.Minute, Now: clock.Now,
		}, &benchRecorder{})
		w.SetApps([]watch.App{{Name: "bench", API: client, Sessions: []string{session}}})
		w.Poll(context.Background())
		var snap watch.Snapshot
		w.EachSnapshot(func(s *watch.Snapshot) { snap = *s })
		if snap.LastSuccess.IsZero() || snap.Tracked == 0 {
			b.Fatalf("baseline incomplete: %v", snap.Err)
		}
	}
	cpu := testkit.CPUTime() - cpu0
	runtime.ReadMemStats(&after)
	runs := float64(b.N) * benchListingRuns
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/runs, "ns/run")
	b.ReportMetric(float64(cpu.Nanoseconds())/runs, "cpu-ns/run")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/runs, "B/run")
}
