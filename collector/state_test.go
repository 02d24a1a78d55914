package collector

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// memSaver keeps the last state saved, through JSON as the state file does.
type memSaver struct {
	saved []byte
	saves int
	err   error
}

func (m *memSaver) Save(st *watch.State) error {
	if m.err != nil {
		return m.err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	m.saved, m.saves = b, m.saves+1
	return nil
}

func (m *memSaver) load(t *testing.T) *watch.State {
	t.Helper()
	var st watch.State
	if err := json.Unmarshal(m.saved, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// restartable is what a restart test needs: a clock, a lister with the
// sessions of two apps, a per session (s1) and b summed (s2), and newC,
// which makes a collector saving to saver: a second one is the exporter
// restarted.
func restartable(t *testing.T) (clk *feishufake.Clock, lister *memLister, saver *memSaver, apps []watch.App, newC func() *Collector) {
	clk = feishufake.NewClock(testkit.T0)
	lister = newMemLister()
	saver = &memSaver{}
	apps = []watch.App{
		{Name: "a", API: lister, PerSession: true, Identity: "cli_a", Sessions: []string{"s1"}},
		{Name: "b", API: lister, PerSession: false, Identity: "cli_b", Sessions: []string{"s2"}},
	}
	newC = func() *Collector { return newTestCollector(t, clk, nil, 0, saving(saver)) }
	return clk, lister, saver, apps, newC
}

func TestStateCarriesCountersAcrossARestart(t *testing.T) {
	clk, lister, saver, apps, newC := restartable(t)
	lister.set("s1", runs.New("r1", inProgress, 1, 2, runs.None), runs.New("q1", queued, 3, runs.None, runs.None))
	lister.set("s2", runs.New("x1", inProgress, 1, 2, runs.None))
	c := newC()
	c.SetApps(apps)
	baselineServedTwice(t, c)
	f := runs.New("r1", failed, 1, 2, 12)
	f.Error = &feishu.RunError{Code: "sp_ec_1"}
	lister.set("s1", f, runs.New("q1", queued, 3, runs.None, runs.None))
	lister.set("s2", runs.New("x1", completed, 1, 2, 14))
	clk.Advance(20 * time.Second)
	gather(t, context.Background(), c)
	if saver.saves == 0 {
		t.Fatal("a scrape that counted runs saved nothing")
	}
	// The error code, new, shows once served at zero in two scrapes.
	gather(t, context.Background(), c)
	gather(t, context.Background(), c)
	before, err := testutil.GatherAndCount(prometheusRegistry(t, c))
	if err != nil || before == 0 {
		t.Fatalf("gather: %v", err)
	}

	// Down for 10 s, during which q1, in flight at the save, finishes: the
	// restarted collector carries on with the same counters and histograms,
	// and counts q1, which a fresh baseline would take for history.
	clk.Advance(10 * time.Second)
	lister.set("s1", f, runs.New("q1", completed, 3, 21, 25))
	c2 := newC()
	if err := c2.w.Restore(saver.load(t), apps); err != nil {
		t.Fatal(err)
	}
	c2.SetApps(apps)
	clk.Advance(10 * time.Second)
	mfs := gather(t, context.Background(), c2)
	for _, tc := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "FAILED"}, 1},
		{"aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}, 1},
		{"aily_run_failures_total", map[string]string{"app": "a", "session_id": "s1", "error_code": "sp_ec_1"}, 1},
		{"aily_run_duration_seconds", map[string]string{"app": "a", "session_id": "s1", "status": "FAILED"}, 1},
		{"aily_run_duration_seconds", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}, 1},
		{"aily_runs_created_total", map[string]string{"app": "a", "session_id": "s1"}, 2},
		{"aily_runs_finished_total", map[string]string{"app": "b", "status": "COMPLETED"}, 1},
		{"aily_run_duration_seconds", map[string]string{"app": "b", "status": "COMPLETED"}, 1},
		{"aily_run_queue_seconds", map[string]string{"app": "a", "session_id": "s1"}, 2},
		{"aily_run_queue_seconds", map[string]string{"app": "b"}, 1},
	} {
		if got, ok := value(mfs, tc.metric, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.metric, tc.labels, got, ok, tc.want)
		}
	}
}

func TestStateOfAnAppWithOtherCredentialsIsDropped(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", inProgress, 1, 2, runs.None))
	saver := &memSaver{}
	c := newTestCollector(t, clk, nil, 0, saving(saver))
	apps := []watch.App{{Name: "a", API: lister, PerSession: true, Identity: "cli_a", Sessions: []string{"s1"}}}
	c.SetApps(apps)
	gather(t, context.Background(), c)
	lister.set("s1", runs.New("r1", completed, 1, 2, 5))
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)

	for _, tc := range []struct {
		name    string
		apps    []watch.App
		wantErr error
	}{
		{"another app_id", []watch.App{{Name: "a", API: lister, PerSession: true, Identity: "cli_other", Sessions: []string{"s1"}}}, watch.ErrForeignState},
		{"another app name", []watch.App{{Name: "z", API: lister, PerSession: true, Identity: "cli_a", Sessions: []string{"s1"}}}, watch.ErrForeignState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c2 := newTestCollector(t, clk, nil, 0)
			if err := c2.w.Restore(saver.load(t), tc.apps); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Restore: %v, want %v", err, tc.wantErr)
			}
			c2.SetApps(tc.apps)
			mfs := gather(t, context.Background(), c2)
			for _, mf := range mfs {
				if strings.HasPrefix(mf.GetName(), "aily_runs_finished_total") {
					for _, m := range mf.GetMetric() {
						if m.GetCounter().GetValue() != 0 {
							t.Errorf("a counter of another app's state was restored: %v", m)
						}
					}
				}
			}
		})
	}
}

