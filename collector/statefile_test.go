package collector

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/state"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
	dto "github.com/prometheus/client_model/go"
)

// restoreFile restores c from a copy of the state file path, read as the
// exporter reads it at start.
func restoreFile(t *testing.T, c *Collector, path string, apps []watch.App) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, state.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := state.Open(dir, state.Options{Version: watch.StateVersion, Migrate: watch.MigrateState})
	if err != nil {
		t.Fatal(err)
	}
	var st watch.State
	found, err := s.Load(&st, "aily_exporter")
	if err != nil || !found {
		t.Fatalf("load %s: found %v, %v", path, found, err)
	}
	if err := c.w.Restore(&st, apps); err != nil {
		t.Fatal(err)
	}
}

// TestStateFileOfVersion1CarriesOn loads a state file that the exporter's
// first state format (version 1) saved (testdata/state-v1.json: apps a, per
// session, and b, summed; s2 with a new error code held, s4 added by a reload
// with its first count held) and checks that the counters, histograms and
// runs in flight carry on from it.
func TestStateFileOfVersion1CarriesOn(t *testing.T) {
	clk := feishufake.NewClock(testkit.At(50))
	lister := newMemLister()
	f := runs.New("r1", failed, 1, 2, 12)
	f.Error = &feishu.RunError{Code: "sp_ec_1"}
	x2 := runs.New("x2", failed, 25, 26, 30)
	x2.Error = &feishu.RunError{Code: "sp_ec_2"}
	y1 := runs.New("y1", failed, 1, 2, 15)
	y1.Error = &feishu.RunError{Code: "b_ec"}
	// While the exporter was down, q1 and y2, in flight at the save,
	// finished: carrying on counts them, a fresh baseline would not.
	lister.set("s1", f, runs.New("q1", completed, 3, 46, 48))
	lister.set("s2", runs.New("x1", completed, 1, 2, 14), x2)
	lister.set("s3", y1, runs.New("y2", completed, 1, 3, 47))
	lister.set("s4", runs.New("z1", completed, 39, 39.5, 44))
	apps := []watch.App{
		{Name: "a", API: lister, PerSession: true, Identity: "cli_a", Sessions: []string{"s1", "s2", "s4"}},
		{Name: "b", API: lister, PerSession: false, Identity: "cli_b", Sessions: []string{"s3"}},
	}
	c := newTestCollector(t, clk, nil, 0)
	restoreFile(t, c, "testdata/state-v1.json", apps)
	c.SetApps(apps)

	type want struct {
		metric string
		labels map[string]string
		// first is the value of the first scrape after the restart, then
		// once the series waiting for their first increment are ready.
		first, then float64
	}
	s := func(id string, kv ...string) map[string]string {
		l := map[string]string{"app": "a", "session_id": id}
		for i := 0; i < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	b := func(kv ...string) map[string]string {
		l := map[string]string{"app": "b"}
		for i := 0; i < len(kv); i += 2 {
			l[kv[i]] = kv[i+1]
		}
		return l
	}
	wants := []want{
		{"aily_runs_finished_total", s("s1", "status", "FAILED"), 1, 1},
		{"aily_runs_finished_total", s("s1", "status", "COMPLETED"), 1, 1},
		{"aily_runs_created_total", s("s1"), 2, 2},
		{"aily_run_failures_total", s("s1", "error_code", "sp_ec_1"), 1, 1},
		{"aily_run_duration_seconds", s("s1", "status", "FAILED"), 1, 1},
		{"aily_run_duration_seconds", s("s1", "status", "COMPLETED"), 1, 1},
		{"aily_run_queue_seconds", s("s1"), 2, 2},
		{"aily_runs_finished_total", s("s2", "status", "COMPLETED"), 1, 1},
		{"aily_runs_finished_total", s("s2", "status", "FAILED"), 1, 1},
		{"aily_run_failures_total", s("s2", "error_code", "sp_ec_2"), 0, 1},
		{"aily_run_queue_seconds", s("s2"), 2, 2},
		{"aily_runs_finished_total", s("s4", "status", "COMPLETED"), 0, 1},
		{"aily_run_duration_seconds", s("s4", "status", "COMPLETED"), 0, 1},
		{"aily_runs_finished_total", b("status", "FAILED"), 1, 1},
		{"aily_runs_finished_total", b("status", "COMPLETED"), 1, 1},
		{"aily_runs_created_total", b(), 2, 2},
		{"aily_run_failures_total", b("error_code", "b_ec"), 1, 1},
		{"aily_run_duration_seconds", b("status", "FAILED"), 1, 1},
		{"aily_run_duration_seconds", b("status", "COMPLETED"), 1, 1},
		{"aily_run_queue_seconds", b(), 2, 2},
	}
	check := func(mfs []*dto.MetricFamily, then bool) {
		t.Helper()
		for _, w := range wants {
			exp := w.first
			if then {
				exp = w.then
			}
			if got, ok := value(mfs, w.metric, w.labels); !ok || got != exp {
				t.Errorf("%s%v = %v (present %v), want %v", w.metric, w.labels, got, ok, exp)
			}
		}
	}
	check(gather(t, context.Background(), c), false)
	clk.Advance(time.Second)
	gather(t, context.Background(), c)
	clk.Advance(time.Second)
	check(gather(t, context.Background(), c), true)
}
