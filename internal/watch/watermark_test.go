package watch

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// history returns n final runs created a second apart, ending before t0.
func history(n int) []feishu.Run {
	runs := make([]feishu.Run, n)
	for i := range runs {
		c := float64(-2*n + i)
		runs[i] = run(fmt.Sprintf("h%05d", i), completed, c, c, c+0.5)
	}
	return runs
}

func TestTrackerHistoryIsNeverCountedNorRemembered(t *testing.T) {
	tr := newTracker(t0)
	if got := summary(fullListing(tr, history(10000), at(1))); !cmp.Equal(got, counted{}) {
		t.Fatalf("baseline of history counted %+v, want nothing", got)
	}
	// The runs within the settle window of the newest one are remembered,
	// not the history behind them.
	if n := tr.len(); n > 61 {
		t.Fatalf("tracker remembers %d runs after a baseline of 10,000 finished ones, want at most 61", n)
	}
	got := summary(incremental(tr, append([]feishu.Run{run("new", completed, 5, 6, 8)}, history(10000)...), at(10)))
	want := counted{Finished: []event{{"new", 2}}, Started: []event{{"new", 1}}, Created: []string{"new"}}
	if diff := cmp.Diff(want, got, cmp.Comparer(approx)); diff != "" {
		t.Errorf("incremental listing counted (-want +got):\n%s", diff)
	}
	if got := summary(fullListing(tr, history(10000), at(20))); !cmp.Equal(got, counted{}) {
		t.Errorf("a later full listing counted %+v, want nothing", got)
	}
}

func TestTrackerLateRuns(t *testing.T) {
	tests := []struct {
		name string
		late feishu.Run
		want counted
	}{
		{
			name: "run created in the same millisecond as the newest and listed later is counted",
			late: run("a-tie", completed, 100, 100, 101),
			want: counted{Finished: []event{{"a-tie", 1}}, Started: []event{{"a-tie", 0}}, Created: []string{"a-tie"}},
		},
		{
			name: "run listed late within the settle window is counted",
			late: run("late", completed, 100-settleWindow.Seconds()+1, 100, 101),
			want: counted{Finished: []event{{"late", 1}}, Started: []event{{"late", settleWindow.Seconds() - 1}}, Created: []string{"late"}},
		},
		{
			name: "run listed late beyond the settle window is taken as history",
			late: run("ancient", completed, 100-settleWindow.Seconds()-1, 100, 101),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t0)
			fullListing(tr, nil, at(1))
			incremental(tr, []feishu.Run{run("z-newest", completed, 100, 100, 101)}, at(110))
			got := summary(incremental(tr, []feishu.Run{tt.late, run("z-newest", completed, 100, 100, 101)}, at(120)))
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(approx)); diff != "" {
				t.Errorf("counted (-want +got):\n%s", diff)
			}
			if got := summary(incremental(tr, []feishu.Run{tt.late}, at(130))); !cmp.Equal(got, counted{}) {
				t.Errorf("listed once more it counted %+v, want nothing", got)
			}
		})
	}
}

func TestTrackerFutureCreatedAtDoesNotHideLaterRuns(t *testing.T) {
	tr := newTracker(t0)
	fullListing(tr, nil, at(1))
	// An API clock an hour ahead stamps a run in the future.
	incremental(tr, []feishu.Run{run("skewed", completed, 3600, 3600, 3601)}, at(10))
	got := summary(incremental(tr, []feishu.Run{run("next", completed, 15, 16, 17)}, at(20)))
	if len(got.Finished) != 1 || got.Finished[0].ID != "next" {
		t.Errorf("the run after a future-stamped one counted %+v, want it finished", got)
	}
}

