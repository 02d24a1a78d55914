package feishu_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/google/go-cmp/cmp"
)

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
			runs, err := e.client(t).ListRuns(context.Background(), testSession)
			if err != nil {
				t.Fatalf("ListRuns: %v", err)
			}
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
	if n := e.fake.Requests("list_runs"); n != 1 {
		t.Errorf("list requests = %d, want 1", n)
	}
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
	if n := e.fake.Requests("list_runs"); n != 6 {
		t.Errorf("list requests = %d, want 6", n)
	}
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
			if _, err := c.ListRuns(context.Background(), testSession); err != nil {
				t.Fatalf("ListRuns: %v", err)
			}
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
			if n := e.fake.Requests("list_runs"); n != tc.wantCalls {
				t.Errorf("list requests = %d, want %d", n, tc.wantCalls)
			}
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

func TestBodiesThatAreNotTheExpectedJSON(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resp       cannedResponse
		wantStatus int
		wantMsg    string
		wantCode   string
	}{
		{"plain-text 404", cannedResponse{status: 404, header: map[string]string{"Content-Type": "text/plain"}, body: "404 page not found\n"}, 404, "404 page not found", "http_404"},
		{"HTML error page", cannedResponse{status: 502, body: "<html>\n<body>Bad Gateway</body></html>"}, 502, "<html> <body>Bad Gateway</body></html>", "http_502"},
		{"truncated JSON", jsonOK(`{"code":0,"msg":"success","data":{"ru`), 200, `{"code":0,"msg":"success","data":{"ru`, "http_200"},
		{"JSON without a code", jsonOK(`{"data":{}}`), 200, `response without a code: {"data":{}}`, "http_200"},
		{"JSON with data of the wrong shape", jsonOK(`{"code":0,"data":{"runs":"many"}}`), 200, "decode runs page", "0"},
		{"long body is cut", cannedResponse{status: 404, body: strings.Repeat("é", 300)}, 404, strings.Repeat("é", 48) + "…", "http_404"},
		{"empty body", cannedResponse{status: 404}, 404, "empty body", "http_404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &observer{}
			c, h := newStaticServer(t, obs, nil, tc.resp)
			_, err := c.ListRuns(context.Background(), testSession)
			var apiErr *feishu.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if apiErr.HTTPStatus != tc.wantStatus || !strings.HasPrefix(apiErr.Msg, tc.wantMsg) {
				t.Errorf("APIError = %+v, want HTTP %d and msg %q", apiErr, tc.wantStatus, tc.wantMsg)
			}
			if len(apiErr.Msg) > 100 && !strings.HasPrefix(apiErr.Msg, "decode") {
				t.Errorf("msg is %d bytes, want at most 100", len(apiErr.Msg))
			}
			if tc.wantStatus == 404 && !feishu.IsNotFound(err) {
				t.Errorf("IsNotFound(%v) = false", err)
			}
			wantServed := 1
			if tc.wantStatus >= 500 {
				wantServed = 3
			}
			if n := h.Served(); n != wantServed {
				t.Errorf("list requests = %d, want %d", n, wantServed)
			}
			if got := obs.Requests(); got[len(got)-1] != "list_runs "+tc.wantCode {
				t.Errorf("requests observed = %q, want the last %q", got, "list_runs "+tc.wantCode)
			}
		})
	}
}

func TestFakeFaultsThatAreNotJSON(t *testing.T) {
	for _, tc := range []struct {
		name       string
		kind       feishufake.FaultKind
		wantStatus int
	}{
		{"plain-text 404", feishufake.NotFoundText, http.StatusNotFound},
		{"malformed JSON", feishufake.MalformedJSON, http.StatusOK},
	} {
		for _, ep := range []feishu.Endpoint{feishu.EndpointListRuns, feishu.EndpointTenantToken} {
			t.Run(tc.name+" from "+string(ep), func(t *testing.T) {
				e := newTestEnv(t, feishufake.Options{})
				e.addRuns(testSession, 3)
				e.fake.SetFault(feishufake.Scope{Endpoint: ep}, feishufake.Fault{Kind: tc.kind})
				_, err := e.client(t).ListRuns(context.Background(), testSession)
				var apiErr *feishu.APIError
				if !errors.As(err, &apiErr) || apiErr.HTTPStatus != tc.wantStatus || apiErr.Endpoint != ep {
					t.Fatalf("err = %v, want an *APIError of %s with HTTP %d", err, ep, tc.wantStatus)
				}
				if !strings.Contains(err.Error(), "list runs of session "+testSession) {
					t.Errorf("err = %v, want it to name the session", err)
				}
				if n := e.fake.Requests(string(ep)); n != 1 {
					t.Errorf("%s requests = %d, want 1 (not retried)", ep, n)
				}
			})
		}
	}
}

