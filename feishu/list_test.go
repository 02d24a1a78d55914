package feishu_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/google/go-cmp/cmp"
)

func TestListRunsPagesThroughEveryRunInEitherOrder(t *testing.T) {
	for _, order := range []feishufake.Order{feishufake.OldestFirst, feishufake.NewestFirst} {
		for _, tc := range []struct {
			runs, pages int
		}{
			{runs: 0, pages: 1},
			{runs: 1, pages: 1},
			{runs: 20, pages: 1},
			{runs: 21, pages: 2},
			{runs: 257, pages: 13},
		} {
			t.Run(fmt.Sprintf("order %d, %d runs", order, tc.runs), func(t *testing.T) {
				e := newTestEnv(t, feishufake.Options{})
				e.fake.SetOrder(order)
				want := e.addRuns(testSession, tc.runs, feishu.KnownStatuses()...)
				c := e.client(t)

				runs, err := c.ListRuns(context.Background(), testSession)
				if err != nil {
					t.Fatalf("ListRuns: %v", err)
				}
				got := runIDs(runs)
				slices.Sort(got)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("run IDs (-want +got):\n%s", diff)
				}
				if n := e.fake.Requests("list_runs"); n != tc.pages {
					t.Errorf("list requests = %d, want %d", n, tc.pages)
				}
			})
		}
	}
}

func TestListRunsDecodesEveryField(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	want := []feishu.Run{
		makeRun(testSession, "run_queued", epoch, feishu.StatusQueued),
		makeRun(testSession, "run_failed", epoch.Add(time.Second), feishu.StatusFailed),
	}
	for _, r := range want {
		e.fake.PutRun(r)
	}
	runs, err := e.client(t).ListRuns(context.Background(), testSession)
	if err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	if diff := cmp.Diff(want, runs); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestListRunsDedupesRunsShiftedByRunsCreatedMidListing(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.fake.SetOrder(feishufake.NewestFirst)
	ids := e.addRuns(testSession, 60, feishu.StatusInProgress)
	// Newest first, the last run of page 0 is the 41st oldest (index 40).
	changed := ids[40]
	var once sync.Once
	e.fake.OnPage(func(sessionID string, page int) {
		if page != 0 {
			return
		}
		once.Do(func() {
			// Five runs created while the client reads page 0 push every
			// later run five places down: page 1 starts with five runs
			// page 0 already had, one of which has finished meanwhile.
			for i := range 5 {
				e.fake.PutRun(makeRun(testSession, fmt.Sprintf("run_new%d", i), epoch.Add(time.Hour), feishu.StatusQueued))
			}
			r := makeRun(testSession, changed, epoch.Add(40*time.Second), feishu.StatusCompleted)
			e.fake.PutRun(r)
		})
	})

	runs, err := e.client(t).ListRuns(context.Background(), testSession)
	if err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	got := runIDs(runs)
	slices.Sort(got)
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("run IDs (-want +got):\n%s", diff)
	}
	for _, r := range runs {
		if r.ID == changed && r.Status != feishu.StatusCompleted {
			t.Errorf("run %s seen IN_PROGRESS then COMPLETED has status %s, want COMPLETED", changed, r.Status)
		}
	}
	if n := e.fake.Requests("list_runs"); n != 4 {
		t.Errorf("list requests = %d, want 4 (65 runs, 20 a page)", n)
	}
}