func TestFailedSaveKeepsServing(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	logs := &testkit.LogBuffer{}
	lister := newMemLister()
	lister.set("s1", runs.New("r1", inProgress, 1, 2, runs.None))
	saver := &memSaver{err: errors.New("no space left on device")}
	c := newTestCollector(t, clk, logs, 0, saving(saver))
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	for range 3 {
		mfs := gather(t, context.Background(), c)
		if got, ok := value(mfs, "aily_session_up", sess("a", "s1")); !ok || got != 1 {
			t.Fatalf("aily_session_up = %v (present %v) while saves fail, want 1", got, ok)
		}
		clk.Advance(10 * time.Second)
	}
	if n := strings.Count(logs.String(), "no space left on device"); n != 1 {
		t.Errorf("the failing save was logged %d times, want once:\n%s", n, logs.String())
	}
}

func prometheusRegistry(t *testing.T, c *Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c.ForScrape(context.Background()))
	return reg
}

// blockingSaver holds every save until released.
type blockingSaver struct {
	saving  chan struct{}
	release chan struct{}
}

func (b *blockingSaver) Save(*watch.State) error {
	b.saving <- struct{}{}
	<-b.release
	return nil
}

func TestScrapeAnswersOnlyOnceItsCountsAreSaved(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", completed, 1, 2, 3))
	saver := &blockingSaver{saving: make(chan struct{}), release: make(chan struct{})}
	c := newTestCollector(t, clk, nil, 0, saving(saver))
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})

	answered := make(chan struct{})
	go func() {
		defer close(answered)
		gather(t, context.Background(), c)
	}()
	select {
	case <-answered:
		t.Fatal("the scrape answered without saving what its polls recorded")
	case <-saver.saving:
	}
	// While the save runs, the scrape must not answer.
	select {
	case <-answered:
		t.Fatal("the scrape answered before its save was done")
	case <-time.After(100 * time.Millisecond):
	}
	close(saver.release)
	<-answered
}

func TestChangedBucketsRestartTheHistogramsButKeepTheCounters(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", inProgress, 1, 2, runs.None))
	saver := &memSaver{}
	apps := []watch.App{{Name: "a", API: lister, PerSession: true, Identity: "cli_a", Sessions: []string{"s1"}}}
	c := newTestCollector(t, clk, nil, 0, saving(saver))
	c.SetApps(apps)
	baselineServedTwice(t, c)
	lister.set("s1", runs.New("r1", completed, 1, 2, 7))
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)

	logs := &testkit.LogBuffer{}
	c2 := newTestCollector(t, clk, logs, 0, withBuckets([]float64{1, 5, 30})) // --collector.duration-buckets changed
	if err := c2.w.Restore(saver.load(t), apps); err != nil {
		t.Fatal(err)
	}
	c2.SetApps(apps)
	mfs := gather(t, context.Background(), c2)
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 1 {
		t.Errorf("finished counter after a restart with other buckets = %v, want 1", got)
	}
	if got, _ := value(mfs, "aily_run_duration_seconds", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 0 {
		t.Errorf("a histogram saved with other buckets was restored: count %v, want 0", got)
	}
	if !strings.Contains(logs.String(), "upper bound") && !strings.Contains(logs.String(), "classic bucket") {
		t.Errorf("no warning says why the histogram starts afresh:\n%s", logs.String())
	}
}

func TestSavesWhatWasCountedAtOnceTheRestLaterAndRetriesAFailure(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1", runs.New("r1", inProgress, -2, -1, runs.None))
	saver := &memSaver{}
	c := newTestCollector(t, clk, nil, 10*time.Second, saving(saver))
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	gather(t, context.Background(), c) // the baseline: saved though it counts nothing, the first time
	if saver.saves != 1 {
		t.Fatalf("%d saves after the first scrape, want 1", saver.saves)
	}
	for _, step := range []struct {
		advance time.Duration
		saves   int
		after   string
	}{
		// Within the min interval nothing is polled: nothing to save.
		{time.Second, 1, "a scrape that polled nothing, want still 1"},
		// Polled, nothing counted: the save waits for the refresh interval.
		{10 * time.Second, 1, "a poll that counted nothing, want still 1"},
		{watch.StateRefresh, 2, "the refresh interval, want 2"},
	} {
		clk.Advance(step.advance)
		gather(t, context.Background(), c)
		if saver.saves != step.saves {
			t.Errorf("%d saves after %s", saver.saves, step.after)
		}
	}
	// Counted: saved at once; a failure is tried again by the next scrape.
	lister.set("s1", runs.New("r1", completed, -2, -1, 100))
	clk.Advance(10 * time.Second)
	saver.err = errors.New("disk full")
	gather(t, context.Background(), c)
	saver.err = nil
	clk.Advance(time.Second)
	gather(t, context.Background(), c)
	if saver.saves != 3 {
		t.Errorf("%d saves, want 3: the save that failed must be retried", saver.saves)
	}
}
