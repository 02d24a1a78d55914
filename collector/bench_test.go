package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// staticLister serves fixed listings without copying, so that the benchmark
// measures the collector, not the source.
type staticLister map[string][]feishu.Run

func (l staticLister) ListRunsPage(_ context.Context, session, _ string) (feishu.RunsPage, error) {
	return feishu.RunsPage{Runs: l[session]}, nil
}

func (l staticLister) GetRun(_ context.Context, session, id string) (feishu.Run, error) {
	for _, r := range l[session] {
		if r.ID == id {
			return r, nil
		}
	}
	return feishu.Run{}, &feishu.APIError{Code: feishu.CodeParamInvalid}
}

func (l staticLister) PageSize() int { return benchRuns }

const (
	benchSessions = 100
	benchRuns     = 200
)

// benchCollector returns a collector over 100 sessions of 200 runs each
// (mostly finished, some failed with a handful of codes, some in flight),
// past its baseline, so every iteration is a steady-state scrape.
func benchCollector(b *testing.B) *Collector {
	b.Helper()
	lister := staticLister{}
	var sessions []string
	statuses := []feishu.RunStatus{
		feishu.StatusCompleted, feishu.StatusCompleted, feishu.StatusCompleted, feishu.StatusCompleted,
		feishu.StatusCompleted, feishu.StatusCompleted, feishu.StatusFailed, feishu.StatusInProgress,
		feishu.StatusQueued, feishu.StatusCancelled,
	}
	for s := range benchSessions {
		id := fmt.Sprintf("session_%03d", s)
		sessions = append(sessions, id)
		runs := make([]feishu.Run, benchRuns)
		for i := range runs {
			r := feishu.Run{
				ID: fmt.Sprintf("run_%03d_%03d", s, i), AppID: "spring_bench__c", SessionID: id,
				Status: statuses[i%len(statuses)], CreatedAt: testkit.T0.Add(time.Duration(i) * time.Second),
			}
			if r.Status != feishu.StatusQueued {
				r.StartedAt = r.CreatedAt.Add(time.Second)
			}
			if r.Status.Final() {
				r.EndedAt = r.StartedAt.Add(time.Duration(i%60) * time.Second)
			}
			if r.Status == feishu.StatusFailed {
				r.Error = &feishu.RunError{Code: fmt.Sprintf("sp_ec_%d", i%5)}
			}
			runs[i] = r
		}
		lister[id] = runs
	}
	c := New(watch.New(watch.Options{
		Concurrency: 4, MinInterval: -1, IdleInterval: time.Nanosecond,
		Now: func() time.Time { return testkit.T0.Add(time.Hour) },
	}), Options{})
	c.SetApps([]watch.App{{Name: "bench", API: lister, PerSession: true, Sessions: sessions}})
	drain(timed{c}) // the baseline
	return c
}

func drain(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 1024)
	done := make(chan int)
	go func() {
		n := 0
		for range ch {
			n++
		}
		done <- n
	}()
	c.Collect(ch)
	close(ch)
	return <-done
}

// BenchmarkCollect measures one scrape of 100 sessions × 200 runs: listing
// (in memory), feeding the trackers, and sending every metric ("collect"),
// and the same through a registry's Gather, as /metrics does ("gather").
// Divide ns/op and B/op by 20000 for the cost per run.
func BenchmarkCollect(b *testing.B) {
	b.Run("collect", func(b *testing.B) {
		c := benchCollector(b)
		b.ReportAllocs()
		for b.Loop() {
			drain(timed{c})
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(benchSessions*benchRuns), "ns/run")
	})
	b.Run("gather", func(b *testing.B) {
		c := benchCollector(b)
		reg := prometheus.NewRegistry()
		reg.MustRegister(timed{c})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(benchSessions*benchRuns), "ns/run")
	})
}
