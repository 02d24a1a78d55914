package watch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// vanishOnPage makes a session's oldest listed run vanish right after the
// fake computed page n of a listing: the page tokens handed out before then
// point one run further than they did, as an offset-paged API's do when old
// records expire while a client pages.
func vanishOnPage(a *api, session string, n int, times *int) {
	a.fake.OnPage(func(s string, page int) {
		if s != session || page != n || *times == 0 {
			return
		}
		runs := a.fake.Runs(session)
		if len(runs) == 0 {
			return
		}
		*times--
		a.fake.DeleteRun(session, runs[0].ID)
	})
}

// putHistory puts n completed runs of s1, named by idFormat from their index,
// created a second apart from an hour before t0, and returns that instant.
func (a *api) putHistory(n int, idFormat string) time.Time {
	old := t0.Add(-time.Hour)
	for i := range n {
		c := old.Add(time.Duration(i) * time.Second)
		a.fake.PutRun(runAt("s1", fmt.Sprintf(idFormat, i), feishu.StatusCompleted, c, c.Add(time.Second)))
	}
	return old
}

// A run must be counted although an old run vanished from the front of an
// oldest-first listing between two of its pages: the next page's token then
// starts one run later, and the run that moved up into the page already read
// is in neither page.
func TestRunBehindAVanishedRunIsCountedOldestFirst(t *testing.T) {
	a := newAPI(t, 5)
	a.fake.SetOrder(feishufake.OldestFirst)
	a.putHistory(5, "h%d")
	cnt := newCounter()
	w := watch.NewRecorded(watch.Options{MinInterval: 5 * time.Second, Now: a.clock.Now, IdleInterval: 5 * time.Second, FullInterval: 10 * time.Minute}, cnt)
	w.SetApps([]watch.App{{Name: "a", API: a.client, Sessions: []string{"s1"}}})
	poll(w, time.Minute) // the baseline: one page of history

	a.clock.Advance(10 * time.Second)
	var want []string
	for i := range 8 {
		c := a.clock.Now().Add(time.Duration(i) * time.Second)
		id := fmt.Sprintf("n%d", i)
		want = append(want, id)
		a.fake.PutRun(runAt("s1", id, feishu.StatusCompleted, c, c.Add(time.Second)))
	}
	a.clock.Advance(10 * time.Second)
	times := 1
	vanishOnPage(a, "s1", 0, &times)
	poll(w, time.Minute)
	a.fake.OnPage(nil)

	// Later runs move the watermark far past n0, and a full listing reads
	// the whole session again.
	for i := range 30 {
		a.clock.Advance(time.Minute)
		c := a.clock.Now()
		id := fmt.Sprintf("later%02d", i)
		want = append(want, id)
		a.fake.PutRun(runAt("s1", id, feishu.StatusCompleted, c, c.Add(time.Second)))
		poll(w, time.Minute)
	}
	if times != 0 {
		t.Fatal("no run vanished: the test did not exercise the shift")
	}
	for _, id := range want {
		if n := cnt.finished[id]; n != 1 {
			t.Errorf("run %s counted %d times, want 1", id, n)
		}
	}
}

// A run in flight that a baseline listing skips, because an old run vanished
// in front of it between two pages, must still be counted when it finishes:
// the baseline remembers it in flight.
func TestRunInFlightSkippedByABaselineIsCountedWhenItFinishes(t *testing.T) {
	a := newAPI(t, 5)
	a.fake.SetOrder(feishufake.OldestFirst)
	old := a.putHistory(9, "h%d")
	// Sixth in the listing: the first run of the second page.
	flyAt := old.Add(4500 * time.Millisecond)
	fly := runAt("s1", "fly", feishu.StatusInProgress, flyAt, time.Time{})
	a.fake.PutRun(fly)

	cnt := newCounter()
	w := watch.NewRecorded(watch.Options{MinInterval: 5 * time.Second, Now: a.clock.Now, IdleInterval: 5 * time.Second}, cnt)
	w.SetApps([]watch.App{{Name: "a", API: a.client, Sessions: []string{"s1"}}})
	times := 1
	vanishOnPage(a, "s1", 0, &times)
	poll(w, time.Minute)
	a.fake.OnPage(nil)
	if times != 0 {
		t.Fatal("no run vanished: the test did not exercise the shift")
	}

	a.clock.Advance(10 * time.Second)
	fly.Status, fly.EndedAt = feishu.StatusCompleted, a.clock.Now()
	a.fake.PutRun(fly)
	for range 5 {
		a.clock.Advance(10 * time.Second)
		poll(w, time.Minute)
	}
	if n := cnt.finished["fly"]; n != 1 {
		t.Errorf("run fly counted %d times, want 1", n)
	}
}

// A run seen in flight that ends and leaves the listing before a poll sees
// it final (polls failing for longer than the API keeps it listed) is
// counted once, from get run, instead of being forgotten as gone.
func TestRunThatEndsAndVanishesBetweenPollsIsCountedFromGetRun(t *testing.T) {
	for _, order := range []feishufake.Order{feishufake.NewestFirst, feishufake.OldestFirst} {
		t.Run(order.String(), func(t *testing.T) {
			a := newAPI(t, 5)
			// Retries after the server errors below do not wait: the fake
			// clock decides what vanishes, not the wall clock.
			client, err := feishu.NewClient(feishu.Config{BaseURL: a.url, AppID: "cli_test", AppSecret: "secret", PageSize: 5,
				Now: a.clock.Now, Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
			if err != nil {
				t.Fatal(err)
			}
			a.client = client
			a.fake = feishufake.New(feishufake.Options{Now: a.clock.Now, VanishAfter: 90 * time.Second})
			a.fake.AddApp("cli_test", "secret")
			a.fake.SetOrder(order)
			a.putHistory(12, "h%02d")
			r := runAt("s1", "r", feishu.StatusInProgress, t0.Add(-time.Second), time.Time{})
			a.fake.PutRun(r)
			cnt := newCounter()
			w := watch.NewRecorded(watch.Options{MinInterval: 5 * time.Second, Now: a.clock.Now, IdleInterval: 5 * time.Second}, cnt)
			w.SetApps([]watch.App{{Name: "a", API: a.client, Sessions: []string{"s1"}}})
			poll(w, time.Minute)

			// The run ends while the API fails every list request, and has
			// left the listing when it answers again.
			a.fake.SetFault(feishufake.Scope{}, feishufake.Fault{Kind: feishufake.ServerError})
			r.Status, r.EndedAt = feishu.StatusFailed, a.clock.Now().Add(time.Second)
			r.Error = &feishu.RunError{Code: "sp_ec_x", Message: "failed"}
			a.fake.PutRun(r)
			for range 4 {
				a.clock.Advance(30 * time.Second)
				poll(w, time.Second)
			}
			a.fake.ClearFaults()
			for range 10 {
				a.clock.Advance(10 * time.Second)
				poll(w, time.Minute)
			}
			if a.fake.Vanished() == 0 {
				t.Fatal("no run vanished from the listing")
			}
			if n := cnt.finished["r"]; n != 1 {
				t.Errorf("run r counted %d times, want 1", n)
			}
		})
	}
}
