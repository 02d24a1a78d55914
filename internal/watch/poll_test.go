package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// polled is one session polled directly, without a Watcher: its tracker,
// cursor and everything its polls counted.
type polled struct {
	t        *testing.T
	api      API
	mem      *memAPI
	tracker  *tracker
	cursor   cursor
	finished map[string]int // run ID → times counted finished
	created  map[string]int
	perPoll  int // request budget of one poll; 0: none
}

func newPolled(t *testing.T, mem *memAPI) *polled {
	return &polled{t: t, api: mem, mem: mem, tracker: newTracker(t0),
		finished: map[string]int{}, created: map[string]int{}}
}

// poll polls at t0+now seconds and returns the requests it made.
func (p *polled) poll(now float64) (lists, gets int, err error) {
	p.mem.requests()
	api := p.api
	if p.perPoll > 0 {
		api = budgetedAPI{API: p.mem, b: (&budget{left: 1 << 30, perPoll: p.perPoll}).startPoll()}
	}
	pl := &poll{ctx: context.Background(), api: api, id: "s1", t: p.tracker, c: &p.cursor, now: at(now), full: 6 * time.Hour}
	err = pl.run()
	for _, f := range pl.obs.Finished {
		p.finished[f.Run.ID]++
	}
	for _, r := range pl.obs.Created {
		p.created[r.ID]++
	}
	lists, gets = p.mem.requests()
	return lists, gets, err
}

func (p *polled) mustPoll(now float64) (lists, gets int) {
	p.t.Helper()
	lists, gets, err := p.poll(now)
	if err != nil {
		p.t.Fatalf("poll at t0+%gs: %v", now, err)
	}
	return lists, gets
}

// wantCounted checks that exactly these runs were counted finished, once each.
func (p *polled) wantCounted(ids ...string) {
	p.t.Helper()
	var got []string
	for id, n := range p.finished {
		if n != 1 {
			p.t.Errorf("run %s counted finished %d times", id, n)
		}
		got = append(got, id)
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		p.t.Errorf("counted finished %v, want %v", got, ids)
	}
}

// longHistory returns n finished runs of session s1, created a second apart
// and ended before t0, with the run at index deep (if ≥ 0) still in flight.
func longHistory(n, deep int) []feishu.Run {
	runs := make([]feishu.Run, n)
	for i := range runs {
		c := float64(-2*n + i)
		runs[i] = run(fmt.Sprintf("h%05d", i), completed, c, c, c+0.5)
		if i == deep {
			runs[i] = run(runs[i].ID, inProgress, c, c, none)
		}
	}
	return runs
}

// polledHistory returns a session of longHistory(n, deep) listed in order o
// in pages of size, its poller, and the runs.
func polledHistory(t *testing.T, o order, size, n, deep int) (*memAPI, *polled, []feishu.Run) {
	t.Helper()
	mem := newMemAPI(o, size)
	runs := longHistory(n, deep)
	mem.put(runs...)
	return mem, newPolled(t, mem), runs
}

var orders = []order{newestFirst, oldestFirst}

func TestPollNewRunInLongHistoryCostsAtMostThreeRequests(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem, p, _ := polledHistory(t, o, 50, 10000, -1)
			// 200 pages, and each of their 199 boundaries read again (pageAfter).
			if lists, _ := p.mustPoll(1); lists != 399 {
				t.Fatalf("baseline made %d requests, want 399 (10,000 runs in pages of 50, each boundary checked)", lists)
			}
			if p.cursor.order != o {
				t.Fatalf("order read off the baseline: %v, want %v", p.cursor.order, o)
			}
			for i := range 60 {
				now := float64(10 + 10*i)
				mem.put(run(fmt.Sprintf("new%02d", i), completed, now-5, now-4, now-1))
				lists, gets := p.mustPoll(now)
				// The resumed page, a new one when the run opens it, and the
				// check of the boundary between them (pageAfter).
				if lists+gets > 3 {
					t.Fatalf("poll %d made %d list and %d get requests, want at most 3 in all", i, lists, gets)
				}
			}
			var want []string
			for i := range 60 {
				want = append(want, fmt.Sprintf("new%02d", i))
			}
			p.wantCounted(want...)
		})
	}
}

func TestPollRunInFlightDeepInHistoryIsRefreshedWithGetRun(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem, p, runs := polledHistory(t, o, 50, 10000, 100)
			p.mustPoll(1)
			if lists, gets := p.mustPoll(10); lists != 1 || gets != 1 {
				t.Errorf("poll made %d list and %d get requests, want 1 and 1", lists, gets)
			}
			deep := runs[100]
			deep.Status, deep.EndedAt = completed, at(15)
			mem.put(deep)
			p.mustPoll(20)
			p.wantCounted(deep.ID)
			if lists, gets := p.mustPoll(30); lists+gets != 1 {
				t.Errorf("poll after the deep run finished made %d requests, want 1", lists+gets)
			}
		})
	}
}