func TestTrackerFinalStatusCounts(t *testing.T) {
	runs := func(st CurrentRuns) map[feishu.RunStatus]int {
		out := map[feishu.RunStatus]int{}
		for k, v := range st.Runs() {
			if v != 0 {
				out[k] = v
			}
		}
		return out
	}
	t.Run("a run the API stops listing leaves them at the next full listing", func(t *testing.T) {
		tr := newTracker(t0)
		fullListing(tr, []feishu.Run{
			run("a", completed, -30, -30, -20), run("b", failed, -20, -20, -10), run("c", inProgress, -5, -5, none),
		}, at(1))
		want := map[feishu.RunStatus]int{completed: 1, failed: 1, inProgress: 1}
		if diff := cmp.Diff(want, runs(tr.current())); diff != "" {
			t.Fatalf("after the baseline (-want +got):\n%s", diff)
		}
		incremental(tr, []feishu.Run{run("c", completed, -5, -5, 5)}, at(10))
		want = map[feishu.RunStatus]int{completed: 2, failed: 1}
		if diff := cmp.Diff(want, runs(tr.current())); diff != "" {
			t.Fatalf("after c finished (-want +got):\n%s", diff)
		}
		// b is no longer listed.
		fullListing(tr, []feishu.Run{run("a", completed, -30, -30, -20), run("c", completed, -5, -5, 5)}, at(20))
		want = map[feishu.RunStatus]int{completed: 2}
		if diff := cmp.Diff(want, runs(tr.current())); diff != "" {
			t.Errorf("after a full listing without b (-want +got):\n%s", diff)
		}
	})
	t.Run("a run finishing while a full listing is under way counts once", func(t *testing.T) {
		tr := newTracker(t0)
		fullListing(tr, []feishu.Run{run("a", completed, -30, -30, -20), run("r", inProgress, -5, -5, none)}, at(1))
		// A full listing over two polls: the first sees r in flight, then an
		// incremental listing sees it finish, then the second half sees it
		// final again (a page that shifted).
		var obs Observation
		tr.startSweep()
		r := run("r", inProgress, -5, -5, none)
		tr.see(&r, true, &obs)
		incremental(tr, []feishu.Run{run("r", completed, -5, -5, 8)}, at(10))
		for _, r := range []feishu.Run{run("r", completed, -5, -5, 8), run("a", completed, -30, -30, -20)} {
			tr.see(&r, true, &obs)
		}
		tr.endSweep(at(20))
		want := map[feishu.RunStatus]int{completed: 2}
		if diff := cmp.Diff(want, runs(tr.current())); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestTrackerBaselineOverSeveralPolls(t *testing.T) {
	tr := newTracker(t0)
	var obs Observation
	see := func(runs ...feishu.Run) {
		for i := range runs {
			tr.see(&runs[i], true, &obs)
		}
	}
	tr.startSweep()
	// Page 1 in the first poll: newest first.
	see(run("r3", inProgress, -2, -2, none), run("r2", completed, -4, -4, 3))
	if tr.baselined {
		t.Fatal("baselined after the first page of several")
	}
	// r3 in flight, r2 counted by the baseline (ended after the watch
	// began) and remembered until the baseline completes.
	if n := tr.len(); n != 3 {
		t.Errorf("after the first page the tracker remembers %d runs, want 3 (r3 in flight, r2 counted and remembered)", n)
	}
	// Page 2 in the next poll: a run created meanwhile pushed r2 down onto
	// it, now with r3 finished too (seen final here for the first time).
	see(run("r2", completed, -4, -4, 3), run("r3", completed, -2, -2, 9), run("r1", completed, -10, -10, -6))
	tr.endSweep(at(20))
	want := counted{Finished: []event{{"r2", 7}, {"r3", 11}}}
	if diff := cmp.Diff(want, summary(obs), cmp.Comparer(approx)); diff != "" {
		t.Errorf("baseline counted (-want +got):\n%s", diff)
	}
	if !tr.baselined {
		t.Error("not baselined after the listing completed")
	}
}

func TestTrackerPositionFollowsNewRuns(t *testing.T) {
	tr := newTracker(t0)
	fullListing(tr, []feishu.Run{run("deep", inProgress, 1, 1, none)}, at(2))
	tr.setPosition("deep", 120)
	incremental(tr, []feishu.Run{run("n1", completed, 3, 3, 4), run("n2", inProgress, 5, 5, none)}, at(10))
	if got := tr.position("deep", true); got != 122 {
		t.Errorf("newest first: position %d, want 122 (two runs created above it)", got)
	}
	if got := tr.position("deep", false); got != 120 {
		t.Errorf("oldest first: position %d, want 120 (new runs come after it)", got)
	}
	if got := tr.unseen(); !cmp.Equal(got, []string{"deep"}) {
		t.Errorf("unseen in the last pass: %v, want [deep]", got)
	}
	// Seen again further down after those two: only the runs created since
	// push it, including one without a created_at.
	tr.setPosition("deep", 130)
	undated := run("n3", completed, none, 11, 12)
	incremental(tr, []feishu.Run{undated}, at(20))
	if got := tr.position("deep", true); got != 131 {
		t.Errorf("newest first, after a run without created_at: position %d, want 131", got)
	}
}

func TestTrackerUnseenIsOldestFirst(t *testing.T) {
	tr := newTracker(t0)
	fullListing(tr, []feishu.Run{
		run("a", inProgress, 3, 3, none), run("b", inProgress, 2, 2, none),
		run("c", inProgress, 1, 1, none), run("d", inProgress, 2, 2, none),
	}, at(5))
	tr.beginPass()
	if got, want := tr.unseen(), []string{"c", "b", "d", "a"}; !cmp.Equal(got, want) {
		t.Errorf("unseen %v, want %v (by created_at, then ID)", got, want)
	}
}

func TestTrackerBaselineListedOldestFirstRemembersOnlyTheSettleWindow(t *testing.T) {
	// Runs two minutes apart, listed oldest first: each is the newest so far
	// when seen, and each one pushes the one before out of the settle window.
	tr := newTracker(t0)
	var obs Observation
	tr.startSweep()
	for i := range 1000 {
		c := float64(-240000 + 120*i)
		r := run(fmt.Sprintf("h%04d", i), completed, c, c, c+1)
		tr.see(&r, true, &obs)
	}
	if n := tr.len(); n > 2 {
		t.Errorf("half-way through a baseline of 1,000 runs two minutes apart, the tracker remembers %d runs, want at most 2", n)
	}
	tr.endSweep(at(1))
}

func TestTrackerStateReportsTheAppsOfItsRuns(t *testing.T) {
	tr := newTracker(t0)
	a, b, c, none := run("r1", completed, -10, -10, -9), run("r2", completed, -8, -8, -7), run("r3", completed, -6, -6, -5), run("r4", completed, -4, -4, -3)
	a.AppID, b.AppID, c.AppID, none.AppID = "spring_b", "spring_a", "spring_b", ""
	fullListing(tr, []feishu.Run{a, b, c, none}, at(1))
	if got, want := tr.current().AppIDs, []string{"spring_a", "spring_b"}; !cmp.Equal(got, want) {
		t.Errorf("apps %q, want %q (sorted, once each, none empty)", got, want)
	}
}

func TestObservationEmpty(t *testing.T) {
	r := run("r1", completed, 1, 2, 3)
	for _, tc := range []struct {
		name string
		obs  Observation
		want bool
	}{
		{"nothing counted is empty", Observation{}, true},
		{"a run finished is not empty", Observation{Finished: []runTiming{{Run: r}}}, false},
		{"a run started is not empty", Observation{Started: []runTiming{{Run: r}}}, false},
		{"a run created is not empty", Observation{Created: []feishu.Run{r}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.obs.empty(); got != tc.want {
				t.Errorf("Empty() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRunInFlightMissingFromCompletePassesIsForgottenAfterTwo(t *testing.T) {
	tr := newTracker(t0)
	fullListing(tr, []feishu.Run{run("gone", inProgress, 1, 1, none), run("stays", inProgress, 2, 2, none)}, at(3))
	pass := func() {
		tr.beginPass()
		var obs Observation
		r := run("stays", inProgress, 2, 2, none)
		tr.see(&r, false, &obs)
		tr.endCompletePass()
	}
	pass()
	if n := tr.inFlight(); n != 2 {
		t.Fatalf("after one complete pass without it: %d runs in flight, want 2 (one absence may be a shifted page)", n)
	}
	pass()
	if n := tr.inFlight(); n != 1 {
		t.Fatalf("after two complete passes without it: %d runs in flight, want 1", n)
	}
	// Seen again in between, it is kept: absences count in a row.
	fullListing(tr, []feishu.Run{run("back", inProgress, 3, 3, none), run("stays", inProgress, 2, 2, none)}, at(10))
	pass()
	tr.beginPass()
	var obs Observation
	for _, r := range []feishu.Run{run("back", inProgress, 3, 3, none), run("stays", inProgress, 2, 2, none)} {
		tr.see(&r, false, &obs)
	}
	tr.endCompletePass()
	pass()
	if n := tr.inFlight(); n != 2 {
		t.Errorf("a run seen between two absences: %d runs in flight, want 2", n)
	}
}
