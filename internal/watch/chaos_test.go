// The chaos test runs for seconds: mutation testing (make mutation, which
// builds with the mutation tag) relies on the unit tests instead.

//go:build !mutation

package watch_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// TestChaosCountsEveryRunOnce is a small, fast ground-truth soak on a fake
// clock: sessions in both listing orders, pages of 5, runs created while a
// session is paged, runs vanishing from the listing 90 s after they end,
// and faults (text 404 for a while, 500, invalid tokens) switched on at
// random; at the end every run must have been counted created and finished
// exactly once. make soak does the same with the real binary for minutes.
func TestChaosCountsEveryRunOnce(t *testing.T) {
	seeds, from := 6, 0
	if testing.Short() {
		seeds = 2
	}
	// CHAOS_SEEDS=from:n explores other seeds.
	if v := os.Getenv("CHAOS_SEEDS"); v != "" {
		if _, err := fmt.Sscanf(v, "%d:%d", &from, &seeds); err != nil {
			t.Fatalf("CHAOS_SEEDS=%q: want from:n", v)
		}
	}
	for seed := from; seed < from+seeds; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { chaos(t, uint64(seed)) })
	}
}

func chaos(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 19))
	clk := feishufake.NewClock(t0)
	fake := feishufake.New(feishufake.Options{Now: clk.Now, VanishAfter: 90 * time.Second, VanishAfterListings: 2})
	fake.AddApp("cli_test", "secret")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client, err := feishu.NewClient(feishu.Config{BaseURL: srv.URL, AppID: "cli_test", AppSecret: "secret", PageSize: 5,
		MaxConcurrency: 8, Now: clk.Now, Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("s%d", i)
		ids = append(ids, id)
		fake.AddSession(id)
		order := feishufake.OldestFirst
		if i%2 == 1 {
			order = feishufake.NewestFirst
		}
		fake.SetSessionOrder(id, order)
		for j := range 12 {
			c := t0.Add(-time.Hour + time.Duration(j)*time.Minute)
			fake.PutRun(runAt(id, fmt.Sprintf("%s_h%02d", id, j), feishu.StatusCompleted, c, c.Add(time.Second)))
		}
	}
	cnt := newCounter()
	w := watch.NewRecorded(watch.Options{Now: clk.Now, MinInterval: 5 * time.Second, IdleInterval: 20 * time.Second}, cnt)
	w.SetApps([]watch.App{{Name: "a", API: client, Sessions: ids}})

	type live struct {
		run feishu.Run
		end time.Time
	}
	// mu guards what the page hook (on the fake's goroutines) shares with
	// the loop: the generator, the truth and the runs in flight.
	var mu sync.Mutex
	var inflight []live
	truth := map[string]bool{}
	seq := 0
	create := func(session string) {
		seq++
		now := clk.Now()
		r := runAt(session, fmt.Sprintf("r%05d", seq), feishu.StatusInProgress, now, time.Time{})
		truth[r.ID] = true
		fake.PutRun(r)
		inflight = append(inflight, live{r, now.Add(time.Duration(1+rng.IntN(40)) * time.Second)})
	}
	creating := true
	fake.OnPage(func(session string, _ int) {
		mu.Lock()
		defer mu.Unlock()
		if creating && rng.IntN(10) == 0 {
			create(session)
		}
	})
	finish := func(now time.Time) {
		kept := inflight[:0]
		for _, l := range inflight {
			if now.Before(l.end) {
				kept = append(kept, l)
				continue
			}
			r := l.run
			r.Status, r.EndedAt = feishu.StatusCompleted, l.end
			fake.PutRun(r)
		}
		inflight = kept
	}
	faultUntil := map[string]time.Time{}
	for step := range 1500 { // 1,500 s
		clk.Advance(time.Second)
		now := clk.Now()
		mu.Lock()
		for _, id := range ids {
			if rng.IntN(8) == 0 && step < 1300 {
				create(id)
			}
			if until, ok := faultUntil[id]; ok && now.After(until) {
				fake.ClearFault(feishufake.Scope{SessionID: id})
				delete(faultUntil, id)
			}
		}
		finish(now)
		creating = step < 1300
		if rng.IntN(40) == 0 && step < 1300 {
			id := ids[rng.IntN(len(ids))]
			switch rng.IntN(3) {
			case 0:
				fake.SetFault(feishufake.Scope{SessionID: id}, feishufake.Fault{Kind: feishufake.NotFoundText})
				faultUntil[id] = now.Add(time.Duration(5+rng.IntN(60)) * time.Second)
			case 1:
				fake.SetFault(feishufake.Scope{SessionID: id}, feishufake.Fault{Kind: feishufake.ServerError, Times: 1 + rng.IntN(6)})
			case 2:
				fake.SetFault(feishufake.Scope{}, feishufake.Fault{Kind: feishufake.InvalidToken, Times: 1 + rng.IntN(3)})
			}
		}
		mu.Unlock()
		if step%3 == 0 {
			poll(w, 10*time.Second)
		}
	}
	fake.ClearFaults()
	for range 40 {
		clk.Advance(5 * time.Second)
		mu.Lock()
		finish(clk.Now())
		mu.Unlock()
		poll(w, 10*time.Second)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(inflight) != 0 {
		t.Fatalf("%d runs still in flight", len(inflight))
	}
	if fake.Vanished() == 0 {
		t.Fatal("no run vanished: the test does not exercise vanishing")
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	bad := 0
	for id := range truth {
		if cnt.created[id] != 1 || cnt.finished[id] != 1 {
			bad++
			if bad <= 10 {
				t.Errorf("run %s counted created %d, finished %d times; want once each", id, cnt.created[id], cnt.finished[id])
			}
		}
	}
	for id, n := range cnt.finished {
		if !truth[id] && n > 0 {
			t.Errorf("run %s of the history counted finished", id)
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d runs miscounted (%d vanished)", bad, len(truth), fake.Vanished())
	}
}
