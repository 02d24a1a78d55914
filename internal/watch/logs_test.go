package watch

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// failingAPI fails every call in a way chosen per session: an API error, a
// wait for the caller's deadline, or an error without a message.
type failingAPI struct{ memAPI }

func (f *failingAPI) ListRunsPage(ctx context.Context, session, token string) (feishu.RunsPage, error) {
	switch session {
	case "api-error":
		return feishu.RunsPage{}, &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: 400, Code: 99991672, Msg: "Access denied"}
	case "deadline":
		<-ctx.Done()
		return feishu.RunsPage{}, ctx.Err()
	case "bare":
		return feishu.RunsPage{}, errors.New("")
	}
	return f.memAPI.ListRunsPage(ctx, session, token)
}

func TestLogLinesCarryNoFormattingErrors(t *testing.T) {
	logs := &testkit.LogBuffer{}
	api := &failingAPI{memAPI: *newMemAPI(newestFirst, 10)}
	clk := feishufake.NewClock(t0)
	w := NewRecorded(Options{Now: clk.Now, MinInterval: -1, IdleInterval: time.Second,
		Logger: log.NewLogfmtLogger(logs)}, &countRecorder{finished: map[string]int{}, created: map[string]int{}})
	w.SetApps([]App{
		{Name: "a", API: api, Sessions: []string{"api-error", "deadline", "bare", "fine"}},
		{Name: "b", API: nil, Sessions: []string{"no-client"}},
	})
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		w.Poll(ctx)
		cancel()
		clk.Advance(time.Duration(i+1) * time.Minute)
	}
	// The polls cut off by the deadline may end after Poll returns: the next
	// Poll waits for them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.Poll(ctx)
	out := logs.String()
	if out == "" {
		t.Fatal("nothing logged: the test's failures did not happen")
	}
	for _, bad := range []string{"%!", "(MISSING)", "<nil>"} {
		if strings.Contains(out, bad) {
			t.Errorf("a log line carries %q:\n%s", bad, out)
		}
	}
}

// TestCountedRunsAreLoggedAtDebug: each poll that counts runs names them at
// debug, so that a count can be traced back to the API's answers (make soak
// reads these lines).
func TestCountedRunsAreLoggedAtDebug(t *testing.T) {
	logs, logger := newLogged(t)
	clk := feishufake.NewClock(at(100))
	api := newMemAPI(newestFirst, 10)
	api.put(run("old", feishu.StatusCompleted, 1, 2, 3))
	w := New(Options{Now: clk.Now, MinInterval: -1, IdleInterval: time.Nanosecond, Logger: logger})
	w.SetApps([]App{{Name: "a", API: api, Sessions: []string{"s1"}}})
	pollWithin(w, time.Minute) // the baseline: nothing counted
	if lines := logs.lines("debug", "Counted runs", true); len(lines) != 0 {
		t.Fatalf("a baseline of history logged counted runs: %v", lines)
	}
	api.put(run("r1", feishu.StatusCompleted, 101, 102, 103), run("r2", feishu.StatusInProgress, 104, 105, none))
	clk.Advance(time.Minute)
	pollWithin(w, time.Minute)
	lines := logs.lines("debug", "Counted runs", true)
	if len(lines) != 1 {
		t.Fatalf("%d lines of counted runs after one poll that counted, want 1", len(lines))
	}
	l := lines[0]
	if l["app"] != "a" || l["session_id"] != "s1" || l["created"] != "r2,r1" || l["started"] != "r2,r1" || l["finished"] != "r1" {
		t.Errorf("counted runs line %v: want created r2,r1, started r2,r1 (in listing order), finished r1", l)
	}
}

func TestCountedRunIDsAreBounded(t *testing.T) {
	id := func(i int) string { return "r" + strconv.Itoa(i) }
	if got := joinIDs(2, id); got != "r0,r1" {
		t.Errorf("joinIDs(2) = %q, want r0,r1", got)
	}
	if got := joinIDs(0, id); got != "" {
		t.Errorf("joinIDs(0) = %q, want empty", got)
	}
	got := joinIDs(maxLoggedIDs+2, id)
	if !strings.HasSuffix(got, ",r999,+2") || strings.Count(got, ",") != maxLoggedIDs {
		t.Errorf("joinIDs(%d) ends %q with %d commas: want the first %d IDs, then +2", maxLoggedIDs+2, got[len(got)-20:],
			strings.Count(got, ","), maxLoggedIDs)
	}
	if got := joinIDs(maxLoggedIDs, id); strings.Contains(got, "+") {
		t.Errorf("joinIDs(%d) says more were left out: %q", maxLoggedIDs, got[len(got)-20:])
	}
}