func TestPollRunInsertedWhilePagingIsCountedOnce(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem, p, _ := polledHistory(t, o, 10, 100, -1)
			n := 0
			mem.onPage = func(page int) {
				if page%3 == 0 {
					n++
					mem.put(run(fmt.Sprintf("ins%02d", n), completed, float64(n), float64(n), float64(n)+0.5))
				}
			}
			p.mustPoll(1)
			p.mustPoll(100)
			mem.onPage = nil
			p.mustPoll(200)
			p.mustPoll(300)
			var want []string
			for i := 1; i <= n; i++ {
				want = append(want, fmt.Sprintf("ins%02d", i))
			}
			if n < 3 {
				t.Fatalf("only %d runs inserted while paging; the test needs more", n)
			}
			p.wantCounted(want...)
			for id, c := range p.created {
				if c != 1 {
					t.Errorf("run %s counted created %d times", id, c)
				}
			}
			// The runs a shifted page shows again are not tallied twice.
			if got := p.tracker.current().Final[finalIndex(completed)]; got != 100+n {
				t.Errorf("aily_runs{status=COMPLETED} %d, want %d", got, 100+n)
			}
		})
	}
}

func TestPollPageTokenThatStopsResumingFallsBackToAFullListing(t *testing.T) {
	mem, p, _ := polledHistory(t, oldestFirst, 10, 95, -1)
	p.mustPoll(1)
	mem.badToken = true
	mem.put(run("n1", completed, 5, 6, 7))
	if _, _, err := p.poll(10); err == nil {
		t.Fatal("poll with every page token refused succeeded")
	}
	if !p.cursor.needFull && !p.tracker.sweeping() {
		t.Error("a refused page token did not ask for a full listing")
	}
	mem.badToken = false
	lists, _ := p.mustPoll(20)
	// Ten pages; the six boundaries among runs newer than the horizon are
	// checked, the three among older runs need not be.
	if lists != 16 {
		t.Errorf("fallback made %d list requests, want 16 (a full listing of 96 runs, 6 boundaries checked)", lists)
	}
	p.wantCounted("n1")
}

func TestPollOrderFlipIsNoticedAndCountsStayExact(t *testing.T) {
	mem, p, _ := polledHistory(t, newestFirst, 10, 95, -1)
	p.mustPoll(1)
	mem.order = oldestFirst
	mem.put(run("n1", completed, 5, 6, 7))
	p.mustPoll(10)
	if p.cursor.order != oldestFirst {
		t.Errorf("order after the flip: %v, want oldest first", p.cursor.order)
	}
	mem.put(run("n2", completed, 15, 16, 17))
	if lists, _ := p.mustPoll(20); lists > 2 {
		t.Errorf("poll after the flip was understood made %d requests, want at most 2", lists)
	}
	p.wantCounted("n1", "n2")
}

func TestPollTiesInCreatedAt(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem := newMemAPI(o, 3)
			// Seven runs in one millisecond: the order cannot be read off them.
			for i := range 7 {
				mem.put(run(fmt.Sprintf("t%d", i), completed, -10, -10, -9))
			}
			p := newPolled(t, mem)
			p.mustPoll(1)
			mem.put(run("t9", completed, -10, 2, 3), run("u1", inProgress, 4, 4, none))
			p.mustPoll(10)
			u1 := run("u1", completed, 4, 4, 12)
			mem.put(u1)
			p.mustPoll(20)
			p.mustPoll(30)
			p.wantCounted("t9", "u1")
		})
	}
}

func TestPollBaselineSpreadOverSeveralPolls(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem, p, runs := polledHistory(t, o, 10, 100, 50)
			p.perPoll = 3
			for i := range 3 {
				if _, _, err := p.poll(float64(1 + i)); !errors.Is(err, errBudget) {
					t.Fatalf("poll %d of the baseline: err %v, want the budget spent", i, err)
				}
				if p.tracker.baselined {
					t.Fatalf("baselined after %d polls of 3 requests; 10 pages are needed", i+1)
				}
				mem.put(run(fmt.Sprintf("b%d", i), completed, float64(i)+0.1, float64(i)+0.2, float64(i)+0.5))
			}
			deep := runs[50]
			deep.Status, deep.EndedAt = failed, at(4)
			mem.put(deep)
			for i := 0; !p.tracker.baselined; i++ {
				if i > 7 {
					t.Fatal("baseline not done after 11 polls of 3 requests (10 pages, 9 boundaries checked)")
				}
				_, _, _ = p.poll(float64(10 + i))
			}
			p.perPoll = 0
			p.mustPoll(30)
			p.wantCounted("b0", "b1", "b2", deep.ID)
		})
	}
}

