package watch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// runsOf returns n final runs of session, created a second apart and ended
// before t0.
func runsOf(session string, n int) []feishu.Run {
	runs := history(n)
	for i := range runs {
		runs[i].SessionID = session
		runs[i].ID = session + "/" + runs[i].ID
	}
	return runs
}

// pollWithin runs one scrape's polls with a deadline of d (wall-clock time,
// as the watcher's deadlines are).
func pollWithin(w *Watcher, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	w.Poll(ctx)
}

// snapshots returns what each session shows, by ID.
func snapshots(w *Watcher) map[string]Snapshot {
	out := map[string]Snapshot{}
	w.EachSnapshot(func(s *Snapshot) { out[s.ID] = *s })
	return out
}

// loggerFunc is a go-kit logger that can be told apart from another.
type loggerFunc struct{ log.Logger }

// flagMinInterval is --poll.min-interval's default, which Options leave to
// the command line.
const flagMinInterval = 5 * time.Second

func TestNewOptions(t *testing.T) {
	t.Run("zero options take the defaults, and zero min interval means none", func(t *testing.T) {
		o := New(Options{}).opts
		if o.MinInterval != 0 || o.IdleAfter != defaultIdleAfter || o.IdleInterval != defaultIdleInterval ||
			o.FullInterval != defaultFullInterval || o.Concurrency != DefaultConcurrency || o.Timeout != defaultTimeout ||
			o.Now == nil || o.Logger == nil {
			t.Errorf("options %+v, want the defaults", o)
		}
	})
	t.Run("options given are kept", func(t *testing.T) {
		l := &loggerFunc{log.NewNopLogger()}
		o := New(Options{MinInterval: 1, IdleAfter: 2, IdleInterval: 3, FullInterval: 4, Concurrency: 5, Timeout: 6, Logger: l}).opts
		if o.MinInterval != 1 || o.IdleAfter != 2 || o.IdleInterval != 3 || o.FullInterval != 4 || o.Concurrency != 5 || o.Timeout != 6 {
			t.Errorf("options %+v, want those given", o)
		}
		if o.Logger != log.Logger(l) {
			t.Error("the logger given was replaced")
		}
	})
	t.Run("a negative min interval means 0", func(t *testing.T) {
		if o := New(Options{MinInterval: -1}).opts; o.MinInterval != 0 {
			t.Errorf("min interval %v, want 0", o.MinInterval)
		}
	})
}

func TestPlanPollsNewSessionsThenActiveThenStaleThenByValue(t *testing.T) {
	clk := feishufake.NewClock(t0)
	w := New(Options{Now: clk.Now, MinInterval: flagMinInterval})
	mem := newMemAPI(newestFirst, 10)
	w.SetApps([]App{{Name: "a", API: mem, Sessions: []string{"busy", "idle", "inflight", "just", "pending", "quiet"}}})
	clk.Advance(24 * time.Hour)
	now := clk.Now()
	for _, s := range w.sessions {
		switch s.id {
		case "idle": // past the staleness target (5m), nothing in flight
			s.baselined, s.lastPoll = true, now.Add(-3*time.Hour)
		case "inflight":
			s.baselined, s.inflight, s.lastPoll = true, 1, now.Add(-time.Hour)
		case "just": // polled within the min interval: not again
			s.baselined, s.lastPoll = true, now.Add(-time.Second)
		case "quiet", "busy": // equally stale; busy had runs lately
			s.baselined, s.lastPoll = true, now.Add(-time.Minute)
		}
		if s.id == "busy" {
			s.noteActivity(&w.opts, now.Add(-2*time.Minute), 5)
		}
	}
	cands, _ := w.plan(now)
	var got []string
	for _, c := range cands {
		got = append(got, c.s.id)
	}
	if want := []string{"pending", "inflight", "idle", "busy", "quiet"}; !slices.Equal(got, want) {
		t.Errorf("planned %v, want %v (never polled, in flight, past the staleness target, then by the value of a poll)", got, want)
	}
}

