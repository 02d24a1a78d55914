package feishu_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/google/go-cmp/cmp"
)

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
	if n := e.fake.Requests("list_runs") + e.fake.Requests("tenant_token"); n != 0 {
		t.Errorf("requests = %d, want 0", n)
	}
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