func TestPollFullListingIsASafetyNet(t *testing.T) {
	_, p, _ := polledHistory(t, newestFirst, 10, 30, -1)
	p.mustPoll(1)
	if lists, _ := p.mustPoll(10); lists != 1 {
		t.Fatalf("incremental poll made %d requests, want 1", lists)
	}
	full := (6 * time.Hour).Seconds()
	if lists, _ := p.mustPoll(1 + full); lists < 3 {
		t.Errorf("poll after --poll.full-interval made %d requests, want a full listing (3 pages)", lists)
	}
}

func TestPollRunsInFlightTheAPIStopsListingAreForgottenAndCostNoMore(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem := newMemAPI(o, 10)
			// Three runs in flight on the middle page of 25: paging to them is
			// cheaper than three get runs.
			runs := longHistory(25, -1)
			for i := 10; i <= 12; i++ {
				runs[i] = run(runs[i].ID, inProgress, -50+float64(i)-25, -50, none)
			}
			mem.put(runs...)
			p := newPolled(t, mem)
			p.mustPoll(1)
			mem.mu.Lock()
			for i := 10; i <= 12; i++ {
				delete(mem.runs["s1"], runs[i].ID)
			}
			mem.cache = nil
			mem.mu.Unlock()
			for i := range 4 {
				if _, _, err := p.poll(float64(10 * (i + 1))); err != nil {
					t.Fatalf("poll %d: %v", i, err)
				}
			}
			if n := p.tracker.inFlight(); n != 0 {
				t.Fatalf("%d runs in flight remembered after four polls, want the deleted ones forgotten", n)
			}
			if lists, gets := p.mustPoll(100); lists+gets > 1 {
				t.Errorf("a poll once the runs are forgotten made %d requests, want 1", lists+gets)
			}
			p.wantCounted()
		})
	}
}

// listingAt returns n runs of session s1 listed in order o, final except
// those at the positions given (0 = first listed), which are in flight. All
// were created before t0, a second apart.
func listingAt(o order, n int, inflight ...int) []feishu.Run {
	runs := make([]feishu.Run, n)
	for pos := range n {
		// Position pos in order o is the run created k-th.
		k := pos
		if o == newestFirst {
			k = n - 1 - pos
		}
		c := float64(-2*n + k)
		runs[pos] = run(fmt.Sprintf("h%05d", k), completed, c, c, c+0.5)
		if slices.Contains(inflight, pos) {
			runs[pos] = run(runs[pos].ID, inProgress, c, c, none)
		}
	}
	return runs
}

func TestPollRecordsWhereRunsInFlightStand(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem := newMemAPI(o, 10)
			mem.put(listingAt(o, 28, 2, 25)...)
			p := newPolled(t, mem)
			check := func(when string) {
				t.Helper()
				for pos, r := range mem.sorted("s1") {
					if r.Status == inProgress {
						if got := p.tracker.position(r.ID, o == newestFirst); got != int64(pos) {
							t.Errorf("%s: run %s recorded at position %d, listed at %d", when, r.ID, got, pos)
						}
					}
				}
			}
			p.mustPoll(1)
			check("after the baseline")
			// Three new runs: newest first they push the others down; oldest
			// first they come after them.
			for i := range 3 {
				mem.put(run(fmt.Sprintf("n%d", i), completed, float64(2+i), float64(2+i), float64(3+i)))
			}
			p.mustPoll(10)
			check("after an incremental poll")
		})
	}
}

// refreshCost is a case of what an incremental poll costs to refresh the
// runs in flight of a baseline listing.
type refreshCost struct {
	name     string
	n        int   // runs listed at the baseline
	inflight []int // their positions then
	newRuns  int   // runs created before the poll measured
	// what the poll costs
	lists, gets int
}

// checkRefreshCost lists tc's baseline in order o, creates its new runs,
// checks what the next poll costs, and returns the session for further
// checks.
func checkRefreshCost(t *testing.T, o order, tc refreshCost) *polled {
	t.Helper()
	mem := newMemAPI(o, 10)
	mem.put(listingAt(o, tc.n, tc.inflight...)...)
	p := newPolled(t, mem)
	p.mustPoll(1)
	for i := range tc.newRuns {
		mem.put(run(fmt.Sprintf("n%02d", i), completed, float64(2+i), float64(2+i), float64(3+i)))
	}
	if lists, gets := p.mustPoll(20); lists != tc.lists || gets != tc.gets {
		t.Errorf("poll made %d list and %d get requests, want %d and %d", lists, gets, tc.lists, tc.gets)
	}
	return p
}