func TestPollValueGrowsWithStalenessAndActivity(t *testing.T) {
	o := &Options{IdleAfter: 10 * time.Minute}
	now := t0
	quiet, busy := &Session{}, &Session{}
	busy.noteActivity(o, now, 10)
	if q1, q2 := quiet.pollValue(o, now, time.Minute), quiet.pollValue(o, now, 2*time.Minute); q2 <= q1 {
		t.Errorf("quiet session: value %g after 2m, not above %g after 1m", q2, q1)
	}
	if q, b := quiet.pollValue(o, now, time.Minute), busy.pollValue(o, now, time.Minute); b <= q {
		t.Errorf("after 1m: busy session's value %g not above the quiet one's %g", b, q)
	}
	// Activity fades with the idle-after time constant.
	if a, b := busy.activityAt(o, now), busy.activityAt(o, now.Add(10*time.Minute)); b >= a/2 {
		t.Errorf("activity %g ten minutes later, want well under %g", b, a)
	}
}

func TestFullListingsAreSpreadOverTheFullInterval(t *testing.T) {
	const every = 6 * time.Hour
	seen := map[time.Duration]bool{}
	for i := range 20 {
		off := fullListingOffset("a", fmt.Sprintf("s%02d", i), every)
		if off < 0 || off >= every {
			t.Errorf("offset of s%02d: %v, want within [0, %v)", i, off, every)
		}
		seen[off] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 sessions got %d distinct offsets, want them spread", len(seen))
	}
	if off := fullListingOffset("a", "s00", 0); off != 0 {
		t.Errorf("offset with no full interval: %v, want 0", off)
	}
}

func TestBudgets(t *testing.T) {
	// A rate of 1 req/s and a 10.5 s deadline: a budget of 11 requests
	// (a burst of one second's worth, then the rate).
	const rate, deadline, budget = 1, 10500 * time.Millisecond, 11

	t.Run("one poll spends at most half the budget while others are due", func(t *testing.T) {
		mem := newMemAPI(newestFirst, 10)
		mem.put(runsOf("big", 200)...)
		mem.put(runsOf("small", 5)...)
		w := New(Options{MinInterval: flagMinInterval, Now: feishufake.NewClock(t0).Now, RateLimit: rate})
		w.SetApps([]App{{Name: "a", API: mem, Sessions: []string{"big", "small"}}})
		pollWithin(w, deadline)
		if got := mem.listed("big"); got != budget/2 {
			t.Errorf("the long baseline made %d requests, want %d (half the budget)", got, budget/2)
		}
		if got := mem.listed("small"); got != 1 {
			t.Errorf("the other session made %d requests, want 1", got)
		}
	})
	t.Run("a session due alone may spend the whole budget, and its cut baseline shows up and pending", func(t *testing.T) {
		mem := newMemAPI(newestFirst, 10)
		mem.put(runsOf("big", 200)...)
		w := New(Options{MinInterval: flagMinInterval, Now: feishufake.NewClock(t0).Now, RateLimit: rate})
		w.SetApps([]App{{Name: "a", API: mem, Sessions: []string{"big"}}})
		pollWithin(w, deadline)
		if got := mem.listed("big"); got != budget {
			t.Errorf("the baseline made %d requests, want %d (the whole budget)", got, budget)
		}
		snap := snapshots(w)["big"]
		if !snap.Polled || !snap.Up || snap.State != Pending {
			t.Errorf("after a baseline cut by the budget: polled %v, up %v, state %s; want polled, up, pending", snap.Polled, snap.Up, snap.State)
		}
	})
	t.Run("polls running together never exceed the app's budget", func(t *testing.T) {
		mem := newMemAPI(newestFirst, 10)
		for _, s := range []string{"s1", "s2", "s3"} {
			mem.put(runsOf(s, 200)...)
		}
		// The first page of each waits for the others: all three polls are
		// under way before any spends more than one request.
		var first sync.WaitGroup
		first.Add(3)
		mem.onPage = func(page int) {
			if page <= 3 {
				first.Done()
				first.Wait()
			}
		}
		w := New(Options{MinInterval: flagMinInterval, Now: feishufake.NewClock(t0).Now, RateLimit: rate})
		w.SetApps([]App{{Name: "a", API: mem, Sessions: []string{"s1", "s2", "s3"}}})
		pollWithin(w, deadline)
		if lists, _ := mem.requests(); lists != budget {
			t.Errorf("three polls of long baselines made %d requests, want the budget, %d", lists, budget)
		}
	})
	t.Run("sessions the budget cannot reach are overdue", func(t *testing.T) {
		mem := newMemAPI(newestFirst, 10)
		w := New(Options{MinInterval: flagMinInterval, Now: feishufake.NewClock(t0).Now, RateLimit: 0.01})
		w.SetApps([]App{{Name: "a", API: mem, Sessions: []string{"s1", "s2", "s3"}}})
		pollWithin(w, deadline)
		if lists, _ := mem.requests(); lists != 1 {
			t.Errorf("a budget of 1 request: %d made", lists)
		}
		if got := w.Overdue()["a"]; got != 2 {
			t.Errorf("overdue %d, want 2", got)
		}
	})
}

