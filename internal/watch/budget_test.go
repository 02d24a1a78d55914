package watch

import (
	"fmt"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

func TestDailyBudgetBucket(t *testing.T) {
	b := newDailyBudget(86400, t0) // 1 request a second on average
	if got, unl := b.reserve(1000, t0); unl || got != 300 {
		t.Fatalf("a fresh budget lends %d (unlimited %v), want the burst allowance, 300 (5 minutes' worth)", got, unl)
	}
	b.settle(300, 100, t0)
	if got, _ := b.reserve(1000, t0); got != 200 {
		t.Errorf("after spending 100 of 300: %d left, want 200", got)
	}
	b.settle(200, 200, t0)
	// It refills at (86400 − 300)/day: a little under 1 a second.
	if got, _ := b.reserve(1000, t0.Add(100*time.Second)); got != 99 {
		t.Errorf("100 s after running dry: %d, want 99", got)
	}
	if got, unl := newDailyBudget(0, t0).reserve(7, t0); !unl || got != 7 {
		t.Errorf("no daily budget: %d (unlimited %v), want all 7, unlimited", got, unl)
	}
}

func TestSpendIsProjectedFromTheLastHour(t *testing.T) {
	b := newDailyBudget(0, t0)
	for m := range 120 {
		b.settle(0, 10, t0.Add(time.Duration(m)*time.Minute))
	}
	if got := b.status(t0.Add(119 * time.Minute)).ProjectedPerDay; got != 10*60*24 {
		t.Errorf("10 requests a minute: projected %v a day, want %v", got, 10*60*24)
	}
	early := newDailyBudget(0, t0)
	early.settle(0, 50, t0.Add(5*time.Minute))
	if got := early.status(t0.Add(10 * time.Minute)).ProjectedPerDay; got != 50*6*24 {
		t.Errorf("50 requests in the first 10 minutes: projected %v a day, want %v", got, 50*6*24)
	}
}

// A simulated day of scrapes every 10 s over 40 sessions with a budget of
// 21,600 requests a day: no hour spends more than its share plus the burst
// allowance, the day no more than the budget, and the spare budget is spent.
func TestSimulatedDayStaysWithinTheDailyBudget(t *testing.T) {
	const perDay = 21600
	clk := feishufake.NewClock(t0)
	mem := newMemAPI(newestFirst, 10)
	var ids []string
	for i := range 40 {
		id := fmt.Sprintf("s%02d", i)
		ids = append(ids, id)
		mem.put(runsOf(id, 3)...)
	}
	w := New(Options{MinInterval: flagMinInterval, Now: clk.Now})
	w.SetApps([]App{{Name: "a", API: mem, Sessions: ids, DailyBudget: perDay}})
	hourly := make([]int, 24)
	day := 0
	for i := range 24 * 360 {
		pollWithin(w, 10*time.Second)
		lists, gets := mem.requests()
		hourly[i/360] += lists + gets
		day += lists + gets
		clk.Advance(10 * time.Second)
	}
	limit := perDay/24 + perDay*300/86400
	for h, n := range hourly {
		if n > limit {
			t.Errorf("hour %d spent %d requests, want at most %d (the hourly share and the burst allowance)", h, n, limit)
		}
	}
	if day > perDay {
		t.Errorf("the day spent %d requests, want at most %d", day, perDay)
	}
	if day < perDay*95/100 {
		t.Errorf("the day spent %d requests of %d: spare budget was saved, not spent", day, perDay)
	}
	if got := w.Budgets()["a"].ProjectedPerDay; got < perDay*9/10 || got > perDay*11/10 {
		t.Errorf("projected spend %v a day, want about %d", got, perDay)
	}
}

// 1,000 sessions added to 100 baselined ones, at 20 requests a second (200
// a scrape) and scrapes every 10 s: every new session is listed by the fifth
// scrape, 40 s on, before any old one is polled again.
func TestNeverPolledSessionsComeFirst(t *testing.T) {
	clk := feishufake.NewClock(t0)
	mem := newMemAPI(newestFirst, 10)
	var old, all []string
	for i := range 100 {
		old = append(old, fmt.Sprintf("old%03d", i))
	}
	w := New(Options{MinInterval: flagMinInterval, Now: clk.Now, RateLimit: 20})
	w.SetApps([]App{{Name: "a", API: mem, Sessions: old, DailyBudget: 1_000_000}})
	pollWithin(w, 10*time.Second)
	clk.Advance(10 * time.Second)
	all = append(all, old...)
	for i := range 1000 {
		all = append(all, fmt.Sprintf("new%04d", i))
	}
	w.SetApps([]App{{Name: "a", API: mem, Sessions: all, DailyBudget: 1_000_000}})
	mem.requests()
	for scrape := 1; scrape <= 5; scrape++ {
		pollWithin(w, 10*time.Second)
		clk.Advance(10 * time.Second)
		waiting := 0
		for i := range 1000 {
			if mem.listed(fmt.Sprintf("new%04d", i)) == 0 {
				waiting++
			}
		}
		if waiting == 0 {
			return
		}
		for _, id := range old {
			if n := mem.listed(id); n > 1 {
				t.Fatalf("scrape %d polled old session %s again while %d new sessions waited", scrape, id, waiting)
			}
		}
	}
	t.Fatal("new sessions still waiting after five scrapes (50 s)")
}

// A session with a run in flight for a long time is polled every
// --poll.min-interval only while the budget allows it: with a budget for one
// request every 10 s over 10 sessions it waits half a round robin (50 s)
// between polls, and every quiet session is still polled within 1.5 round
// robins.
func TestRunsInFlightDoNotStarveTheOthers(t *testing.T) {
	clk := feishufake.NewClock(t0)
	mem := newMemAPI(newestFirst, 10)
	ids := []string{"busy"}
	for i := range 9 {
		ids = append(ids, fmt.Sprintf("quiet%d", i))
	}
	mem.put(feishu.Run{ID: "long", SessionID: "busy", Status: feishu.StatusInProgress, CreatedAt: t0.Add(-time.Second)})
	w := New(Options{MinInterval: flagMinInterval, Now: clk.Now})
	w.SetApps([]App{{Name: "a", API: mem, Sessions: ids, DailyBudget: 8640}}) // 0.1 a second
	last := map[string]time.Time{}
	worst := map[string]time.Duration{}
	for range 200 {
		before := map[string]int{}
		for _, id := range ids {
			before[id] = mem.listed(id)
		}
		pollWithin(w, 10*time.Second)
		now := clk.Now()
		for _, id := range ids {
			if mem.listed(id) > before[id] {
				if l, ok := last[id]; ok {
					worst[id] = max(worst[id], now.Sub(l))
				}
				last[id] = now
			}
		}
		clk.Advance(10 * time.Second)
	}
	if worst["busy"] < 50*time.Second {
		t.Errorf("the session with a run in flight was polled again after %v, want at least 50 s (half of 10 sessions at 0.1/s)", worst["busy"])
	}
	for _, id := range ids[1:] {
		if worst[id] == 0 || worst[id] > 150*time.Second {
			t.Errorf("quiet session %s waited up to %v between polls, want at most 150 s", id, worst[id])
		}
	}
}

// A session quiet for an hour that wakes up with a short run has it counted
// within the round-robin bound: 40 sessions at the default budget (1.16
// requests a second), scraped every 10 s, are each polled within 40 s.
func TestQuietSessionThatWakesUpIsCountedWithinTheBound(t *testing.T) {
	clk := feishufake.NewClock(t0)
	mem := newMemAPI(newestFirst, 50)
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("s%02d", i))
	}
	rec := &delayRecorder{now: clk.Now, from: t0}
	w := NewRecorded(Options{MinInterval: flagMinInterval, Now: clk.Now}, rec)
	w.SetApps([]App{{Name: "a", API: mem, Sessions: ids, DailyBudget: 100000}})
	for range 360 { // an hour
		pollWithin(w, 10*time.Second)
		clk.Advance(10 * time.Second)
	}
	bound := 40 / (100000.0 / 86400)
	for i, id := range []string{"s07", "s23", "s31"} {
		start := clk.Now().Add(time.Duration(i) * time.Second)
		mem.put(feishu.Run{ID: id + "/wake", SessionID: id, Status: feishu.StatusCompleted,
			CreatedAt: start, StartedAt: start, EndedAt: start.Add(5 * time.Second)})
	}
	for range 12 {
		clk.Advance(10 * time.Second)
		pollWithin(w, 10*time.Second)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.delays) != 3 {
		t.Fatalf("%d of the 3 runs counted", len(rec.delays))
	}
	for _, d := range rec.delays {
		if d > bound {
			t.Errorf("a run was counted %.0f s after its end, want within the bound, %.0f s", d, bound)
		}
	}
}

func TestSpendOfMinutesAnHourOldIsLeftOut(t *testing.T) {
	b := newDailyBudget(0, t0)
	for m := range 60 {
		b.settle(0, 10, t0.Add(time.Duration(m)*time.Minute))
	}
	// An hour on, minute 0 has left the window; no request this minute.
	if got, want := b.status(t0.Add(60*time.Minute)).ProjectedPerDay, float64(59*10*24); got != want {
		t.Errorf("projected %v a day, want %v (minutes 1–59 of the last hour)", got, want)
	}
}
