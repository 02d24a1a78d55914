package feishu_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
)

func TestRequestsCarryTheDocumentedHeaders(t *testing.T) {
	type seen struct{ method, path, query, auth, ua, ctype, body string }
	got := make(chan seen, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body strings.Builder
		_, _ = io.Copy(&body, r.Body)
		got <- seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.Header.Get("Content-Type"), body.String()}
		if r.URL.Path == feishufake.TokenPath {
			_, _ = w.Write([]byte(`{"code":0,"msg":"ok","tenant_access_token":"t-abc","expire":7200}`))
			return
		}
		_, _ = w.Write([]byte(page(false, "")))
	})
	c := newClientOf(t, h, func(c *feishu.Config) { c.PageSize = 0 })
	if _, err := c.ListRuns(context.Background(), "session a/b"); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{"POST", feishufake.TokenPath, "", "", "aily_exporter", "application/json; charset=utf-8", `{"app_id":"` + testAppID + `","app_secret":"` + testAppSecret + `"}`},
		{"GET", "/open-apis/aily/v1/sessions/session%20a%2Fb/runs", "page_size=50", "Bearer t-abc", "aily_exporter", "", ""},
	}
	for i, w := range want {
		if g := <-got; g != w {
			t.Errorf("request %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestRateLimitedRequestWaitsAsToldThenSucceeds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endpoint feishu.Endpoint
		fault    feishufake.Fault
		want     time.Duration
	}{
		{"HTTP 429 with reset header", feishu.EndpointListRuns, feishufake.Fault{Kind: feishufake.RateLimit429, Times: 2, ResetSeconds: 3}, 3 * time.Second},
		{"code 99991400 with HTTP 400", feishu.EndpointListRuns, feishufake.Fault{Kind: feishufake.RateLimit400, Times: 2, ResetSeconds: 2}, 2 * time.Second},
		{"HTTP 429 without reset header waits 1s", feishu.EndpointListRuns, feishufake.Fault{Kind: feishufake.RateLimit429, Times: 2, ResetSeconds: -1}, time.Second},
		{"token endpoint rate limited", feishu.EndpointTenantToken, feishufake.Fault{Kind: feishufake.RateLimit429, Times: 2, ResetSeconds: 4}, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.addRuns(testSession, 3)
			e.fake.SetFault(feishufake.Scope{Endpoint: tc.endpoint}, tc.fault)
			runs := mustList(t, e.client(t))
			if len(runs) != 3 {
				t.Errorf("runs = %d, want 3", len(runs))
			}
			want := []time.Duration{tc.want, tc.want}
			if diff := cmp.Diff(want, e.sleep.Waits()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			e.obs.mu.Lock()
			defer e.obs.mu.Unlock()
			if diff := cmp.Diff(want, e.obs.rateLimited); diff != "" {
				t.Errorf("rate limits observed (-want +got):\n%s", diff)
			}
			if n := count(e.obs.requests, string(tc.endpoint)+" 99991400"); n != 2 {
				t.Errorf("requests observed = %q, want two %s 99991400", e.obs.requests, tc.endpoint)
			}
		})
	}
}

func TestRateLimitWaitPastTheDeadlineFailsAtOnce(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointListRuns}, feishufake.Fault{Kind: feishufake.RateLimit429, ResetSeconds: 30})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.client(t).ListRuns(ctx, testSession)
	if !feishu.IsRateLimited(err) {
		t.Fatalf("err = %v, want a rate-limit error", err)
	}
	if w := e.sleep.Waits(); len(w) != 0 {
		t.Errorf("waits = %v, want none", w)
	}
	e.wantRequests(t, 1, "list_runs")
}

func TestPersistentRateLimitGivesUpAfterFiveRetries(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointListRuns}, feishufake.Fault{Kind: feishufake.RateLimit429})
	_, err := e.client(t).ListRuns(context.Background(), testSession)
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusTooManyRequests || apiErr.LogID == "" {
		t.Fatalf("err = %v, want HTTP 429 with a log ID", err)
	}
	e.wantRequests(t, 6, "list_runs")
	if n := len(e.sleep.Waits()); n != 5 {
		t.Errorf("waits = %d, want 5", n)
	}
}

func TestRateLimitHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"Retry-After when no reset header", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"reset header wins over Retry-After", map[string]string{"X-Ogw-Ratelimit-Reset": "2", "Retry-After": "7"}, 2 * time.Second},
		{"fractional seconds", map[string]string{"X-Ogw-Ratelimit-Reset": "0.5"}, 500 * time.Millisecond},
		{"unparsable header waits 1s", map[string]string{"X-Ogw-Ratelimit-Reset": "soon"}, time.Second},
		{"negative header waits 1s", map[string]string{"Retry-After": "-3"}, time.Second},
		{"huge header is capped", map[string]string{"X-Ogw-Ratelimit-Reset": "100000"}, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sl := &sleeper{}
			limited := cannedResponse{status: http.StatusTooManyRequests, header: tc.header, body: `{"code":99991400,"msg":"request trigger frequency limit"}`}
			c, _ := newStaticServer(t, nil, sl, limited, jsonOK(page(false, "")))
			mustList(t, c)
			if diff := cmp.Diff([]time.Duration{tc.want}, sl.Waits()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServerErrorsAreRetriedWithBackoff(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fault     feishufake.Fault
		wantErr   bool
		wantWaits []time.Duration
		wantCalls int
	}{
		{"500 twice then success", feishufake.Fault{Kind: feishufake.ServerError, Times: 2}, false, []time.Duration{150 * time.Millisecond, 300 * time.Millisecond}, 3},
		{"503 with an empty body once then success", feishufake.Fault{Kind: feishufake.ServerError, Times: 1, HTTPStatus: 503, EmptyBody: true}, false, []time.Duration{150 * time.Millisecond}, 2},
		{"500 every time fails after 3 attempts", feishufake.Fault{Kind: feishufake.ServerError}, true, []time.Duration{150 * time.Millisecond, 300 * time.Millisecond}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.addRuns(testSession, 3)
			e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointListRuns}, tc.fault)
			_, err := e.client(t).ListRuns(context.Background(), testSession)
			if tc.wantErr {
				var apiErr *feishu.APIError
				if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusInternalServerError {
					t.Fatalf("err = %v, want HTTP 500", err)
				}
			} else if err != nil {
				t.Fatalf("ListRuns: %v", err)
			}
			if diff := cmp.Diff(tc.wantWaits, e.sleep.Waits()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			e.wantRequests(t, tc.wantCalls, "list_runs")
		})
	}
}

func TestBackoffIsSkippedWhenItWouldPassTheDeadline(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointListRuns}, feishufake.Fault{Kind: feishufake.ServerError})
	c := e.client(t, func(c *feishu.Config) { c.MaxAttempts = 20 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.ListRuns(ctx, testSession)
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusInternalServerError {
		t.Fatalf("err = %v, want HTTP 500", err)
	}
	// 150ms, 300ms, 600ms fit in a second; 1.2s does not.
	if n := len(e.sleep.Waits()); n > 3 {
		t.Errorf("waits = %v, want at most 3", e.sleep.Waits())
	}
}

func TestTransportErrorsAreRetried(t *testing.T) {
	// A listener that accepts and at once closes every connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.Close()
		}
	}()
	obs := &observer{}
	sl := &sleeper{}
	c, err := feishu.NewClient(feishu.Config{
		BaseURL: "http://" + ln.Addr().String(), UserAccessTokenFile: writeTokenFile(t, "u-token"),
		Observer: obs, Sleep: sl.Sleep, Rand: func() float64 { return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListRuns(context.Background(), testSession)
	var apiErr *feishu.APIError
	if err == nil || errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if diff := cmp.Diff([]string{"list_runs transport", "list_runs transport", "list_runs transport"}, obs.Requests()); diff != "" {
		t.Errorf("requests observed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, sl.Waits()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestClientSideRateLimit(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	// One request a second with a burst of one: the token call takes the
	// burst, and the list call would have to wait past the deadline.
	c := e.client(t, func(c *feishu.Config) { c.RateLimit = 0.5 })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := c.ListRuns(ctx, testSession)
	if err == nil || !strings.Contains(err.Error(), "client-side rate limit") {
		t.Fatalf("err = %v, want a client-side rate limit error", err)
	}
	e.wantRequests(t, 0, "list_runs")

	fast := e.client(t, func(c *feishu.Config) { c.RateLimit = 1000 })
	if _, err := fast.ListRuns(context.Background(), testSession); err != nil {
		t.Fatalf("ListRuns under a generous limit: %v", err)
	}
}

func TestRequestCutByTheCallersContextIsObservedAsCanceled(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(ctx context.Context, c *feishu.Client) error
		ep   feishu.Endpoint
	}{
		{"list page, deadline", func(ctx context.Context, c *feishu.Client) error {
			_, err := c.ListRunsPage(ctx, testSession, "")
			return err
		}, feishu.EndpointListRuns},
		{"get run, deadline", func(ctx context.Context, c *feishu.Client) error {
			_, err := c.GetRun(ctx, testSession, "run_x")
			return err
		}, feishu.EndpointGetRun},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, feishufake.Options{})
			e.fake.PutRun(fakeapi.Run(testSession, "run_x", epoch, feishu.StatusCompleted))
			e.fake.SetFault(feishufake.Scope{Endpoint: tc.ep}, feishufake.Fault{Kind: feishufake.Slow, Delay: time.Minute})
			c := e.client(t, func(c *feishu.Config) { c.Sleep = nil })
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := tc.call(ctx, c); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want context.DeadlineExceeded", err)
			}
			if diff := cmp.Diff([]string{"tenant_token 0", string(tc.ep) + " canceled"}, e.obs.Requests()); diff != "" {
				t.Errorf("requests observed (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("list page, cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The server cancels the caller's context once the request reached
		// it, then answers only when the client has gone.
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == feishufake.TokenPath {
				_, _ = w.Write([]byte(`{"code":0,"msg":"ok","tenant_access_token":"t-static0123456789","expire":7200}`))
				return
			}
			cancel()
			<-r.Context().Done()
		})
		obs := &observer{}
		c := newClientOf(t, h, func(c *feishu.Config) { c.Observer = obs })
		_, err := c.ListRunsPage(ctx, testSession, "")
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if diff := cmp.Diff([]string{"tenant_token 0", "list_runs canceled"}, obs.Requests()); diff != "" {
			t.Errorf("requests observed (-want +got):\n%s", diff)
		}
	})
}