func TestListRunsKeepsTheMostAdvancedSightingOfARun(t *testing.T) {
	run := func(status string) string {
		return fmt.Sprintf(`{"id":"run_a","created_at":"1711975665710","status":%q}`, status)
	}
	for _, tc := range []struct {
		name          string
		first, second string
		want          feishu.RunStatus
	}{
		{"non-final then final keeps final", "IN_PROGRESS", "COMPLETED", feishu.StatusCompleted},
		{"final then non-final keeps final", "FAILED", "IN_PROGRESS", feishu.StatusFailed},
		{"non-final twice keeps the later", "QUEUED", "IN_PROGRESS", feishu.StatusInProgress},
		{"final twice keeps the later", "COMPLETED", "CANCELLED", feishu.StatusCancelled},
		{"unknown status is not final", "COMPLETED", "SOMETHING_NEW", feishu.StatusCompleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newStaticServer(t, nil, nil,
				jsonOK(page(true, "p2", run(tc.first), `{"id":"run_b","status":"QUEUED"}`)),
				jsonOK(page(false, "", run(tc.second))))
			runs, err := c.ListRuns(context.Background(), testSession)
			if err != nil {
				t.Fatalf("ListRuns: %v", err)
			}
			if diff := cmp.Diff([]string{"run_a", "run_b"}, runIDs(runs)); diff != "" {
				t.Fatalf("runs (-want +got):\n%s", diff)
			}
			if runs[0].Status != tc.want {
				t.Errorf("status = %s, want %s", runs[0].Status, tc.want)
			}
		})
	}
}

func TestListingThatDoesNotEndIsAnError(t *testing.T) {
	t.Run("repeated page token", func(t *testing.T) {
		e := newTestEnv(t, feishufake.Options{})
		e.addRuns(testSession, 50)
		e.fake.SetFault(feishufake.Scope{SessionID: testSession}, feishufake.Fault{Kind: feishufake.RepeatPageToken})
		_, err := e.client(t).ListRuns(context.Background(), testSession)
		if err == nil || !strings.Contains(err.Error(), "repeats an earlier page token") {
			t.Fatalf("err = %v, want a repeated page token error", err)
		}
		if n := e.fake.Requests("list_runs"); n != 2 {
			t.Errorf("list requests = %d, want 2", n)
		}
	})
	t.Run("more pages than MaxPages", func(t *testing.T) {
		e := newTestEnv(t, feishufake.Options{})
		e.addRuns(testSession, 100)
		_, err := e.client(t, func(c *feishu.Config) { c.MaxPages = 3 }).ListRuns(context.Background(), testSession)
		if err == nil || !strings.Contains(err.Error(), "more than 3 pages") {
			t.Fatalf("err = %v, want a too many pages error", err)
		}
		if n := e.fake.Requests("list_runs"); n != 3 {
			t.Errorf("list requests = %d, want 3", n)
		}
	})
	t.Run("has_more without a page token", func(t *testing.T) {
		c, _ := newStaticServer(t, nil, nil, jsonOK(page(true, "", `{"id":"run_a"}`)))
		_, err := c.ListRuns(context.Background(), testSession)
		if err == nil || !strings.Contains(err.Error(), "no page token") {
			t.Fatalf("err = %v, want a missing page token error", err)
		}
	})
}

func TestEachRunPageStopsWhenTold(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 100)
	c := e.client(t)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		fnErr   error
		wantErr error
	}{
		{"ErrStop ends the listing without an error", feishu.ErrStop, nil},
		{"another error is returned as it is", boom, boom},
		{"a wrapped ErrStop is ErrStop too", fmt.Errorf("enough: %w", feishu.ErrStop), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.fake.Requests("list_runs")
			pages := 0
			err := c.EachRunPage(context.Background(), testSession, func(page []feishu.Run) error {
				pages++
				if pages == 2 {
					return tc.fnErr
				}
				return nil
			})
			if err != tc.wantErr {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if n := e.fake.Requests("list_runs") - before; n != 2 {
				t.Errorf("list requests = %d, want 2", n)
			}
		})
	}
}