// brokenAPI answers every request with a server error.
type brokenAPI struct{ memAPI }

func (*brokenAPI) ListRunsPage(context.Context, string, string) (feishu.RunsPage, error) {
	return feishu.RunsPage{}, &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: http.StatusInternalServerError, Code: -1, Msg: "boom"}
}

func TestSessionStates(t *testing.T) {
	// Watched from an hour after the runs were created: none is recent.
	clk := feishufake.NewClock(t0.Add(time.Hour))
	mem := newMemAPI(newestFirst, 10)
	mem.put(runsOf("history", 30)...)
	mem.put(runsOf("busy", 30)...)
	mem.put(feishu.Run{ID: "busy/r", SessionID: "busy", Status: inProgress, CreatedAt: at(-5)})
	w := New(Options{MinInterval: flagMinInterval, Now: clk.Now})
	w.SetApps([]App{
		{Name: "a", API: mem, Sessions: []string{"busy", "history"}},
		{Name: "b", API: &brokenAPI{}, Sessions: []string{"broken"}},
	})
	pollWithin(w, 10*time.Second)
	clk.Advance(time.Second)
	snaps := snapshots(w)
	for id, want := range map[string]SessionState{"busy": Active, "history": Idle, "broken": Failing} {
		if got := snaps[id].State; got != want {
			t.Errorf("session %s: state %s, want %s", id, got, want)
		}
	}
	if err := snaps["broken"].Err; err == nil || errors.Is(err, errCutOff) {
		t.Errorf("session broken: error %v, want the API's error, not a cut-off", err)
	}
}

func TestPollCutByTheBudgetAfterAGetRunCountsAsAPoll(t *testing.T) {
	clk := feishufake.NewClock(t0)
	mem := newMemAPI(newestFirst, 10)
	mem.put(longHistory(100, 10)...)
	w := New(Options{Now: clk.Now, RateLimit: 1, MinInterval: flagMinInterval})
	w.SetApps([]App{{Name: "a", API: mem, Sessions: []string{"s1"}}})
	pollWithin(w, 20*time.Second) // a budget of 21: the baseline's 10 pages
	if !snapshots(w)["s1"].Up {
		t.Fatal("baseline failed")
	}
	clk.Advance(10 * time.Second)
	mem.requests()
	// A budget of 1: the first page, then the get run of the run in flight
	// deep down is refused.
	pollWithin(w, 500*time.Millisecond)
	if lists, gets := mem.requests(); lists != 1 || gets != 0 {
		t.Fatalf("poll with a budget of 1 made %d list and %d get requests, want 1 and 0", lists, gets)
	}
	// It read a page: the session is not due again before the min interval.
	pollWithin(w, 20*time.Second)
	if lists, gets := mem.requests(); lists+gets != 0 {
		t.Errorf("a scrape right after made %d requests, want none: the session was polled", lists+gets)
	}
	if snap := snapshots(w)["s1"]; !snap.Up {
		t.Errorf("session down after a poll cut by the budget: %v", snap.Err)
	}
}

// lateAPI answers the first page as the poll's deadline passes.
type lateAPI struct{ *memAPI }

func (a lateAPI) ListRunsPage(ctx context.Context, session, token string) (feishu.RunsPage, error) {
	<-ctx.Done()
	return a.memAPI.ListRunsPage(context.Background(), session, token)
}

func TestPollAnsweredAsTheDeadlinePassesIsNotCutOff(t *testing.T) {
	mem := newMemAPI(newestFirst, 10)
	mem.put(longHistory(5, -1)...)
	w := New(Options{Now: feishufake.NewClock(t0).Now, MinInterval: flagMinInterval})
	w.SetApps([]App{{Name: "a", API: lateAPI{mem}, Sessions: []string{"s1"}}})
	pollWithin(w, 50*time.Millisecond)
	// The next scrape waits for the poll still under way (the session is
	// not due again).
	pollWithin(w, 10*time.Second)
	if snap := snapshots(w)["s1"]; !snap.Up || snap.State == Failing {
		t.Errorf("session answered at the deadline: up %v, state %s, error %v; want up", snap.Up, snap.State, snap.Err)
	}
}
