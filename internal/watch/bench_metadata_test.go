package watch

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// benchMetadataBatch is how many runs each iteration of
// BenchmarkMetadataLabels creates and finishes.
const benchMetadataBatch = 500

// BenchmarkMetadataLabels measures what metadata labels cost per run
// counted: each iteration lists a batch of 500 new runs of a session (an
// in-memory API, incremental listing newest first) that were created,
// started and finished since the last poll, counts them (three events a
// run, each of which reads the run's metadata) and releases what is ready,
// with no metadata labels and with three (skill, channel and tenant out of
// a metadata of four keys; 20 skills, 3 channels, 60 tenants of which 50
// are admitted, 60 sets of values in all). It reports the process's CPU
// time per run (cpu-ns/run, getrusage, GC included), the bytes allocated
// per run (B/run), the CPU time of serving the counts to a scrape after
// each batch (serve-cpu-ns/scrape: a copy of them), and the heap the
// watcher holds at the end (retained-B: the counts of every set of values,
// with their five histograms).
func BenchmarkMetadataLabels(b *testing.B) {
	for _, keys := range [][]string{nil, {"skill", "channel", "tenant"}} {
		b.Run(fmt.Sprintf("keys=%d", len(keys)), func(b *testing.B) { benchMetadataLabels(b, keys) })
	}
}

func benchMetadataLabels(b *testing.B, keys []string) {
	channels := []string{"im", "web", "api"}
	api := newMemAPI(newestFirst, 100)
	now := testkit.T0
	clock := func() time.Time { return now }
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	w := New(Options{MinInterval: -1, IdleInterval: time.Nanosecond, FullInterval: 100 * 365 * 24 * time.Hour,
		Concurrency: 1, Timeout: time.Minute, Now: clock})
	w.SetApps([]App{{Name: "a", API: api, Sessions: []string{"s"}, PerSession: true, MetadataLabels: keys}})
	w.Poll(context.Background())
	var prev []string
	n := 0
	batch := func() {
		api.remove("s", prev...)
		prev = prev[:0]
		for range benchMetadataBatch {
			n++
			created := now.Add(time.Duration(n%1000) * time.Microsecond)
			r := feishu.Run{ID: fmt.Sprintf("run_%09d", n), SessionID: "s", Status: feishu.StatusCompleted,
				CreatedAt: created, StartedAt: created.Add(time.Second), EndedAt: created.Add(3 * time.Second),
				Metadata: fmt.Sprintf(`{"skill":"skill_%02d","channel":"%s","tenant":"t_%02d","trace_id":"%016x"}`,
					n%20, channels[n%3], n%60, n)}
			api.put(r)
			prev = append(prev, r.ID)
		}
		now = now.Add(10 * time.Second)
	}
	var cpu, serve time.Duration
	var alloc uint64
	scrape := uint64(0)
	for b.Loop() {
		batch()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c0 := testkit.CPUTime()
		w.Poll(context.Background())
		w.Release(now)
		cpu += testkit.CPUTime() - c0
		runtime.ReadMemStats(&after)
		alloc += after.TotalAlloc - before.TotalAlloc
		// The scrape that serves them, timed apart: its cost is per set
		// of values, not per run.
		scrape++
		c0 = testkit.CPUTime()
		w.ServeSnapshots(&Scrape{N: scrape, Now: now}, func(*Snapshot) {})
		serve += testkit.CPUTime() - c0
	}
	runs := float64(b.N * benchMetadataBatch)
	b.ReportMetric(float64(cpu.Nanoseconds())/runs, "cpu-ns/run")
	b.ReportMetric(float64(alloc)/runs, "B/run")
	b.ReportMetric(float64(serve.Nanoseconds())/float64(b.N), "serve-cpu-ns/scrape")
	api.remove("s", prev...)
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.HeapAlloc)-float64(m0.HeapAlloc), "retained-B")
	// Counts new to a scrape are served at zero first (hold.go): a short
	// run (-benchtime 1x) has not served enough scrapes to show them yet.
	for range 3 {
		scrape++
		now = now.Add(10 * time.Second)
		w.ServeSnapshots(&Scrape{N: scrape, Now: now}, func(*Snapshot) {})
		w.Release(now)
	}
	var sets int
	w.ServeSnapshots(&Scrape{N: scrape + 1, Now: now}, func(s *Snapshot) {
		sets = len(s.Counts.Labelled)
		if s.Counts.Created+sumCreated(s.Counts.Labelled) == 0 {
			b.Fatal("nothing counted")
		}
	})
	b.ReportMetric(float64(sets), "value-sets")
	runtime.KeepAlive(w)
}

func sumCreated(l []LabelledCountsView) float64 {
	n := 0.0
	for i := range l {
		n += l[i].Created
	}
	return n
}