func TestListRunsReportsMalformedRunsAndKeepsGoing(t *testing.T) {
	obs := &observer{}
	c, _ := newStaticServer(t, obs, nil, jsonOK(page(false, "",
		`{"id":"run_ok","created_at":"1711975665710","status":"COMPLETED","started_at":1711975665711,"ended_at":null}`,
		`{"id":"run_badtime","created_at":"yesterday","status":"FAILED","ended_at":"-5"}`,
		`{"id":"run_badtype","created_at":"1711975665710","status":42}`,
		`{"status":"QUEUED"}`,
		`"not a run"`,
	)))
	runs, err := c.ListRuns(context.Background(), testSession)
	if err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	if diff := cmp.Diff([]string{"run_ok", "run_badtime", "run_badtype"}, runIDs(runs)); diff != "" {
		t.Fatalf("runs (-want +got):\n%s", diff)
	}
	if !runs[0].StartedAt.Equal(time.UnixMilli(1711975665711)) || !runs[0].EndedAt.IsZero() {
		t.Errorf("run_ok times = %v, %v; want a numeric started_at accepted and a null ended_at zero", runs[0].StartedAt, runs[0].EndedAt)
	}
	if !runs[1].CreatedAt.IsZero() || !runs[1].EndedAt.IsZero() || runs[1].Status != feishu.StatusFailed {
		t.Errorf("run_badtime = %+v, want zero times and status kept", runs[1])
	}
	if !runs[2].CreatedAt.Equal(time.UnixMilli(1711975665710)) || runs[2].SessionID != testSession {
		t.Errorf("run_badtype = %+v, want its good fields kept and the session filled in", runs[2])
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.malformed) != 4 {
		t.Fatalf("malformed runs reported = %q, want 4", obs.malformed)
	}
	for i, prefix := range []string{testSession + " run_badtime:", testSession + " run_badtype:", testSession + " :", testSession + " :"} {
		if !strings.HasPrefix(obs.malformed[i], prefix) {
			t.Errorf("malformed report %d = %q, want prefix %q", i, obs.malformed[i], prefix)
		}
	}
}

func TestListRunsRejectsAnEmptySessionID(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	if _, err := e.client(t).ListRuns(context.Background(), ""); err == nil {
		t.Fatal("ListRuns(\"\") succeeded")
	}
	if n := e.fake.Requests("list_runs") + e.fake.Requests("tenant_token"); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

func TestPageSizeFallsBackTo20WhenRejected(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{MaxPageSize: 30})
	e.addRuns(testSession, 45)
	c := e.client(t, func(c *feishu.Config) { c.PageSize = 50 })

	for range 2 {
		runs, err := c.ListRuns(context.Background(), testSession)
		if err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
		if len(runs) != 45 {
			t.Fatalf("runs = %d, want 45", len(runs))
		}
	}
	want := []string{"50", "20", "20", "20", "20", "20", "20"}
	if diff := cmp.Diff(want, e.PageSizes()); diff != "" {
		t.Errorf("page sizes asked (-want +got):\n%s", diff)
	}
}

func TestPageSizeIsKeptWhenTheSessionIsUnknown(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 5)
	c := e.client(t, func(c *feishu.Config) { c.PageSize = 50 })

	_, err := c.ListRuns(context.Background(), "session_unknown")
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != feishu.CodeParamInvalid || apiErr.HTTPStatus != http.StatusBadRequest {
		t.Fatalf("err = %v, want HTTP 400 code 2700001", err)
	}
	if _, err := c.ListRuns(context.Background(), testSession); err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	want := []string{"50", "20", "50"}
	if diff := cmp.Diff(want, e.PageSizes()); diff != "" {
		t.Errorf("page sizes asked (-want +got):\n%s", diff)
	}
}

func TestSlowPageReturnsTheContextsError(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 5)
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointListRuns}, feishufake.Fault{Kind: feishufake.Slow, Delay: time.Minute})
	c := e.client(t, func(c *feishu.Config) { c.Sleep = nil }) // the real sleeper: nothing may wait on it

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.ListRuns(ctx, testSession)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if n := e.fake.Requests("list_runs"); n != 1 {
		t.Errorf("list requests = %d, want 1 (no retry once the deadline passed)", n)
	}
}

func TestCancelledContextMakesNoRequest(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.client(t).ListRuns(ctx, testSession)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := e.fake.Requests("list_runs") + e.fake.Requests("tenant_token"); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
}

func hasCode(err error, code int) bool {
	var e *feishu.APIError
	return errors.As(err, &e) && e.Code == code
}
