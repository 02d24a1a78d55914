package feishu_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
)

func TestGetRunReturnsTheRunWithEveryField(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	want := fakeapi.Run(testSession, "run_failed", epoch, feishu.StatusFailed)
	e.fake.PutRun(want)
	e.fake.PutRun(fakeapi.Run(testSession, "run_other", epoch.Add(time.Second), feishu.StatusCompleted))

	got, err := e.client(t).GetRun(context.Background(), testSession, "run_failed")
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("run (-want +got):\n%s", diff)
	}
	if n, list := e.fake.Requests("get_run"), e.fake.Requests("list_runs"); n != 1 || list != 0 {
		t.Errorf("get requests = %d, list requests = %d; want 1 and 0", n, list)
	}
	if diff := cmp.Diff([]string{"tenant_token 0", "get_run 0"}, e.obs.Requests()); diff != "" {
		t.Errorf("requests observed (-want +got):\n%s", diff)
	}
}

func TestGetRunOfAnUnknownRunIs2700001(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	c := e.client(t)
	for _, tc := range []struct{ name, session, run string }{
		{"unknown run of a known session", testSession, "run_unknown"},
		{"unknown session", "session_unknown", "run_unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.GetRun(context.Background(), tc.session, tc.run)
			var apiErr *feishu.APIError
			if !errors.As(err, &apiErr) || apiErr.Code != feishu.CodeParamInvalid || apiErr.HTTPStatus != http.StatusBadRequest ||
				apiErr.Endpoint != feishu.EndpointGetRun || apiErr.LogID == "" {
				t.Fatalf("err = %v, want a get_run APIError HTTP 400 code 2700001 with a log ID", err)
			}
			if !strings.Contains(err.Error(), tc.run) || !strings.Contains(err.Error(), tc.session) {
				t.Errorf("err = %v, want it to name the run and the session", err)
			}
		})
	}
	e.wantRequests(t, 2, "get_run") // no retry of a 2700001
}

func TestGetRunRenewsARejectedTokenOnce(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	ids := e.addRuns(testSession, 1)
	c := e.client(t)
	if _, err := c.GetRun(context.Background(), testSession, ids[0]); err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	e.fake.ExpireTokens() // 99991663 for the cached token
	r, err := c.GetRun(context.Background(), testSession, ids[0])
	if err != nil {
		t.Fatalf("GetRun after the token was revoked: %v", err)
	}
	if r.ID != ids[0] {
		t.Errorf("run = %s, want %s", r.ID, ids[0])
	}
	want := []string{"tenant_token 0", "get_run 0", "get_run 99991663", "tenant_token 0", "get_run 0"}
	if got := e.obs.Requests(); !slices.Equal(got, want) {
		t.Errorf("requests observed = %q, want %q", got, want)
	}

	// A token refused again after the renewal is an error, not a loop.
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointGetRun}, feishufake.Fault{Kind: feishufake.InvalidToken})
	before := e.fake.Requests("tenant_token")
	if _, err := c.GetRun(context.Background(), testSession, ids[0]); !feishu.IsAuth(err) || !hasCode(err, feishu.CodeTokenInvalid) {
		t.Fatalf("err = %v, want an auth error with code 99991663", err)
	}
	if n := e.fake.Requests("tenant_token") - before; n != 1 {
		t.Errorf("token requests = %d, want 1 (one renewal)", n)
	}
}

func TestGetRunWaitsOutARateLimit(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	ids := e.addRuns(testSession, 1)
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointGetRun}, feishufake.Fault{Kind: feishufake.RateLimit429, Times: 2, ResetSeconds: 3})
	r, err := e.client(t).GetRun(context.Background(), testSession, ids[0])
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if r.ID != ids[0] {
		t.Errorf("run = %s, want %s", r.ID, ids[0])
	}
	want := []time.Duration{3 * time.Second, 3 * time.Second}
	if diff := cmp.Diff(want, e.sleep.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"tenant_token 0", "get_run 99991400", "get_run 99991400", "get_run 0"}, e.obs.Requests()); diff != "" {
		t.Errorf("requests observed (-want +got):\n%s", diff)
	}
}

func TestGetRunAnswersThatAreNotARun(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"no data", `{"code":0,"msg":"success"}`, "response without data.run"},
		{"data without run", `{"code":0,"msg":"success","data":{}}`, "response without data.run"},
		{"run of the wrong type", `{"code":0,"msg":"success","data":{"run":"run_a"}}`, "data.run has no id"},
		{"run without an id", `{"code":0,"msg":"success","data":{"run":{"status":"COMPLETED"}}}`, "data.run has no id"},
		{"another run", `{"code":0,"msg":"success","data":{"run":{"id":"run_b"}}}`, "data.run is run run_b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newStaticServer(t, nil, nil, jsonOK(tc.body))
			_, err := c.GetRun(context.Background(), testSession, "run_a")
			var apiErr *feishu.APIError
			if !errors.As(err, &apiErr) || apiErr.Endpoint != feishu.EndpointGetRun || !strings.Contains(apiErr.Msg, tc.want) {
				t.Fatalf("err = %v, want a get_run APIError saying %q", err, tc.want)
			}
		})
	}
}

func TestGetRunKeepsAMalformedRunAndReportsIt(t *testing.T) {
	obs := &observer{}
	c, _ := newStaticServer(t, obs, nil, jsonOK(
		`{"code":0,"msg":"success","data":{"run":{"id":"run_a","created_at":"yesterday","status":"FAILED","started_at":1711975665711,"app_id":5}}}`))
	r, err := c.GetRun(context.Background(), testSession, "run_a")
	if err != nil {
		t.Fatalf("GetRun: %v", err)
	}
	if r.Status != feishu.StatusFailed || !r.CreatedAt.IsZero() || !r.StartedAt.Equal(time.UnixMilli(1711975665711)) || r.AppID != "" || r.SessionID != testSession {
		t.Errorf("run = %+v, want the good fields kept, the bad ones zero and the session filled in", r)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.malformed) != 1 || !strings.HasPrefix(obs.malformed[0], testSession+" run_a:") ||
		!strings.Contains(obs.malformed[0], "created_at") || !strings.Contains(obs.malformed[0], "app_id") {
		t.Errorf("malformed runs reported = %q, want run_a's created_at and app_id", obs.malformed)
	}
}

func TestGetRunRejectsEmptyIDs(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	c := e.client(t)
	for _, ids := range [][2]string{{"", "run_a"}, {testSession, ""}} {
		if _, err := c.GetRun(context.Background(), ids[0], ids[1]); err == nil {
			t.Errorf("GetRun(%q, %q) succeeded", ids[0], ids[1])
		}
	}
	e.wantRequests(t, 0, "get_run", "tenant_token")
}
