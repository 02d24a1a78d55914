package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// countsEnv is a watcher of one app over memAPI, scraped as the collector
// scrapes it: poll, release, serve the apps, serve the sessions.
type countsEnv struct {
	t   *testing.T
	clk *feishufake.Clock
	api *memAPI
	w   *Watcher
	n   uint64
}

func newCountsEnv(t *testing.T, perSession bool, sessions ...string) *countsEnv {
	t.Helper()
	e := &countsEnv{t: t, clk: feishufake.NewClock(at(100)), api: newMemAPI(newestFirst, 10)}
	e.w = New(Options{Now: e.clk.Now, MinInterval: -1, IdleInterval: time.Nanosecond})
	e.w.SetApps([]App{{Name: "a", API: e.api, PerSession: perSession, Sessions: sessions}})
	return e
}

// scrape polls, then returns the counts served: per session ID, and the
// app's sums under "".
func (e *countsEnv) scrape() map[string]*CountsView {
	e.t.Helper()
	e.clk.Advance(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	e.w.Poll(ctx)
	cancel()
	e.w.Release(e.clk.Now())
	e.n++
	sc := &Scrape{N: e.n, Now: e.clk.Now()}
	out := map[string]*CountsView{}
	for _, a := range e.w.ServeApps(sc) {
		if !a.PerSession {
			out[""] = a.Counts
		}
	}
	e.w.ServeSnapshots(sc, func(s *Snapshot) {
		if s.Counts != nil {
			out[s.ID] = s.Counts
		}
	})
	return out
}

func failedWith(id, session, code string, created float64) feishu.Run {
	r := run(id, feishu.StatusFailed, created, created+1, created+3)
	r.SessionID = session
	if code != "" {
		r.Error = &feishu.RunError{Code: code, Message: "failed"}
	}
	return r
}

func inSession(r feishu.Run, session string) feishu.Run {
	r.SessionID = session
	return r
}

// TestAPollsCountsAreWhatItSaw: each run once by its final status, created,
// durations only of runs with both timestamps, queue times only of runs
// that started.
func TestAPollsCountsAreWhatItSaw(t *testing.T) {
	e := newCountsEnv(t, true, "s1")
	e.scrape() // the baseline of an empty session; the series served at zero
	e.scrape()
	e.api.put(
		run("r1", feishu.StatusCompleted, 200, 201, 204),
		run("r2", feishu.StatusCancelled, 205, none, 206), // never started
		run("r3", feishu.StatusInProgress, 207, 208, none),
		run("r4", feishu.StatusExpired, 209, 210, none), // no ended_at
	)
	c := e.scrape()["s1"]
	if c == nil {
		t.Fatal("no counts served for s1")
	}
	want := feishu.ByFinal[float64]{}
	want[feishu.FinalCompleted], want[feishu.FinalCancelled], want[feishu.FinalExpired] = 1, 1, 1
	if c.Finished != want || c.Created != 4 {
		t.Errorf("finished %v, created %v; want %v and 4", c.Finished, c.Created, want)
	}
	if h := c.Duration[feishu.FinalCompleted]; h == nil || h.Count() != 1 || h.Fields().GetSampleSum() != 3 {
		t.Errorf("COMPLETED durations: %v, want one of 3 s", h)
	}
	for _, i := range []feishu.FinalIndex{feishu.FinalCancelled, feishu.FinalExpired} {
		if h := c.Duration[i]; h != nil && h.Count() != 0 {
			t.Errorf("a run without started_at or ended_at observed in the %v durations", i)
		}
	}
	if h := c.Queue; h == nil || h.Count() != 3 {
		t.Errorf("queue times: %v, want 3 (every run that started)", h)
	}
}

// TestSummedCountsAreTheApps: with per_session false the app's sums hold the
// sessions' runs, and FinishedBySession still tells them apart.
func TestSummedCountsAreTheApps(t *testing.T) {
	e := newCountsEnv(t, false, "s1", "s2")
	e.scrape()
	e.scrape()
	e.api.put(inSession(run("r1", feishu.StatusCompleted, 200, 201, 202), "s1"),
		inSession(run("r2", feishu.StatusCompleted, 203, 204, 205), "s2"),
		inSession(run("r3", feishu.StatusCancelled, 206, 207, 208), "s2"))
	got := e.scrape()
	if _, ok := got["s1"]; ok {
		t.Error("a session of an app with per_session false serves counts of its own")
	}
	c := got[""]
	if c == nil || c.Finished[feishu.FinalCompleted] != 2 || c.Finished[feishu.FinalCancelled] != 1 || c.Created != 3 {
		t.Fatalf("the app's sums: %+v, want 2 COMPLETED, 1 CANCELLED, 3 created", c)
	}
	by := e.w.FinishedBySession()
	if s1, s2 := by[SessionKey{"a", "s1"}], by[SessionKey{"a", "s2"}]; s1[feishu.FinalCompleted] != 1 || s2[feishu.FinalCompleted] != 1 || s2[feishu.FinalCancelled] != 1 {
		t.Errorf("FinishedBySession: s1 %v, s2 %v", s1, s2)
	}
}

// TestFailureCodesOfAnAppAreCapped: at most maxFailureCodes codes an app,
// the rest as "other"; a run without a code as "unknown"; every failure
// counted, and kept for the status page.
func TestFailureCodesOfAnAppAreCapped(t *testing.T) {
	e := newCountsEnv(t, true, "s1")
	e.scrape()
	e.scrape()
	var runs []feishu.Run
	for i := range maxFailureCodes + 2 {
		runs = append(runs, failedWith(fmt.Sprintf("r%02d", i), "s1", fmt.Sprintf("code_%02d", i), float64(200+i)))
	}
	runs = append(runs, failedWith("r_nocode", "s1", "", 300))
	e.api.put(runs...)
	e.scrape()
	e.scrape()
	c := e.scrape()["s1"] // the new codes' series served at zero in two scrapes, their counts now
	if c.Finished[feishu.FinalFailed] != maxFailureCodes+3 {
		t.Errorf("FAILED %v, want %d", c.Finished[feishu.FinalFailed], maxFailureCodes+3)
	}
	total := 0.0
	codes := 0
	for code, n := range c.Failures {
		total += n
		if strings.HasPrefix(code, "code_") {
			codes++
		}
	}
	if codes != maxFailureCodes || c.Failures["other"] != 2 || c.Failures["unknown"] != 1 || total != maxFailureCodes+3 {
		t.Errorf("failures by code %v: want %d codes, other 2, unknown 1", c.Failures, maxFailureCodes)
	}
	failed := e.w.FailedRuns("a")
	if n := len(failed); n != maxFailureCodes+3 {
		t.Errorf("%d failed runs kept for the status page, want %d", n, maxFailureCodes+3)
	}
	for _, f := range failed {
		if f.Duration != 2*time.Second || !f.Timed {
			t.Errorf("failed run %s kept with duration %v (timed %v), want 2s", f.RunID, f.Duration, f.Timed)
		}
	}
}

func TestFailureCodeIsCutAndKnownCodesStay(t *testing.T) {
	a := &app{}
	long := strings.Repeat("x", maxValueBytes+10)
	if got := a.failureCode(&feishu.RunError{Code: long}); len(got) > maxValueBytes {
		t.Errorf("a code of %d bytes is a label value of %d bytes, want at most %d", len(long), len(got), maxValueBytes)
	}
	for i := range maxFailureCodes {
		a.failureCode(&feishu.RunError{Code: fmt.Sprint("c", i)})
	}
	if got := a.failureCode(&feishu.RunError{Code: "c3"}); got != "c3" {
		t.Errorf("a code already admitted, once the cap is reached: %q, want c3", got)
	}
	if got := a.failureCode(&feishu.RunError{Code: "new"}); got != "other" {
		t.Errorf("a new code past the cap: %q, want other", got)
	}
	if got := a.failureCode(nil); got != "unknown" {
		t.Errorf("no error: %q, want unknown", got)
	}
}

// TestUndocumentedStatusesAreKeptUpToTheCap: aily_runs keeps reporting the
// statuses the API added, sorted, at most maxExtraStatuses, none documented
// and none longer than a label value.
func TestUndocumentedStatusesAreKeptUpToTheCap(t *testing.T) {
	in := map[feishu.RunStatus]int{feishu.StatusInProgress: 1, feishu.RunStatus(strings.Repeat("L", maxValueBytes+1)): 1}
	for i := range maxExtraStatuses + 3 {
		in[feishu.RunStatus(fmt.Sprintf("NEW_%02d", i))] = 1
	}
	got := noteStatuses([]feishu.RunStatus{"NEW_05"}, in)
	if len(got) != maxExtraStatuses || !slices.IsSorted(got) {
		t.Fatalf("extra statuses %v: want %d, sorted", got, maxExtraStatuses)
	}
	seen := map[feishu.RunStatus]bool{}
	for _, st := range got {
		if slices.Contains(feishu.KnownStatuses(), st) || len(st) > maxValueBytes || seen[st] {
			t.Errorf("extra statuses %v hold %q", got, st)
		}
		seen[st] = true
	}
	if !seen["NEW_05"] {
		t.Errorf("extra statuses %v lost NEW_05, noted before", got)
	}
	if got := noteStatuses(nil, map[feishu.RunStatus]int{"ONLY": 1}); !slices.Equal(got, []feishu.RunStatus{"ONLY"}) {
		t.Errorf("one new status: %v", got)
	}
}

func TestFailedRunsKeepTheMostRecent(t *testing.T) {
	var r failedRing
	for i := range MaxFailedRuns + 5 {
		r.add(FailedRun{RunID: fmt.Sprint(i)})
	}
	got := r.newestFirst()
	if len(got) != MaxFailedRuns || got[0].RunID != fmt.Sprint(MaxFailedRuns+4) || got[len(got)-1].RunID != "5" {
		t.Errorf("%d runs kept, newest %q, oldest %q; want %d, %d and 5", len(got), got[0].RunID, got[len(got)-1].RunID,
			MaxFailedRuns, MaxFailedRuns+4)
	}
	var few failedRing
	few.add(FailedRun{RunID: "a"})
	few.add(FailedRun{RunID: "b"})
	if got := few.newestFirst(); len(got) != 2 || got[0].RunID != "b" || got[1].RunID != "a" {
		t.Errorf("two runs: %v, want b then a", got)
	}
}

func TestFailedRunLogIsBoundedPerSecond(t *testing.T) {
	logs := &testkit.LogBuffer{}
	l := &failureLog{logger: log.NewLogfmtLogger(logs)}
	lines := func(msg string) int { return strings.Count(logs.String(), msg) }
	t1 := at(1000)
	for i := range FailedRunsLoggedPerSecond + 5 {
		l.log(&FailedRun{App: "a", RunID: fmt.Sprint("r", i), Timed: i > 0, Duration: 2 * time.Second}, t1)
	}
	if n := lines(`msg="Run failed"`); n != FailedRunsLoggedPerSecond {
		t.Fatalf("%d runs logged in one second, want %d", n, FailedRunsLoggedPerSecond)
	}
	if !strings.Contains(logs.String(), "run_id=r0 error_code= error_message= duration=unknown") ||
		!strings.Contains(logs.String(), "run_id=r1 error_code= error_message= duration=2s") {
		t.Errorf("durations logged: want unknown without timestamps, 2s with:\n%s", logs)
	}
	l.flush(t1.Add(time.Second - time.Millisecond))
	if n := lines("more failed runs"); n != 0 {
		t.Fatalf("summarised before the second passed")
	}
	l.flush(t1.Add(time.Second))
	if !strings.Contains(logs.String(), `msg="5 more failed runs of app a in the last second" app=a not_logged=5`) {
		t.Fatalf("no summary of the 5 left out once the second passed:\n%s", logs)
	}
	l.flush(t1.Add(2 * time.Second))
	if n := lines("more failed runs"); n != 1 {
		t.Errorf("%d summaries, want 1", n)
	}

	// A new second begins at a failed run too, and after the clock went back.
	t2 := at(2000)
	for i := range FailedRunsLoggedPerSecond + 1 {
		l.log(&FailedRun{App: "a", RunID: fmt.Sprint("s", i)}, t2)
	}
	l.log(&FailedRun{App: "a", RunID: "next"}, t2.Add(time.Second))
	if n := lines("more failed runs"); n != 2 || !strings.Contains(logs.String(), "run_id=next") {
		t.Errorf("a failed run a second later: %d summaries, want 2, and the run logged", n)
	}
	l.log(&FailedRun{App: "a", RunID: "back"}, t2)
	if !strings.Contains(logs.String(), "run_id=back") {
		t.Error("a failed run after the clock went back is not logged")
	}
	for i := range FailedRunsLoggedPerSecond + 3 {
		l.log(&FailedRun{App: "gone", RunID: fmt.Sprint("g", i)}, t2)
	}
	l.forget(func(app string) bool { return app != "gone" })
	if !strings.Contains(logs.String(), `msg="3 more failed runs of app gone in the last second"`) {
		t.Errorf("an app no longer configured: its left-out runs not summarised:\n%s", logs)
	}
	if _, ok := l.apps["gone"]; ok {
		t.Error("an app no longer configured keeps its logging state")
	}
	if _, ok := l.apps["a"]; !ok {
		t.Error("forget dropped an app still configured")
	}
}

func TestValuesFromTheAPIAreCut(t *testing.T) {
	exact := strings.Repeat("x", maxValueBytes)
	if got := BoundedValue(exact); got != exact {
		t.Errorf("a value of %d bytes is cut", maxValueBytes)
	}
	if got := BoundedValue(exact + "y"); len(got) != maxValueBytes || !strings.HasSuffix(got, "…") {
		t.Errorf("a value of %d bytes: %d bytes %q, want %d ending with …", maxValueBytes+1, len(got), got, maxValueBytes)
	}
	wide := strings.Repeat("é", maxValueBytes) // 2 bytes each
	if got := BoundedValue(wide); len(got) > maxValueBytes || !utf8.ValidString(got) || len(got) < maxValueBytes-4 {
		t.Errorf("a value of 2-byte runes: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}

	if got := truncateBytes("abcdef", 6); got != "abcdef" {
		t.Errorf("truncateBytes at its length: %q", got)
	}
	if got := truncateBytes("abcdefg", 6); got != "abc…" {
		t.Errorf("truncateBytes(abcdefg, 6) = %q, want abc…", got)
	}
	if got := truncateBytes("ééééé", 7); got != "éé…" && !utf8.ValidString(got) {
		t.Errorf("truncateBytes cuts inside a rune: %q", got)
	}
	if got := truncateBytes("aaééé", 6); got != "aa…" {
		t.Errorf("truncateBytes(aaééé, 6) = %q, want aa… (no half rune)", got)
	}

	if got := escapeControl("abcdef", 6); got != "abcdef" {
		t.Errorf("escapeControl at exactly its limit: %q", got)
	}
	if got := escapeControl("abcdefg", 6); len(got) > 6 || !strings.HasSuffix(got, "…") {
		t.Errorf("escapeControl past its limit: %q", got)
	}
	if got := escapeControl("a\nb", 10); got != `a\nb` {
		t.Errorf("escapeControl(a\\nb) = %q", got)
	}
}

// memSaver keeps the last state saved.
type memSaver struct{ st *State }

func (m *memSaver) Save(st *State) error { m.st = st; return nil }

// restartedEnv returns a new watcher of the same app over the same API,
// restored from what e's watcher saved, as the exporter restarts.
func (e *countsEnv) restarted(perSession bool, identity string, sessions ...string) (*countsEnv, error) {
	e.t.Helper()
	saver := &memSaver{}
	e.w.opts.Saver = saver
	if err := e.w.Save(); err != nil {
		e.t.Fatal(err)
	}
	n := &countsEnv{t: e.t, clk: e.clk, api: e.api}
	n.w = New(Options{Now: e.clk.Now, MinInterval: -1, IdleInterval: time.Nanosecond})
	apps := []App{{Name: "a", API: e.api, PerSession: perSession, Identity: identity, Sessions: sessions}}
	err := n.w.Restore(saver.st, apps)
	n.w.SetApps(apps)
	return n, err
}

func TestCountsCarryOnAcrossARestart(t *testing.T) {
	for _, perSession := range []bool{true, false} {
		t.Run(fmt.Sprint("per_session=", perSession), func(t *testing.T) {
			e := newCountsEnv(t, perSession, "s1")
			e.scrape()
			e.scrape()
			e.api.put(run("r1", feishu.StatusCompleted, 200, 201, 204), failedWith("r2", "s1", "E1", 205),
				run("r3", feishu.StatusInProgress, 207, 208, none))
			e.scrape()
			e.scrape()
			before := e.scrape()
			key := "s1"
			if !perSession {
				key = ""
			}
			b := before[key]
			if b == nil || b.Failures["E1"] != 1 {
				t.Fatalf("before the restart: %+v, want E1 counted", b)
			}
			// A new code counted just before the restart: still held.
			e.api.put(failedWith("r4", "s1", "E2", 209))
			e.scrape()

			n, err := e.restarted(perSession, "", "s1")
			if err != nil {
				t.Fatal(err)
			}
			n.api.put(run("r3", feishu.StatusCompleted, 207, 208, 212)) // ended meanwhile
			n.scrape()
			n.scrape()
			c := n.scrape()[key]
			if c == nil {
				t.Fatal("no counts after the restart")
			}
			if c.Finished[feishu.FinalCompleted] != 2 || c.Finished[feishu.FinalFailed] != 2 || c.Created != 4 {
				t.Errorf("after the restart: finished %v, created %v; want 2 COMPLETED (one ended meanwhile), 2 FAILED, 4 created",
					c.Finished, c.Created)
			}
			if c.Failures["E1"] != 1 || c.Failures["E2"] != 1 {
				t.Errorf("failures after the restart: %v, want E1 1 and the held E2 1", c.Failures)
			}
			if h := c.Duration[feishu.FinalCompleted]; h == nil || h.Count() != 2 {
				t.Errorf("COMPLETED durations after the restart: %v, want 2", h)
			}
			if h := c.Queue; h == nil || h.Count() != 4 {
				t.Errorf("queue times after the restart: %v, want 4", h)
			}
		})
	}
}

// TestRestoreDropsWhatNoLongerFits: another identity drops the app's
// counts (its runs are another app's), per_session changed starts them
// afresh under the new shape, and a state of none of the configured apps is
// foreign.
func TestRestoreDropsWhatNoLongerFits(t *testing.T) {
	setup := func() *countsEnv {
		e := newCountsEnv(t, true, "s1")
		e.scrape()
		e.scrape()
		e.api.put(run("r1", feishu.StatusCompleted, 200, 201, 204))
		e.scrape()
		e.scrape()
		return e
	}
	finished := func(e *countsEnv) float64 {
		var n float64
		for _, c := range e.scrape() {
			n += c.Finished[feishu.FinalCompleted]
		}
		return n
	}
	if n, err := setup().restarted(true, "", "s1"); err != nil || finished(n) != 1 {
		t.Errorf("same app: err %v, COMPLETED %v; want the count carried on", err, finished(n))
	}
	if n, err := setup().restarted(true, "other-credentials", "s1"); err != ErrForeignState || finished(n) != 0 {
		t.Errorf("another identity: err %v, COMPLETED %v; want ErrForeignState and nothing carried on", err, finished(n))
	}
	if n, err := setup().restarted(false, "", "s1"); err != nil || finished(n) != 0 {
		t.Errorf("per_session changed: err %v, COMPLETED %v; want the counts afresh", err, finished(n))
	}
}

// TestUndocumentedStatusesOfRunsInFlightAreServed: a status the API added,
// seen on a run in flight, is served with the session's counts (aily_runs
// keeps reporting it at 0 once no run is in it); one of exactly a label
// value's size is kept, a longer one is not.
func TestUndocumentedStatusesOfRunsInFlightAreServed(t *testing.T) {
	e := newCountsEnv(t, true, "s1", "s2")
	exact := feishu.RunStatus(strings.Repeat("N", maxValueBytes))
	e.api.put(inSession(run("r1", "PAUSED", 1, 2, none), "s1"), inSession(run("r2", exact, 3, 4, none), "s1"),
		inSession(run("r3", exact+"X", 5, 6, none), "s2"))
	got := e.scrape()
	if c := got["s1"]; c == nil || !slices.Equal(c.Extra, []feishu.RunStatus{exact, "PAUSED"}) {
		t.Errorf("s1 serves extra statuses %v, want %q and PAUSED", c, exact)
	}
	if c := got["s2"]; c != nil && len(c.Extra) != 0 {
		t.Errorf("s2 serves extra statuses %v, want none (longer than a label value)", c.Extra)
	}
	e.api.put(inSession(run("r4", "WAITING", 7, 8, none), "s1"))
	if c := e.scrape()["s1"]; c == nil || !slices.Contains(c.Extra, "WAITING") || !slices.Contains(c.Extra, "PAUSED") {
		t.Errorf("a second undocumented status: s1 serves %v, want PAUSED and WAITING", c)
	}
}

func TestFailedRunsOfEveryApp(t *testing.T) {
	w := New(Options{MinInterval: flagMinInterval, Now: func() time.Time { return t0 }})
	w.SetApps([]App{{Name: "a", Sessions: []string{"s"}}, {Name: "b", Sessions: []string{"s"}}})
	w.countMu.Lock()
	w.apps["a"].failed.add(FailedRun{App: "a", RunID: "ra", Time: t0})
	w.apps["b"].failed.add(FailedRun{App: "b", RunID: "rb", Time: t0.Add(time.Second)})
	w.countMu.Unlock()
	if got := w.FailedRuns(""); len(got) != 2 || got[0].RunID != "rb" {
		t.Errorf("every app's failed runs: %v, want rb then ra", got)
	}
	if got := w.FailedRuns("a"); len(got) != 1 || got[0].RunID != "ra" {
		t.Errorf("app a's failed runs: %v, want ra", got)
	}
}

// TestASeriesIsReadyAfterTwoScrapesServedItAtZero: the first increment of a
// series waits until two distinct scrapes served it at zero, the first at
// least the hold ago.
func TestASeriesIsReadyAfterTwoScrapesServedItAtZero(t *testing.T) {
	var m servedMark
	if m.ready(t0.Add(time.Hour), 0) {
		t.Fatal("a series never served is ready")
	}
	m.serve(1, t0)
	m.serve(1, t0.Add(time.Second)) // the same scrape again
	if m.ready(t0.Add(time.Hour), 0) {
		t.Error("a series served by one scrape, twice, is ready")
	}
	m.serve(2, t0.Add(2*time.Second))
	if !m.first.Equal(t0) {
		t.Errorf("first served at %v, want the first scrape's %v", m.first, t0)
	}
	if m.ready(t0.Add(4*time.Second), 5*time.Second) {
		t.Error("ready 4 s after it was first served, with a hold of 5 s")
	}
	if !m.ready(t0.Add(5*time.Second), 5*time.Second) {
		t.Error("not ready 5 s after it was first served, with a hold of 5 s, and served twice")
	}
	m.serve(3, t0.Add(10*time.Second))
	if !m.ready(t0.Add(10*time.Second), 5*time.Second) || m.scrapes != readyAfterScrapes {
		t.Errorf("a third scrape: ready %v, scrapes %d", m.ready(t0.Add(10*time.Second), 5*time.Second), m.scrapes)
	}
}

// TestAFailureOfAShownCodeIsCountedAtOnce: a code whose series is shown
// counts at once; a new one is held, and its series marked to be served at
// zero; a held code's further failures are held with it.
func TestAFailureOfAShownCodeIsCountedAtOnce(t *testing.T) {
	cs := &counts{Counts: Counts{Failures: map[string]float64{"shown": 1}}}
	cs.countFailure("shown", histogram.Exemplar{RunID: "r1"})
	if cs.Failures["shown"] != 2 || cs.held != nil {
		t.Errorf("a shown code: failures %v, held %v; want 2 shown, nothing held", cs.Failures, cs.held)
	}
	cs.countFailure("new", histogram.Exemplar{RunID: "r2"})
	cs.countFailure("new", histogram.Exemplar{RunID: "r3"})
	if _, shown := cs.Failures["new"]; shown || cs.held == nil || cs.held.Failures["new"] != 2 || cs.newCodes["new"] == nil {
		t.Errorf("a new code: failures %v, held %+v, new codes %v; want 2 held and a mark", cs.Failures, cs.held, cs.newCodes)
	}
	if cs.FailureExemplars["new"].RunID != "r3" {
		t.Errorf("exemplar of the new code: %v, want the latest run r3", cs.FailureExemplars["new"])
	}
	// Released once served at zero twice: shown, and nothing left held.
	cs.newCodes["new"].serve(1, t0)
	cs.newCodes["new"].serve(2, t0)
	if !cs.releaseCodes(t0, 0) || cs.Failures["new"] != 2 || cs.held != nil || cs.newCodes != nil {
		t.Errorf("released: failures %v, held %+v, new codes %v; want 2 shown, nothing held or new", cs.Failures, cs.held, cs.newCodes)
	}
	// A code shown once released counts at once, even shown at 0.
	cs.countFailure("new", histogram.Exemplar{RunID: "r4"})
	if cs.Failures["new"] != 3 || cs.held != nil {
		t.Errorf("after its release: failures %v, held %+v; want 3 shown", cs.Failures, cs.held)
	}
}

// failingSaver fails while fail is set, and counts the saves asked of it.
type failingSaver struct {
	fail  bool
	saves int
}

func (f *failingSaver) Save(*State) error {
	f.saves++
	if f.fail {
		return errors.New("disk full")
	}
	return nil
}

// TestAFailedSaveIsTriedAgain: a save that failed is tried again at the
// next scrape whatever changed, and once one works, an unchanged state is
// not written again.
func TestAFailedSaveIsTriedAgain(t *testing.T) {
	e := newCountsEnv(t, true, "s1")
	saver := &failingSaver{fail: true}
	e.w.opts.Saver = saver
	e.scrape()
	if _, tried := e.w.SaveChanged(); !tried || saver.saves != 1 {
		t.Fatalf("the first save after a poll: tried %v, saves %d", tried, saver.saves)
	}
	if _, tried := e.w.SaveChanged(); !tried || saver.saves != 2 {
		t.Errorf("after a failed save, nothing changed: tried %v, saves %d; want it tried again", tried, saver.saves)
	}
	saver.fail = false
	e.w.SaveChanged()
	if _, tried := e.w.SaveChanged(); tried || saver.saves != 3 {
		t.Errorf("after a save that worked, nothing changed: tried %v, saves %d; want no save", tried, saver.saves)
	}
}

func TestRestoringAnEmptyStateIsNoForeignState(t *testing.T) {
	w := New(Options{MinInterval: flagMinInterval, Now: func() time.Time { return t0 }})
	if err := w.Restore(&State{}, []App{{Name: "a", Sessions: []string{"s"}}}); err != nil {
		t.Errorf("an empty state: %v, want nil", err)
	}
}
