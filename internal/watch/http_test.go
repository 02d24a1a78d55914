package watch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

var t0 = testkit.T0

// api is the fake Feishu API over real HTTP, with the requests it answered
// logged by session, and the watcher's client for it.
type api struct {
	fake   *feishufake.Fake
	clock  *feishufake.Clock
	client *feishu.Client
	url    string

	mu  sync.Mutex
	log []string // session of each list-runs or get-run request, in order
}

func newAPI(t *testing.T, pageSize int) *api {
	t.Helper()
	a := &api{clock: feishufake.NewClock(t0)}
	a.fake = feishufake.New(feishufake.Options{Now: a.clock.Now})
	a.fake.AddApp("cli_test", "secret")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/open-apis/aily/v1/sessions/"); ok {
			a.mu.Lock()
			a.log = append(a.log, strings.Split(rest, "/")[0])
			a.mu.Unlock()
		}
		a.fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	c, err := feishu.NewClient(feishu.Config{
		BaseURL: srv.URL, AppID: "cli_test", AppSecret: "secret", PageSize: pageSize,
		MaxConcurrency: 8, Now: a.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.client = c
	return a
}

// requests returns the sessions of the run requests made since the last call.
func (a *api) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.log
	a.log = nil
	return out
}

// counter records what polls count, run by run.
type counter struct {
	mu       sync.Mutex
	finished map[string]int
	created  map[string]int
}

func newCounter() *counter { return &counter{finished: map[string]int{}, created: map[string]int{}} }

func (c *counter) Record(_ *watch.Session, obs *watch.Observation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range obs.Finished {
		c.finished[f.Run.ID]++
	}
	for _, r := range obs.Created {
		c.created[r.ID]++
	}
}

// poll runs one scrape's polls with a deadline of d.
func poll(w *watch.Watcher, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	w.Poll(ctx)
}

func runAt(session, id string, st feishu.RunStatus, created, ended time.Time) feishu.Run {
	r := feishu.Run{ID: id, SessionID: session, AppID: "spring_test__c", Status: st, CreatedAt: created, StartedAt: created}
	if st.Final() {
		r.EndedAt = ended
	}
	return r
}

func TestLongHistoryOverHTTP(t *testing.T) {
	for _, order := range []feishufake.Order{feishufake.NewestFirst, feishufake.OldestFirst} {
		t.Run(order.String(), func(t *testing.T) {
			a := newAPI(t, 50)
			a.fake.SetOrder(order)
			start := t0.Add(-30 * 24 * time.Hour)
			for i := range 10000 {
				c := start.Add(time.Duration(i) * time.Minute)
				a.fake.PutRun(runAt("s1", fmt.Sprintf("h%05d", i), feishu.StatusCompleted, c, c.Add(time.Second)))
			}
			// One run in flight deep in the history: it finishes later.
			deepAt := start.Add(5 * time.Minute)
			a.fake.PutRun(runAt("s1", "deep", feishu.StatusRequiresMessage, deepAt, time.Time{}))

			cnt := newCounter()
			w := watch.NewRecorded(watch.Options{MinInterval: 5 * time.Second, Now: a.clock.Now}, cnt)
			w.SetApps([]watch.App{{Name: "a", API: a.client, Sessions: []string{"s1"}}})
			poll(w, time.Minute)
			if n := len(a.requests()); n != 401 {
				t.Fatalf("baseline: %d requests, want 401 (10,001 runs in pages of 50, each boundary checked)", n)
			}
			var want []string
			for i := range 30 {
				a.clock.Advance(10 * time.Second)
				now := a.clock.Now()
				id := fmt.Sprintf("new%02d", i)
				a.fake.PutRun(runAt("s1", id, feishu.StatusCompleted, now.Add(-3*time.Second), now.Add(-time.Second)))
				want = append(want, id)
				if i == 10 {
					a.fake.PutRun(runAt("s1", "deep", feishu.StatusFailed, deepAt, now.Add(-2*time.Second)))
					want = append(want, "deep")
				}
				poll(w, time.Minute)
				if n := len(a.requests()); n > 2 {
					t.Fatalf("poll %d: %d requests for one new run, want at most 2", i, n)
				}
			}
			for _, id := range want {
				if cnt.finished[id] != 1 || (id != "deep" && cnt.created[id] != 1) {
					t.Errorf("run %s counted finished %d and created %d times, want once", id, cnt.finished[id], cnt.created[id])
				}
			}
			if len(cnt.finished) != len(want) {
				t.Errorf("%d runs counted finished, want %d: the history must never be counted", len(cnt.finished), len(want))
			}
		})
	}
}