func TestPollNewestFirstPagesOnOrGetsRunsInFlightWhicheverIsCheaper(t *testing.T) {
	for _, tc := range []refreshCost{
		{name: "one run in flight two pages down is got", n: 40, inflight: []int{25}, lists: 1, gets: 1},
		// Paging on costs a check of the boundary (pageAfter).
		{name: "three runs in flight on the next page are paged to", n: 40, inflight: []int{12, 14, 16}, lists: 3},
		// At equal cost get run is preferred: its answer does not depend on
		// where the run is estimated to stand.
		{name: "one run in flight on the next page is got", n: 40, inflight: []int{15}, lists: 1, gets: 1},
		{name: "after two pages of new runs, three runs in flight two pages further are paged to",
			n: 60, inflight: []int{18, 19, 20}, newRuns: 12, lists: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p := checkRefreshCost(t, newestFirst, tc); p.cursor.needFull {
				t.Error("the poll asked for a full listing")
			}
		})
	}
}

func TestPollOldestFirstGetsRunsInFlightOnEarlierPagesOrListsInFull(t *testing.T) {
	for _, tc := range []refreshCost{
		{name: "as many runs in flight as pages before the last are got", n: 25, inflight: []int{3, 5}, lists: 1, gets: 2},
		{name: "more runs in flight than pages before the last: a full listing", n: 25, inflight: []int{3, 5, 7}, lists: 1 + 3 + 2},
		{name: "pages the poll read on count as pages before the last", n: 15, inflight: []int{3}, newRuns: 10, lists: 3, gets: 1},
	} {
		t.Run(tc.name, func(t *testing.T) { checkRefreshCost(t, oldestFirst, tc) })
	}
}

func TestPollOldestFirstResumedPageWithoutTheRunsItShowedListsInFull(t *testing.T) {
	mem, p, runs := polledHistory(t, oldestFirst, 10, 25, -1)
	p.mustPoll(1)
	// The API stops listing the ten oldest runs: the page the poll resumes
	// from now lies past the end, and a new run sits before it.
	for _, r := range runs[:10] {
		mem.remove("s1", r.ID)
	}
	mem.put(run("n1", completed, 2, 3, 4))
	p.mustPoll(10)
	p.wantCounted("n1")
}

func TestPollOldestFirstResumesFromAnEmptyLastPage(t *testing.T) {
	mem := newMemAPI(oldestFirst, 10)
	mem.emptyLast = true
	mem.put(longHistory(20, -1)...)
	p := newPolled(t, mem)
	if lists, _ := p.mustPoll(1); lists != 5 {
		t.Fatalf("baseline made %d requests, want 5 (two full pages, an empty one, two boundaries checked)", lists)
	}
	// The empty page shows no run the resumed one must show again.
	mem.put(run("n1", completed, 2, 3, 4))
	if lists, gets := p.mustPoll(10); lists+gets != 1 {
		t.Errorf("poll made %d list and %d get requests, want 1 (the resumed page)", lists, gets)
	}
	p.wantCounted("n1")
}

// noIDs is an API whose get run answers leave the run's ID out.
type noIDs struct{ *memAPI }

func (a noIDs) GetRun(ctx context.Context, session, id string) (feishu.Run, error) {
	r, err := a.memAPI.GetRun(ctx, session, id)
	r.ID = ""
	return r, err
}

func TestPollRunGotWithoutItsIDIsCounted(t *testing.T) {
	mem, p, runs := polledHistory(t, newestFirst, 10, 100, 10)
	p.api = noIDs{mem}
	p.mustPoll(1)
	deep := runs[10]
	deep.Status, deep.EndedAt = completed, at(5)
	mem.put(deep)
	if _, gets := p.mustPoll(10); gets != 1 {
		t.Fatalf("poll made %d get requests, want 1", gets)
	}
	p.wantCounted(deep.ID)
}

func TestPollPageShowingOnlyThePageBeforeIsSkipped(t *testing.T) {
	mem := newMemAPI(newestFirst, 2)
	mem.put(longHistory(6, -1)...)
	// Two runs created while the first page is read push it whole onto the
	// second.
	mem.onPage = func(page int) {
		if page == 1 {
			mem.put(run("n1", completed, 1, 1, 2), run("n2", completed, 2, 2, 3))
		}
	}
	p := newPolled(t, mem)
	p.mustPoll(5)
	mem.onPage = nil
	p.mustPoll(10)
	p.wantCounted("n1", "n2")
	if got := p.tracker.current().Final[finalIndex(completed)]; got != 8 {
		t.Errorf("aily_runs{status=COMPLETED} %d, want 8", got)
	}
}
