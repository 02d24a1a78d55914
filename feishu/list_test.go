package feishu_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
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

				runs := mustList(t, c)
				got := runIDs(runs)
				slices.Sort(got)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("run IDs (-want +got):\n%s", diff)
				}
				e.wantRequests(t, tc.pages, "list_runs")
			})
		}
	}
}

func TestListRunsDecodesEveryField(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	want := []feishu.Run{
		fakeapi.Run(testSession, "run_queued", epoch, feishu.StatusQueued),
		fakeapi.Run(testSession, "run_failed", epoch.Add(time.Second), feishu.StatusFailed),
	}
	for _, r := range want {
		e.fake.PutRun(r)
	}
	runs := mustList(t, e.client(t))
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
				e.fake.PutRun(fakeapi.Run(testSession, fmt.Sprintf("run_new%d", i), epoch.Add(time.Hour), feishu.StatusQueued))
			}
			r := fakeapi.Run(testSession, changed, epoch.Add(40*time.Second), feishu.StatusCompleted)
			e.fake.PutRun(r)
		})
	})

	runs := mustList(t, e.client(t))
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
	e.wantRequests(t, 4, "list_runs") // 65 runs, 20 a page
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
			runs := mustList(t, c)
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
		e.wantRequests(t, 2, "list_runs")
	})
	t.Run("more pages than MaxPages", func(t *testing.T) {
		e := newTestEnv(t, feishufake.Options{})
		e.addRuns(testSession, 100)
		_, err := e.client(t, func(c *feishu.Config) { c.MaxPages = 3 }).ListRuns(context.Background(), testSession)
		if err == nil || !strings.Contains(err.Error(), "more than 3 pages") {
			t.Fatalf("err = %v, want a too many pages error", err)
		}
		e.wantRequests(t, 3, "list_runs")
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
	runs := mustList(t, c)
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
	e.wantRequests(t, 0, "list_runs", "tenant_token")
}

func TestPageSizeFallsBackTo20WhenRejected(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{MaxPageSize: 30})
	e.addRuns(testSession, 45)
	c := e.client(t, func(c *feishu.Config) { c.PageSize = 50 })

	for range 2 {
		runs := mustList(t, c)
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
	mustList(t, c)
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
	e.wantRequests(t, 1, "list_runs") // no retry once the deadline passed
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
	e.wantRequests(t, 0, "list_runs", "tenant_token")
}

func hasCode(err error, code int) bool {
	var e *feishu.APIError
	return errors.As(err, &e) && e.Code == code
}

func TestListRunsPageReadsPagesInEitherOrder(t *testing.T) {
	for _, order := range []feishufake.Order{feishufake.OldestFirst, feishufake.NewestFirst} {
		t.Run(order.String(), func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.fake.SetOrder(order)
			e.addRuns(testSession, 45)
			want := runIDs(e.fake.Runs(testSession)) // in the listing order
			c := e.client(t)

			var got []string
			var sizes []int
			token := ""
			for range 10 {
				p, err := c.ListRunsPage(context.Background(), testSession, token)
				if err != nil {
					t.Fatalf("ListRunsPage(%q): %v", token, err)
				}
				got = append(got, runIDs(p.Runs)...)
				sizes = append(sizes, len(p.Runs))
				if !p.HasMore {
					if p.NextPageToken != "" {
						t.Errorf("last page has NextPageToken %q, want \"\"", p.NextPageToken)
					}
					break
				}
				if p.NextPageToken == "" {
					t.Fatal("page with more runs has no NextPageToken")
				}
				token = p.NextPageToken
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("run IDs in order (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]int{20, 20, 5}, sizes); diff != "" {
				t.Errorf("page sizes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListRunsPageResumesFromATokenReturnedEarlier(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 50)
	all := runIDs(e.fake.Runs(testSession))
	c := e.client(t)

	first, err := c.ListRunsPage(context.Background(), testSession, "")
	if err != nil {
		t.Fatalf("first page: %v", err)
	}
	// Other listings, of this session and another, come in between.
	e.addRuns("session_other", 30)
	if _, err := c.ListRuns(context.Background(), "session_other"); err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	if _, err := c.ListRunsPage(context.Background(), testSession, ""); err != nil {
		t.Fatalf("first page again: %v", err)
	}

	second, err := c.ListRunsPage(context.Background(), testSession, first.NextPageToken)
	if err != nil {
		t.Fatalf("second page: %v", err)
	}
	if diff := cmp.Diff(all[20:40], runIDs(second.Runs)); diff != "" {
		t.Errorf("second page (-want +got):\n%s", diff)
	}
	if !second.HasMore || second.NextPageToken == "" || second.NextPageToken == first.NextPageToken {
		t.Errorf("second page HasMore %v, NextPageToken %q; want more and a new token", second.HasMore, second.NextPageToken)
	}
}

func TestListRunsPageWithARejectedPageTokenIs2700001(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 50)
	c := e.client(t)
	_, err := c.ListRunsPage(context.Background(), testSession, "bm90IGEgdG9rZW4=")
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || apiErr.Code != feishu.CodeParamInvalid || apiErr.HTTPStatus != http.StatusBadRequest || apiErr.Endpoint != feishu.EndpointListRuns {
		t.Fatalf("err = %v, want a list_runs APIError HTTP 400 code 2700001", err)
	}
	if !strings.Contains(err.Error(), testSession) {
		t.Errorf("err = %v, want it to name the session", err)
	}
	if got := c.PageSize(); got != 20 {
		t.Errorf("PageSize() = %d after a rejected token, want 20 as configured", got)
	}
}

func TestPageSizeReportsTheFallback(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{MaxPageSize: 30})
	e.addRuns(testSession, 45)
	c := e.client(t, func(c *feishu.Config) { c.PageSize = 50 })
	if got := c.PageSize(); got != 50 {
		t.Fatalf("PageSize() = %d before any request, want 50", got)
	}
	p, err := c.ListRunsPage(context.Background(), testSession, "")
	if err != nil {
		t.Fatalf("ListRunsPage: %v", err)
	}
	if len(p.Runs) != 20 || c.PageSize() != 20 {
		t.Errorf("page of %d runs, PageSize() = %d; want 20 and 20 after the fallback", len(p.Runs), c.PageSize())
	}
	if diff := cmp.Diff([]string{"50", "20"}, e.PageSizes()); diff != "" {
		t.Errorf("page sizes asked (-want +got):\n%s", diff)
	}
}

func TestListRunsPageRejectsAnEmptySessionID(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	if _, err := e.client(t).ListRunsPage(context.Background(), "", ""); err == nil {
		t.Fatal(`ListRunsPage("", "") succeeded`)
	}
	e.wantRequests(t, 0, "list_runs", "tenant_token")
}

func TestPageOfMoreThanTwiceThePageSizeIsAnError(t *testing.T) {
	runs := make([]string, 41)
	for i := range runs {
		runs[i] = fmt.Sprintf(`{"id":"run_%02d","status":"COMPLETED"}`, i)
	}
	for _, tc := range []struct {
		name    string
		runs    int
		wantErr bool
	}{
		{"twice the page size is accepted", 40, false},
		{"one more is an error", 41, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &staticHandler{responses: []cannedResponse{jsonOK(page(false, "", runs[:tc.runs]...))}}
			c := newClientOf(t, h, func(c *feishu.Config) { c.PageSize = 20 })
			p, err := c.ListRunsPage(context.Background(), testSession, "")
			if !tc.wantErr {
				if err != nil || len(p.Runs) != tc.runs {
					t.Fatalf("%d runs, err %v; want %d runs", len(p.Runs), err, tc.runs)
				}
				return
			}
			var apiErr *feishu.APIError
			if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Msg, fmt.Sprintf("page has %d runs, more than twice the page size", tc.runs)) {
				t.Fatalf("err = %v, want a page too large APIError", err)
			}
		})
	}
}

func TestPageNestedTooDeeplySaysSo(t *testing.T) {
	// encoding/json refuses nesting deeper than 10,000 levels; the error
	// must say that rather than quote the start of the body only.
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for _, tc := range []struct{ name, body string }{
		{"in a run", page(false, "", `{"id":"run_1","status":"COMPLETED","metadata":`+deep+`}`)},
		{"in the envelope", `{"code":0,"msg":` + deep + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newStaticServer(t, nil, nil, jsonOK(tc.body))
			_, err := c.ListRunsPage(context.Background(), testSession, "")
			var apiErr *feishu.APIError
			if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Msg, "nested too deeply") || !strings.Contains(apiErr.Msg, "max depth") {
				t.Fatalf("err = %v, want an APIError saying the body is nested too deeply", err)
			}
		})
	}
}

