package collector

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// runSeries returns the counter and histogram series of the run metrics
// (aily_run_*, aily_runs_*_total) by name and labels: a counter's value, a
// histogram's count.
func runSeries(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.Counter != nil && strings.HasPrefix(name, "aily_run"):
				v = m.GetCounter().GetValue()
			case m.Histogram != nil && strings.HasPrefix(name, "aily_run"):
				v = float64(m.GetHistogram().GetSampleCount())
			default:
				continue
			}
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

// failedWith is a FAILED run with the error code, created, started and
// ended at the given seconds from t0.
func failedWith(id, code string, created, started, ended float64) feishu.Run {
	r := runs.New(id, failed, created, started, ended)
	r.Error = &feishu.RunError{Code: code}
	return r
}

func TestNewErrorCodeIsFirstServedAtZero(t *testing.T) {
	for _, tc := range []struct {
		name       string
		perSession bool
		labels     map[string]string
	}{
		{"per session", true, map[string]string{"app": "a", "session_id": "s1", "error_code": "sp_ec_new"}},
		{"summed per app", false, map[string]string{"app": "a", "error_code": "sp_ec_new"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := feishufake.NewClock(testkit.T0)
			lister := newMemLister()
			c := newTestCollector(t, clk, nil, 5*time.Second)
			c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: tc.perSession, Sessions: []string{"s1"}}})
			gather(t, context.Background(), c) // the baseline
			clk.Advance(5 * time.Second)
			gather(t, context.Background(), c)

			failedLabels := map[string]string{"app": "a", "status": "FAILED"}
			if tc.perSession {
				failedLabels["session_id"] = "s1"
			}
			lister.set("s1", failedWith("r1", "sp_ec_new", 6, 7, 9))
			// Each scrape polls (min interval 5s); the code's series is
			// served at 0 in two scrapes, the first at least the min
			// interval before its first increment is shown.
			for i, want := range []struct {
				advance           time.Duration
				failures, finFail float64
			}{
				{5 * time.Second, 0, 1}, // counted: FAILED at once, the new code at 0
				{2 * time.Second, 0, 1}, // served at 0 a second time, 2s later
				{2 * time.Second, 0, 1}, // two scrapes, but only 4s since the first
				{time.Second, 1, 1},     // 5s since the first: shown
				{5 * time.Second, 1, 1}, // and stays
			} {
				clk.Advance(want.advance)
				if i == 4 {
					lister.set("s1", failedWith("r1", "sp_ec_new", 6, 7, 9), failedWith("r2", "sp_ec_new", 20, 21, 22))
					want.failures, want.finFail = 2, 2 // a later failure of a code already shown: at once
				}
				mfs := gather(t, context.Background(), c)
				got, ok := value(mfs, "aily_run_failures_total", tc.labels)
				if !ok || got != want.failures {
					t.Errorf("scrape %d after the failure: aily_run_failures_total = %v (present %v), want %v", i+1, got, ok, want.failures)
				}
				if got, _ := value(mfs, "aily_runs_finished_total", failedLabels); got != want.finFail {
					t.Errorf("scrape %d after the failure: FAILED runs = %v, want %v", i+1, got, want.finFail)
				}
			}
		})
	}
}

func TestKnownSeriesExistAtZeroFromTheBaseline(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	// Ended after the watch began: the baseline counts it.
	lister.set("s1", runs.New("r1", completed, 1, 2, 3), runs.New("r2", inProgress, 1, 4, runs.None))
	lister.set("s2", runs.New("x1", completed, 1, 2, 3))
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{
		{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1", "quiet"}},
		{Name: "b", API: lister, PerSession: false, Sessions: []string{"s2"}},
	})
	clk.Advance(10 * time.Second)

	type series struct {
		name   string
		labels map[string]string
	}
	var known []series
	for _, scope := range []map[string]string{sess("a", "s1"), sess("a", "quiet"), {"app": "b"}} {
		with := func(k, v string) map[string]string {
			l := map[string]string{k: v}
			for k, v := range scope {
				l[k] = v
			}
			return l
		}
		for _, st := range feishu.FinalStatuses() {
			known = append(known,
				series{"aily_runs_finished_total", with("status", string(st))},
				series{"aily_run_duration_seconds", with("status", string(st))})
		}
		known = append(known, series{"aily_runs_created_total", scope}, series{"aily_run_queue_seconds", scope})
	}
	// The baseline's scrape and the next serve every known series at zero,
	// the counts of the baseline included; the third shows those.
	for i := range 3 {
		mfs := gather(t, context.Background(), c)
		for _, s := range known {
			got, ok := value(mfs, s.name, s.labels)
			want := 0.0
			if i == 2 && s.labels["session_id"] != "quiet" {
				switch {
				case s.labels["status"] == "COMPLETED":
					want = 1 // r1, x1
				case s.name == "aily_runs_created_total", s.name == "aily_run_queue_seconds":
					want = map[string]float64{"a": 2, "b": 1}[s.labels["app"]] // r1 and r2, x1
				}
			}
			if !ok || got != want {
				t.Errorf("scrape %d: %s%v = %v (present %v), want %v", i+1, s.name, s.labels, got, ok, want)
			}
		}
	}
}