func TestLogIDFallsBackToXRequestID(t *testing.T) {
	c, _ := newStaticServer(t, nil, nil, cannedResponse{status: 403, header: map[string]string{"X-Request-Id": "req-123"}, body: `{"code":99991672,"msg":"Access denied"}`})
	_, err := c.ListRuns(context.Background(), testSession)
	var apiErr *feishu.APIError
	if !errors.As(err, &apiErr) || apiErr.LogID != "req-123" || apiErr.Code != feishu.CodeScopeMissing || !feishu.IsAuth(err) {
		t.Fatalf("err = %v, want code 99991672 with log ID req-123", err)
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
	if n := e.fake.Requests("list_runs"); n != 0 {
		t.Errorf("list requests = %d, want 0", n)
	}

	fast := e.client(t, func(c *feishu.Config) { c.RateLimit = 1000 })
	if _, err := fast.ListRuns(context.Background(), testSession); err != nil {
		t.Fatalf("ListRuns under a generous limit: %v", err)
	}
}

func TestNoSecretInErrorsOrPrintedValues(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 3)
	cfg := e.config()
	c := e.client(t)

	var texts []string
	if _, err := c.ListRuns(context.Background(), testSession); err != nil {
		t.Fatal(err)
	}
	faults := []feishufake.Fault{
		{Kind: feishufake.InvalidToken},
		{Kind: feishufake.TokenEndpointFailure},
		{Kind: feishufake.NotFoundText},
		{Kind: feishufake.MalformedJSON},
		{Kind: feishufake.ServerError},
		{Kind: feishufake.RateLimit429},
	}
	for _, ep := range []feishu.Endpoint{feishu.EndpointTenantToken, feishu.EndpointListRuns} {
		for _, fl := range faults {
			e.fake.ClearFaults()
			e.fake.ExpireTokens()
			e.fake.SetFault(feishufake.Scope{Endpoint: ep}, fl)
			// Faults that do not apply to an endpoint leave it working.
			if _, err := c.ListRuns(context.Background(), testSession); err != nil {
				texts = append(texts, err.Error())
			}
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
		texts = append(texts,
			fmt.Sprintf(verb, cfg), fmt.Sprintf(verb, &cfg), fmt.Sprintf(verb, cfg.AppSecret),
			fmt.Sprintf(verb, c), fmt.Sprintf(verb, struct{ C *feishu.Client }{c}))
	}
	for _, v := range []any{cfg.AppSecret, struct{ S feishu.Secret }{cfg.AppSecret}, map[string]feishu.Secret{"s": cfg.AppSecret}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(b))
	}
	if b, err := cfg.AppSecret.MarshalText(); err != nil || string(b) != "<secret>" {
		t.Errorf("MarshalText = %q, %v", b, err)
	}

	if len(texts) < 10 {
		t.Fatalf("only %d errors to look at", len(texts))
	}
	secrets := append([]string{testAppSecret}, e.Bearers()...)
	slices.Sort(secrets)
	secrets = slices.Compact(secrets)
	if len(secrets) < 3 {
		t.Fatalf("only %d secrets to look for; the test would prove little", len(secrets))
	}
	for _, text := range texts {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%q contains the secret %q", text, s)
			}
		}
	}
	if got := fmt.Sprintf("%v", c); !strings.Contains(got, testAppID) {
		t.Errorf("client prints as %q, want it to name the app", got)
	}
}

func TestNewClientValidatesTheConfig(t *testing.T) {
	ok := feishu.Config{AppID: testAppID, AppSecret: testAppSecret}
	for _, tc := range []struct {
		name string
		edit func(*feishu.Config)
		want string // "" for success
	}{
		{"defaults", func(*feishu.Config) {}, ""},
		{"user token file", func(c *feishu.Config) { c.AppID, c.AppSecret, c.UserAccessTokenFile = "", "", "/run/token" }, ""},
		{"Lark base URL with a trailing slash", func(c *feishu.Config) { c.BaseURL = "https://open.larksuite.com/" }, ""},
		{"no credentials", func(c *feishu.Config) { c.AppID, c.AppSecret = "", "" }, "no credentials"},
		{"both credentials", func(c *feishu.Config) { c.UserAccessTokenFile = "/run/token" }, "not both"},
		{"secret without app ID", func(c *feishu.Config) { c.AppID = "" }, "app_id is empty"},
		{"app ID without secret", func(c *feishu.Config) { c.AppSecret = "" }, "empty app_secret"},
		{"base URL without scheme", func(c *feishu.Config) { c.BaseURL = "open.feishu.cn" }, "must be an absolute http(s) URL"},
		{"base URL unparsable", func(c *feishu.Config) { c.BaseURL = "http://[::1" }, "base URL"},
		{"base URL with a query", func(c *feishu.Config) { c.BaseURL = "https://open.feishu.cn/?x=1" }, "without user info, query or fragment"},
		{"base URL with a path", func(c *feishu.Config) { c.BaseURL = "https://open.feishu.cn/open-apis" }, "must be a scheme and a host only"},
		{"base URL with a password", func(c *feishu.Config) { c.BaseURL = "https://u:hunter2@open.feishu.cn" }, `"https://u:xxxxx@open.feishu.cn"`},
		{"negative page size", func(c *feishu.Config) { c.PageSize = -1 }, "page size -1"},
		{"negative max pages", func(c *feishu.Config) { c.MaxPages = -1 }, "max pages -1"},
		{"negative attempts", func(c *feishu.Config) { c.MaxAttempts = -1 }, "max attempts -1"},
		{"negative timeout", func(c *feishu.Config) { c.Timeout = -time.Second }, "timeout -1s"},
		{"negative rate limit", func(c *feishu.Config) { c.RateLimit = -1 }, "rate limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			_, err := feishu.NewClient(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("NewClient: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), testAppSecret):
				t.Errorf("err %q contains the secret", err)
			}
		})
	}
}

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

func TestClientWorksWithEveryDefault(t *testing.T) {
	e := newTestEnv(t, feishufake.Options{})
	e.addRuns(testSession, 1)
	c := e.client(t, func(c *feishu.Config) { c.HTTPClient, c.Observer, c.Now, c.Sleep, c.Rand = nil, nil, nil, nil, nil })
	if _, err := c.ListRuns(context.Background(), testSession); err != nil {
		t.Fatal(err)
	}
}