// sessionsInFlight puts n sessions, named by idFormat from their index, each
// with one run in flight (its ID the session's with runPrefix before it)
// created a minute before t0, and returns their IDs.
func (a *api) sessionsInFlight(n int, idFormat, runPrefix string) []string {
	sessions := make([]string, 0, n)
	for i := range n {
		id := fmt.Sprintf(idFormat, i)
		sessions = append(sessions, id)
		a.fake.PutRun(runAt(id, runPrefix+id, feishu.StatusInProgress, t0.Add(-time.Minute), time.Time{}))
	}
	return sessions
}

func TestThousandSessionsArePolledFairlyWithinTheBudget(t *testing.T) {
	a := newAPI(t, 50)
	sessions := a.sessionsInFlight(1000, "sess_%04d", "run_")
	// 20 requests a second for a 10 s scrape: a budget of about 200.
	w := watch.NewRecorded(watch.Options{MinInterval: 5 * time.Second, Now: a.clock.Now, RateLimit: 20, Concurrency: 8}, newCounter())
	w.SetApps([]watch.App{{Name: "a", API: a.client, Sessions: sessions}})

	first := map[string]time.Duration{} // session → fake time of its first poll
	for elapsed := time.Duration(0); elapsed <= time.Minute; elapsed += 15 * time.Second {
		poll(w, 10*time.Second)
		again := false
		for _, s := range a.requests() {
			if _, ok := first[s]; ok {
				again = true
			} else {
				first[s] = elapsed
			}
		}
		// Polls run concurrently, so requests arrive out of order; what must
		// hold is that no scrape polls a session again while it leaves
		// another one never polled.
		if again && len(first) < 1000 {
			t.Fatalf("at +%v a session was polled a second time while %d were never polled", elapsed, 1000-len(first))
		}
		if od := w.Overdue()["a"]; len(first) < 1000 && od == 0 {
			t.Errorf("at +%v: %d sessions not yet polled, but aily_sessions_overdue is 0", elapsed, 1000-len(first))
		}
		a.clock.Advance(15 * time.Second)
	}
	if len(first) != 1000 {
		t.Fatalf("%d of 1000 sessions polled within 60 s, want all", len(first))
	}
}

func TestHAPairCostsNoMoreThanOneScraper(t *testing.T) {
	for _, tc := range []struct {
		name        string
		offset      time.Duration
		minInterval time.Duration
	}{
		{"scrapes at the same moment, default min interval", 0, 5 * time.Second},
		{"scrapes 3s apart, default min interval", 3 * time.Second, 5 * time.Second},
		{"scrapes 7s apart, min interval 10s", 7 * time.Second, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cost := func(pair bool) int {
				a := newAPI(t, 50)
				sessions := a.sessionsInFlight(20, "s%02d", "r")
				w := watch.NewRecorded(watch.Options{Now: a.clock.Now, MinInterval: tc.minInterval}, newCounter())
				w.SetApps([]watch.App{{Name: "a", API: a.client, Sessions: sessions}})
				n := 0
				for range 8 { // two minutes of 15 s scrapes
					poll(w, 10*time.Second)
					if pair {
						a.clock.Advance(tc.offset)
						poll(w, 10*time.Second)
						a.clock.Advance(15*time.Second - tc.offset)
					} else {
						a.clock.Advance(15 * time.Second)
					}
					n += len(a.requests())
				}
				return n
			}
			one, two := cost(false), cost(true)
			if two != one {
				t.Errorf("an HA pair made %d requests, one scraper %d: want the same", two, one)
			}
		})
	}
}