func TestHeldIncrementsSurviveARestart(t *testing.T) {
	clk, lister, saver, apps, newC := restartable(t)
	c := newC()
	c.SetApps(apps)
	gather(t, context.Background(), c) // the baseline: served at zero once
	// Counted while the known series have been served once, and with a
	// code new to each session: all held, and saved so.
	lister.set("s1", failedWith("r1", "sp_ec_1", 1, 2, 3), runs.New("r2", completed, 1, 2, 4))
	lister.set("s2", failedWith("x1", "sp_ec_2", 1, 2, 3))
	clk.Advance(10 * time.Second)
	mfs := gather(t, context.Background(), c)
	for k, v := range runSeries(mfs) {
		if v != 0 {
			t.Errorf("before the restart: %s = %v, want 0 (held)", k, v)
		}
	}
	st := saver.load(t)
	if n := len(st.Sessions); n != 2 || !st.Sessions[0].Holding || st.Sessions[0].Counts == nil || st.Sessions[0].Counts.Held == nil {
		t.Fatalf("the saved state does not hold the session's counts: %s", saver.saved)
	}

	// Restarted: the held counts are served at zero again, twice, then
	// shown, each once.
	c = newC()
	if err := c.w.Restore(saver.load(t), apps); err != nil {
		t.Fatal(err)
	}
	c.SetApps(apps)
	want := map[string]float64{
		`aily_runs_finished_total{app=a,session_id=s1,status=FAILED}`:     1,
		`aily_runs_finished_total{app=a,session_id=s1,status=COMPLETED}`:  1,
		`aily_run_duration_seconds{app=a,session_id=s1,status=FAILED}`:    1,
		`aily_run_duration_seconds{app=a,session_id=s1,status=COMPLETED}`: 1,
		`aily_run_failures_total{app=a,error_code=sp_ec_1,session_id=s1}`: 1,
		`aily_runs_created_total{app=a,session_id=s1}`:                    2,
		`aily_run_queue_seconds{app=a,session_id=s1}`:                     2,
		`aily_runs_finished_total{app=b,status=FAILED}`:                   1,
		`aily_run_duration_seconds{app=b,status=FAILED}`:                  1,
		`aily_run_failures_total{app=b,error_code=sp_ec_2}`:               1,
		`aily_runs_created_total{app=b}`:                                  1,
		`aily_run_queue_seconds{app=b}`:                                   1,
	}
	for i := range 4 {
		clk.Advance(10 * time.Second)
		got := runSeries(gather(t, context.Background(), c))
		for k, w := range want {
			if i < 2 {
				w = 0
			}
			if got[k] != w {
				t.Errorf("scrape %d after the restart: %s = %v, want %v", i+1, k, got[k], w)
			}
		}
		// Saved once shown: a second restart shows them at once.
		if i == 2 {
			c = newC()
			if err := c.w.Restore(saver.load(t), apps); err != nil {
				t.Fatal(err)
			}
			c.SetApps(apps)
		}
	}
}

func TestReleasedCountsAreSavedBeforeTheyAreServed(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	saver := &memSaver{}
	c := newTestCollector(t, clk, nil, time.Minute, saving(saver))
	apps := []watch.App{{Name: "a", API: lister, PerSession: true, Identity: "cli_a", Sessions: []string{"s1"}}}
	c.SetApps(apps)
	gather(t, context.Background(), c) // the baseline
	lister.set("s1", runs.New("r1", completed, 1, 2, 3))
	clk.Advance(time.Minute)
	gather(t, context.Background(), c) // counts r1, held
	saves := saver.saves
	// Served twice, a minute since the first: shown by a scrape that polls
	// nothing (within the min interval), which saves before it answers.
	clk.Advance(time.Second)
	mfs := gather(t, context.Background(), c)
	if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 1 {
		t.Fatalf("COMPLETED = %v, want 1", got)
	}
	if saver.saves != saves+1 {
		t.Fatalf("%d saves by the scrape that showed the held count, want 1", saver.saves-saves)
	}
	st := saver.load(t)
	if cs := st.Sessions[0].Counts; cs == nil || cs.Finished[slices.Index(feishu.FinalStatuses(), completed)] != 1 || cs.Held != nil || st.Sessions[0].Holding {
		t.Errorf("the state saved is not what was served: %s", saver.saved)
	}
}