func TestHugePageIsRefusedBeforeItIsDecoded(t *testing.T) {
	// 100,000 runs in one 6.7 MB page once peaked at 186 MB of RSS: a page
	// body is capped by the page size asked, well below the client's cap.
	runs := make([]string, 100000)
	for i := range runs {
		runs[i] = fmt.Sprintf(`{"id":"run_%06d","status":"COMPLETED","created_at":"1711975665710"}`, i)
	}
	h := &staticHandler{responses: []cannedResponse{jsonOK(page(false, "", runs...))}}
	c := newClientOf(t, h, func(c *feishu.Config) { c.PageSize = 50 })
	_, err := c.ListRunsPage(context.Background(), testSession, "")
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Msg, "response body larger than") {
		t.Fatalf("err = %v, want the body refused as too large", err)
	}
}

func TestListingEndsAtHasMoreFalseEvenWithAPageToken(t *testing.T) {
	// A page may carry a page token and still say it is the last one; the
	// token means nothing then.
	first := jsonOK(page(false, "dG9rZW4tb2YtcGFnZS0y", `{"id":"run_1","status":"COMPLETED"}`))
	second := jsonOK(page(false, "", `{"id":"run_2","status":"COMPLETED"}`))

	t.Run("ListRuns", func(t *testing.T) {
		c, h := newStaticServer(t, nil, nil, first, second)
		runs := mustList(t, c)
		if diff := cmp.Diff([]string{"run_1"}, runIDs(runs)); diff != "" {
			t.Errorf("runs (-want +got):\n%s", diff)
		}
		if n := h.Served(); n != 1 {
			t.Errorf("list requests = %d, want 1", n)
		}
	})
	t.Run("ListRunsPage", func(t *testing.T) {
		c, _ := newStaticServer(t, nil, nil, first, second)
		p, err := c.ListRunsPage(context.Background(), testSession, "")
		if err != nil {
			t.Fatalf("ListRunsPage: %v", err)
		}
		if p.HasMore || p.NextPageToken != "" {
			t.Errorf("HasMore %v, NextPageToken %q; want false and none", p.HasMore, p.NextPageToken)
		}
	})
}

