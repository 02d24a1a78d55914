package collector

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// BenchmarkAnswer measures what a scrape takes to answer after its polls,
// which DefaultSecondsPerSeries and sessionsPerSeries are taken from: an
// app with per_session: true of 1,000, 10,000 and 100,000 sessions, and one
// with per_session: false of 100,000. Each session has had a baseline and
// then one run counted (one in ten FAILED, with one of 5 codes), so that it
// has its counters, histograms and gauges. Each iteration is a scrape in
// which no session is due, answered as /metrics does: the collector through
// a registry, promhttp encoding OpenMetrics with gzip (as Prometheus asks)
// into a writer that discards it. ns/series is the time per series
// answered, ns/session per session configured, B/series and B/session what
// they allocate.
func BenchmarkAnswer(b *testing.B) {
	for _, tc := range []struct {
		perSession bool
		sessions   int
	}{{true, 1_000}, {true, 10_000}, {true, 100_000}, {false, 100_000}} {
		b.Run(fmt.Sprintf("per_session=%t/sessions=%d", tc.perSession, tc.sessions), func(b *testing.B) {
			benchAnswer(b, tc.perSession, tc.sessions)
		})
	}
}

func benchAnswer(b *testing.B, perSession bool, sessions int) {
	l := newMemLister()
	ids := make([]string, sessions)
	for i := range ids {
		ids[i] = fmt.Sprintf("session_%06d", i)
		l.set(ids[i], runs.New("r0_"+ids[i], feishu.StatusCompleted, 0, 1, 2))
	}
	clock := feishufake.NewClock(testkit.T0.Add(time.Hour))
	c := New(watch.New(watch.Options{
		Concurrency: 4, MinInterval: time.Hour, IdleInterval: time.Hour, FullInterval: scaleNoFull,
		Timeout: time.Hour, Now: clock.Now,
	}), Options{})
	c.SetApps([]watch.App{{Name: "bench", API: l, Sessions: ids, PerSession: perSession}})
	answer(b, c, time.Now().Add(time.Hour)) // the baselines

	// One run more in every session, counted at the next poll.
	for i, id := range ids {
		r := runs.New("r1_"+id, feishu.StatusCompleted, 3600, 3601, 3630)
		if i%10 == 0 {
			r.Status = feishu.StatusFailed
			r.Error = &feishu.RunError{Code: fmt.Sprintf("sp_ec_%d", i%5)}
		}
		l.set(id, runs.New("r0_"+id, feishu.StatusCompleted, 0, 1, 2), r)
	}
	clock.Advance(2 * time.Hour)
	answer(b, c, time.Now().Add(time.Hour))
	calls := 0
	for _, id := range ids {
		calls += l.callsOf(id)
	}

	series := 0
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		series = answer(b, c, time.Now().Add(time.Hour))
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	for _, id := range ids {
		calls -= l.callsOf(id)
	}
	if calls != 0 {
		b.Fatalf("%d polls during the timed scrapes, want none", -calls)
	}
	n := float64(b.N)
	ns, alloc := float64(b.Elapsed().Nanoseconds())/n, float64(after.TotalAlloc-before.TotalAlloc)/n
	b.ReportMetric(float64(series), "series")
	if perSession {
		b.ReportMetric(ns/float64(series), "ns/series")
		b.ReportMetric(alloc/float64(series), "B/series")
	} else {
		b.ReportMetric(ns/float64(sessions), "ns/session")
		b.ReportMetric(alloc/float64(sessions), "B/session")
	}
}