// TestNoSeriesFirstAppearsAboveZero runs random traffic through sessions of
// both shapes with restarts from the saved state between scrapes, and checks
// that every counter and histogram series is first served at zero, never
// goes back, and ends up counting every run exactly once.
func TestNoSeriesFirstAppearsAboveZero(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			clk := feishufake.NewClock(testkit.T0)
			lister := newMemLister()
			saver := &memSaver{}
			apps := []watch.App{
				{Name: "a", API: lister, PerSession: true, Identity: "cli_a", Sessions: []string{"s1", "s2", "s3"}},
				{Name: "b", API: lister, PerSession: false, Identity: "cli_b", Sessions: []string{"s4", "s5"}},
			}
			sessions := []string{"s1", "s2", "s3", "s4", "s5"}
			minInterval := time.Duration(rng.IntN(4)) * time.Second
			newC := func() *Collector {
				c := newTestCollector(t, clk, nil, minInterval, saving(saver))
				return c
			}
			c := newC()
			c.SetApps(apps)
			clk.Advance(time.Second) // batch come after the watch began

			batch := map[string][]feishu.Run{}
			var live []struct {
				session string
				i       int
			}
			finished, failures := 0, 0
			first, last := map[string]float64{}, map[string]float64{}
			scrape := func() map[string]float64 {
				got := runSeries(gather(t, context.Background(), c))
				for k, v := range got {
					if _, seen := first[k]; !seen {
						first[k] = v
						if v != 0 {
							t.Errorf("%s first served at %v, want 0", k, v)
						}
					}
					if v < last[k] {
						t.Errorf("%s went back from %v to %v", k, last[k], v)
					}
					last[k] = v
				}
				return got
			}
			codes := []string{"c1", "c2", "c3", "c4", "c5", "c6"}
			seq := 0
			for range 60 {
				now := clk.Now().Sub(testkit.T0).Seconds()
				for range rng.IntN(3) {
					s := sessions[rng.IntN(len(sessions))]
					seq++
					batch[s] = append(batch[s], runs.New(fmt.Sprintf("r%d", seq), inProgress, now, now, runs.None))
					live = append(live, struct {
						session string
						i       int
					}{s, len(batch[s]) - 1})
				}
				for j := 0; j < len(live); j++ {
					if rng.IntN(3) > 0 {
						continue
					}
					l := live[j]
					r := &batch[l.session][l.i]
					r.Status, r.EndedAt = completed, testkit.At(now)
					if rng.IntN(2) == 0 {
						r.Status, r.Error = failed, &feishu.RunError{Code: codes[rng.IntN(len(codes))]}
						failures++
					}
					finished++
					live = append(live[:j], live[j+1:]...)
					j--
				}
				for _, s := range sessions {
					lister.set(s, slices.Clone(batch[s])...)
				}
				clk.Advance(time.Duration(1+rng.IntN(3)) * time.Second)
				scrape()
				if rng.IntN(10) == 0 {
					c = newC()
					if err := c.w.Restore(saver.load(t), apps); err != nil {
						t.Fatal(err)
					}
					c.SetApps(apps)
				}
			}
			// The batch still going finish; then nothing is held for long.
			now := clk.Now().Sub(testkit.T0).Seconds()
			for _, l := range live {
				r := &batch[l.session][l.i]
				r.Status, r.EndedAt = completed, testkit.At(now)
				finished++
			}
			for _, s := range sessions {
				lister.set(s, slices.Clone(batch[s])...)
			}
			var got map[string]float64
			for range 4 {
				clk.Advance(5 * time.Second)
				got = scrape()
			}
			sum := func(prefix string) (n float64) {
				for k, v := range got {
					if strings.HasPrefix(k, prefix) {
						n += v
					}
				}
				return n
			}
			if n := sum("aily_runs_finished_total{"); n != float64(finished) {
				t.Errorf("finished batch counted %v, want %d", n, finished)
			}
			if n := sum("aily_run_duration_seconds{"); n != float64(finished) {
				t.Errorf("durations observed %v, want %d", n, finished)
			}
			if n := sum("aily_run_failures_total{"); n != float64(failures) {
				t.Errorf("failures counted %v, want %d", n, failures)
			}
			if n := sum("aily_runs_created_total{"); n != float64(seq) {
				t.Errorf("runs created %v, want %d", n, seq)
			}
		})
	}
}

func TestSessionAddedByAReloadIsFirstServedAtZero(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	baselineServedTwice(t, c)

	clk.Advance(10 * time.Second)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1", "s2"}}})
	// Both end after s2's watch began: its baseline counts x1.
	lister.set("s1", runs.New("r1", completed, 11, 11, 12))
	lister.set("s2", runs.New("x1", completed, 11, 11, 12))
	clk.Advance(5 * time.Second)
	for i, want := range []float64{0, 0, 1} {
		mfs := gather(t, context.Background(), c)
		if got, _ := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s1", "status": "COMPLETED"}); got != 1 {
			t.Errorf("scrape %d after the reload: s1 COMPLETED = %v, want 1 at once", i+1, got)
		}
		if got, ok := value(mfs, "aily_runs_finished_total", map[string]string{"app": "a", "session_id": "s2", "status": "COMPLETED"}); !ok || got != want {
			t.Errorf("scrape %d after the reload: s2 COMPLETED = %v (present %v), want %v", i+1, got, ok, want)
		}
	}
}