func TestPageSizeOf20IsNotAskedAgainOn2700001(t *testing.T) {
	// 20 is the fallback itself: a 2700001 answer to it (an unknown session
	// here) is final, not a reason to ask again with 20.
	e := newTestEnv(t, feishufake.Options{})
	c := e.client(t, func(c *feishu.Config) { c.PageSize = 20 })
	_, err := c.ListRuns(context.Background(), "session_unknown")
	if !hasCode(err, feishu.CodeParamInvalid) {
		t.Fatalf("err = %v, want code 2700001", err)
	}
	if diff := cmp.Diff([]string{"20"}, e.PageSizes()); diff != "" {
		t.Errorf("page sizes asked (-want +got):\n%s", diff)
	}
}

// benchRuns and benchPageSize shape the listing BenchmarkListRunsHTTP reads:
// a busy session read in full, a hundred runs a page.
const (
	benchRuns     = 10_000
	benchPageSize = 100
)

// BenchmarkListRunsHTTP lists a session of benchRuns runs over real HTTP
// (loopback) and reports the cost per run fetched:
//   - "fake" serves the pages from feishufake, so the figures include the
//     fake computing and encoding each page in the same process;
//   - "static" serves the same pages as precomputed bodies, so the figures
//     are the client's own cost (HTTP round trip included).
func BenchmarkListRunsHTTP(b *testing.B) {
	fake := feishufake.New(feishufake.Options{})
	fake.AddApp(testAppID, testAppSecret)
	fake.AddSession(testSession)
	for i := range benchRuns {
		st := feishu.KnownStatuses()[i%len(feishu.KnownStatuses())]
		fake.PutRun(fakeapi.Run(testSession, fmt.Sprintf("run_%010d", i), epoch.Add(time.Duration(i)*time.Second), st))
	}

	b.Run("fake", func(b *testing.B) {
		benchListing(b, fake)
	})
	b.Run("static", func(b *testing.B) {
		benchListing(b, fakeapi.CapturePages(b, fake, testSession, benchPageSize))
	})
}

func benchListing(b *testing.B, h http.Handler) {
	c := fakeapi.NewClient(b, feishu.Config{BaseURL: fakeapi.Serve(b, h, nil).URL, AppID: testAppID, AppSecret: testAppSecret, PageSize: benchPageSize})
	ctx := context.Background()
	list := func() int {
		n := 0
		err := c.EachRunPage(ctx, testSession, func(page []feishu.Run) error {
			n += len(page)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	if n := list(); n != benchRuns { // also gets the token
		b.Fatalf("listed %d runs, want %d", n, benchRuns)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		list()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	runs := float64(b.N) * benchRuns
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/runs, "ns/run")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/runs, "B/run")
}
