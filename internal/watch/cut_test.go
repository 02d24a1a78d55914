package watch

import (
	"context"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// cuttingAPI answers "fine" at once, makes "slow" wait for the caller's
// deadline, and keeps "stuck" until released whatever the caller's deadline.
type cuttingAPI struct {
	memAPI
	release chan struct{}
}

func (c *cuttingAPI) ListRunsPage(ctx context.Context, session, token string) (feishu.RunsPage, error) {
	switch session {
	case "slow":
		<-ctx.Done()
		return feishu.RunsPage{}, ctx.Err()
	case "stuck":
		<-c.release
	}
	return c.memAPI.ListRunsPage(ctx, session, token)
}

func TestPollReportsExactlyTheSessionsItsDeadlineCutOff(t *testing.T) {
	api := &cuttingAPI{memAPI: *newMemAPI(newestFirst, 10), release: make(chan struct{})}
	defer close(api.release)
	clk := feishufake.NewClock(t0)
	w := NewRecorded(Options{Now: clk.Now, MinInterval: -1, IdleInterval: time.Nanosecond}, &countRecorder{finished: map[string]int{}, created: map[string]int{}})
	w.SetApps([]App{{Name: "a", API: api, Sessions: []string{"fine", "slow", "stuck"}}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	cut := w.Poll(ctx)
	want := map[SessionKey]bool{{"a", "slow"}: true, {"a", "stuck"}: true}
	if len(cut) != len(want) || !cut[SessionKey{"a", "slow"}] || !cut[SessionKey{"a", "stuck"}] {
		t.Errorf("cut off: %v, want %v (the slow session that returned at the deadline, and the stuck one still under way)", cut, want)
	}
	// The next scrape, which cuts nothing off, reports none, even while the
	// stuck poll of the last one is still under way.
	clk.Advance(time.Second)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	api.memAPI.put(feishu.Run{ID: "r", SessionID: "fine", Status: feishu.StatusCompleted, CreatedAt: at(1)})
	if cut := w.Poll(ctx2); cut[SessionKey{"a", "fine"}] || cut[SessionKey{"a", "stuck"}] {
		t.Errorf("a later scrape reports %v cut off: only a scrape's own deadline cuts its polls", cut)
	}
}
