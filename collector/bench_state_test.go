package collector

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/state"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// storeSaver saves through a state.Store, as main does.
type storeSaver struct{ s *state.Store }

func (s storeSaver) Save(st *watch.State) error { return s.s.Save(st, "bench") }

// BenchmarkSaveState measures one save of the state of 10,000 sessions with
// 1 and 10 runs in flight each (and some finished, counted with their durations),
// through the state file: encoding, writing, fsync and rename. It reports the
// file's size.
//
//	go test -run '^$' -bench BenchmarkSaveState -benchtime 10x ./collector/
func BenchmarkSaveState(b *testing.B) {
	for _, inFlight := range []int{1, 10} {
		b.Run(fmt.Sprintf("sessions=10000/in_flight=%d", inFlight), func(b *testing.B) { benchSaveState(b, inFlight) })
	}
}

func benchSaveState(b *testing.B, inFlight int) {
	const sessions = 10000
	lister := staticLister{}
	var ids []string
	for s := range sessions {
		id := fmt.Sprintf("session_%05d", s)
		ids = append(ids, id)
		runs := make([]feishu.Run, 0, inFlight+2)
		for i := range inFlight {
			runs = append(runs, feishu.Run{ID: fmt.Sprintf("run_%05d_%02d_4dfrxvctjqzzj", s, i), SessionID: id,
				AppID: "spring_bench__c", Status: feishu.StatusInProgress,
				CreatedAt: testkit.T0.Add(time.Duration(i) * time.Second), StartedAt: testkit.T0.Add(time.Duration(i+1) * time.Second)})
		}
		for i := range 2 {
			runs = append(runs, feishu.Run{ID: fmt.Sprintf("run_%05d_f%d_4dfrxvctjqzzj", s, i), SessionID: id,
				AppID: "spring_bench__c", Status: feishu.StatusCompleted,
				CreatedAt: testkit.T0.Add(time.Minute), StartedAt: testkit.T0.Add(61 * time.Second), EndedAt: testkit.T0.Add(90 * time.Second)})
		}
		lister[id] = runs
	}
	store, err := state.Open(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	c := New(watch.New(watch.Options{
		Concurrency: 8, MinInterval: -1, IdleInterval: time.Nanosecond,
		Now:   func() time.Time { return testkit.T0.Add(-time.Minute) },
		Saver: storeSaver{store},
	}), Options{})
	c.SetApps([]watch.App{{Name: "bench", API: lister, PerSession: true, Identity: "cli_bench", Sessions: ids}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	drainCtx(ctx, c)
	b.ResetTimer()
	for b.Loop() {
		if err := c.w.Save(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(store.Stats().Bytes), "bytes")
	b.ReportMetric(float64(store.Stats().Bytes)/sessions, "bytes/session")
}

func drainCtx(ctx context.Context, c *Collector) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.ForScrape(ctx))
	_, _ = reg.Gather()
}
