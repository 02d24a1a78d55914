package feishufake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

var t0 = time.UnixMilli(1711975665710)

type env struct {
	fake  *Fake
	srv   *httptest.Server
	clock *Clock
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	c := NewClock(t0)
	opts.Now = c.Now
	f := New(opts)
	f.AddApp("cli_helpdesk", "s3cret")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &env{fake: f, srv: srv, clock: c}
}

// addCompleted puts n completed runs into session_a, a second apart.
func (e *env) addCompleted(n int) {
	for i := range n {
		e.fake.PutRun(mkRun("session_a", i, feishu.StatusCompleted))
	}
}

// response is an answer read off the wire.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return m
}

func (r response) code(t *testing.T) int {
	t.Helper()
	c, ok := r.json(t)["code"].(float64)
	if !ok {
		t.Fatalf("body %q has no numeric code", r.body)
	}
	return int(c)
}

func (e *env) do(t *testing.T, ctx context.Context, method, path, authz, body string) (response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if body != "" {
		req.Header.Set("Content-Type", contentTypeJSON)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

func (e *env) tokenCall(t *testing.T, appID, secret string) response {
	t.Helper()
	body := fmt.Sprintf(`{"app_id":%q,"app_secret":%q}`, appID, secret)
	r, err := e.do(t, context.Background(), http.MethodPost, TokenPath, "", body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) token(t *testing.T) string {
	t.Helper()
	r := e.tokenCall(t, "cli_helpdesk", "s3cret")
	tok, _ := r.json(t)["tenant_access_token"].(string)
	if r.status != 200 || tok == "" {
		t.Fatalf("token call: HTTP %d %s", r.status, r.body)
	}
	return tok
}

func (e *env) list(t *testing.T, token, sessionID string, query url.Values) response {
	t.Helper()
	path := ListRunsPath(sessionID)
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	r, err := e.do(t, context.Background(), http.MethodGet, path, "Bearer "+token, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wirePage is the list answer decoded independently of the fake's structs.
type wirePage struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data struct {
		Runs []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"runs"`
		PageToken *string `json:"page_token"`
		HasMore   bool    `json:"has_more"`
	} `json:"data"`
}

func (r response) page(t *testing.T) wirePage {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list: HTTP %d %s", r.status, r.body)
	}
	var p wirePage
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		t.Fatalf("list body %q: %v", r.body, err)
	}
	return p
}

func mkRun(session string, i int, status feishu.RunStatus) feishu.Run {
	return feishu.Run{
		ID:        fmt.Sprintf("run_%03d", i),
		AppID:     "spring_helpdesk__c",
		SessionID: session,
		Status:    status,
		CreatedAt: t0.Add(time.Duration(i) * time.Second),
		Metadata:  "{}",
	}
}

func TestTokenEndpointAnswersLikeTheRealOne(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.tokenCall(t, "cli_helpdesk", "s3cret")
	if r.status != 200 || r.header.Get("Content-Type") != contentTypeJSON || r.header.Get("X-Tt-Logid") == "" {
		t.Fatalf("HTTP %d, headers %v", r.status, r.header)
	}
	m := r.json(t)
	tok, _ := m["tenant_access_token"].(string)
	if m["code"] != 0.0 || m["msg"] != "ok" || m["expire"] != 7200.0 || !strings.HasPrefix(tok, "t-") || m["data"] != nil {
		t.Fatalf("body %s", r.body)
	}

	t.Run("same token while 30 minutes or more remain", func(t *testing.T) {
		e.clock.Advance(90 * time.Minute)
		m := e.tokenCall(t, "cli_helpdesk", "s3cret").json(t)
		if m["tenant_access_token"] != tok || m["expire"] != 1800.0 {
			t.Fatalf("got %v, want the same token with 1800s left", m)
		}
	})
	t.Run("new token when less remains, the old one valid until it expires", func(t *testing.T) {
		e.clock.Advance(time.Minute)
		m := e.tokenCall(t, "cli_helpdesk", "s3cret").json(t)
		newTok, _ := m["tenant_access_token"].(string)
		if newTok == tok || m["expire"] != 7200.0 {
			t.Fatalf("got %v, want a new token", m)
		}
		e.fake.AddSession("session_a")
		if r := e.list(t, tok, "session_a", nil); r.status != 200 {
			t.Fatalf("old token refused before its expiry: %s", r.body)
		}
		e.clock.Advance(29 * time.Minute)
		if r := e.list(t, tok, "session_a", nil); r.status != 400 || r.code(t) != feishu.CodeTokenInvalid {
			t.Fatalf("expired token: HTTP %d %s", r.status, r.body)
		}
		if r := e.list(t, newTok, "session_a", nil); r.status != 200 {
			t.Fatalf("new token: HTTP %d %s", r.status, r.body)
		}
	})
	t.Run("bad credentials are HTTP 200 code 10003", func(t *testing.T) {
		for _, body := range []string{`{"app_id":"cli_helpdesk","app_secret":"wrong"}`, `{"app_id":"cli_nobody","app_secret":"s3cret"}`, `not json`} {
			r, err := e.do(t, context.Background(), http.MethodPost, TokenPath, "", body)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != 200 || r.code(t) != feishu.CodeTokenInvalidParam || strings.Contains(r.body, "tenant_access_token") {
				t.Errorf("%s: HTTP %d %s", body, r.status, r.body)
			}
		}
	})
	if got := e.fake.Requests("tenant_token"); got != 6 {
		t.Errorf("Requests(tenant_token) = %d, want 6", got)
	}
}

func TestWrongMethodOrPathIsPlainText404(t *testing.T) {
	e := newEnv(t, Options{})
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, TokenPath},
		{http.MethodPost, ListRunsPath("session_a")},
		{http.MethodGet, "/open-apis/aily/v1/sessions/session_a"},
		{http.MethodGet, "/open-apis/aily/v1/sessions//runs"},
		{http.MethodGet, "/open-apis/aily/v1/sessions/session_a/runs/"},
		{http.MethodGet, "/open-apis/aily/v1/sessions//runs/run_001"},
		{http.MethodGet, "/open-apis/aily/v1/sessions/session_a/runs/run_001/cancel"},
		{http.MethodPost, GetRunPath("session_a", "run_001")},
		{http.MethodGet, "/"},
	} {
		r, err := e.do(t, context.Background(), c.method, c.path, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != 404 || r.body != "404 page not found\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") || r.header.Get("X-Tt-Logid") == "" {
			t.Errorf("%s %s: HTTP %d %q %v", c.method, c.path, r.status, r.body, r.header)
		}
	}
}

func TestListRunsWireShapeMatchesTheDocumentation(t *testing.T) {
	e := newEnv(t, Options{})
	failed := mkRun("session_4dfunz7sp1g8m", 1, feishu.StatusFailed)
	failed.ID = "run_4dfrxvctjqzzj"
	failed.StartedAt = t0.Add(2 * time.Second)
	failed.EndedAt = t0.Add(5 * time.Second)
	failed.Error = &feishu.RunError{Code: "sp_ec_sm_900101", Message: "技能不存在或已删除"}
	queued := mkRun("session_4dfunz7sp1g8m", 2, feishu.StatusQueued)
	queued.Metadata = ""
	e.fake.PutRun(failed)
	e.fake.PutRun(queued)

	r := e.list(t, e.token(t), "session_4dfunz7sp1g8m", nil)
	if r.status != 200 || r.header.Get("Content-Type") != contentTypeJSON || r.header.Get("X-Tt-Logid") == "" {
		t.Fatalf("HTTP %d, headers %v", r.status, r.header)
	}
	want := `{"code":0,"msg":"success","data":{"runs":[` +
		`{"id":"run_4dfrxvctjqzzj","created_at":"1711975666710","app_id":"spring_helpdesk__c","session_id":"session_4dfunz7sp1g8m","status":"FAILED","started_at":"1711975667710","ended_at":"1711975670710","error":{"code":"sp_ec_sm_900101","message":"技能不存在或已删除"},"metadata":"{}"},` +
		`{"id":"run_002","created_at":"1711975667710","app_id":"spring_helpdesk__c","session_id":"session_4dfunz7sp1g8m","status":"QUEUED"}` +
		`],"has_more":false}}`
	if r.body != want {
		t.Fatalf("body\n got %s\nwant %s", r.body, want)
	}
	if got := e.fake.Requests("list_runs"); got != 1 {
		t.Errorf("Requests(list_runs) = %d, want 1", got)
	}
}

// listAll follows page tokens and returns the run IDs page by page.
func listAll(t *testing.T, e *env, token, session string, size int) [][]string {
	t.Helper()
	var pages [][]string
	q := url.Values{"page_size": {fmt.Sprint(size)}}
	for range 100 {
		p := e.list(t, token, session, q).page(t)
		var ids []string
		for _, r := range p.Data.Runs {
			ids = append(ids, r.ID)
		}
		pages = append(pages, ids)
		if (p.Data.PageToken != nil) != p.Data.HasMore {
			t.Fatalf("page_token present = %v with has_more = %v", p.Data.PageToken != nil, p.Data.HasMore)
		}
		if !p.Data.HasMore {
			return pages
		}
		q.Set("page_token", *p.Data.PageToken)
	}
	t.Fatal("listing did not end")
	return nil
}

func TestPagingInBothOrders(t *testing.T) {
	for _, c := range []struct {
		order       Order
		first, last string
	}{
		{OldestFirst, "run_000", "run_044"},
		{NewestFirst, "run_044", "run_000"},
	} {
		t.Run(fmt.Sprint(c.order), func(t *testing.T) {
			e := newEnv(t, Options{})
			e.fake.SetOrder(c.order)
			e.addCompleted(45)
			pages := listAll(t, e, e.token(t), "session_a", 20)
			if len(pages) != 3 || len(pages[0]) != 20 || len(pages[1]) != 20 || len(pages[2]) != 5 {
				t.Fatalf("pages %v", pages)
			}
			if pages[0][0] != c.first || pages[2][4] != c.last {
				t.Fatalf("first %s last %s, want %s and %s", pages[0][0], pages[2][4], c.first, c.last)
			}
			seen := map[string]bool{}
			for _, p := range pages {
				for _, id := range p {
					if seen[id] {
						t.Fatalf("%s listed twice", id)
					}
					seen[id] = true
				}
			}
		})
	}
}

func TestDefaultPageSizeIs20(t *testing.T) {
	e := newEnv(t, Options{})
	e.addCompleted(25)
	p := e.list(t, e.token(t), "session_a", nil).page(t)
	if len(p.Data.Runs) != 20 || !p.Data.HasMore {
		t.Fatalf("%d runs, has_more %v", len(p.Data.Runs), p.Data.HasMore)
	}
}

func TestInvalidParametersAre2700001(t *testing.T) {
	e := newEnv(t, Options{MaxPageSize: 50})
	e.fake.PutRun(mkRun("session_a", 1, feishu.StatusCompleted))
	e.fake.PutRun(mkRun("session_b", 1, feishu.StatusCompleted))
	tok := e.token(t)
	otherSession := encodePageToken("session_b", 1, 1)
	for name, q := range map[string]url.Values{
		"page size 0":                   {"page_size": {"0"}},
		"page size not a number":        {"page_size": {"ten"}},
		"page size above the maximum":   {"page_size": {"51"}},
		"page token not base64":         {"page_token": {"!!!"}},
		"page token of another thing":   {"page_token": {"c29tZXRoaW5nIGVsc2U="}},
		"page token of another session": {"page_token": {otherSession}},
	} {
		r := e.list(t, tok, "session_a", q)
		if r.status != 400 || r.code(t) != feishu.CodeParamInvalid || r.json(t)["msg"] != "param is invalid" {
			t.Errorf("%s: HTTP %d %s", name, r.status, r.body)
		}
	}
	if r := e.list(t, tok, "session_a", url.Values{"page_size": {"50"}}); r.status != 200 {
		t.Errorf("page size at the maximum: HTTP %d %s", r.status, r.body)
	}
	if r := e.list(t, tok, "session_unknown", nil); r.status != 400 || r.code(t) != feishu.CodeParamInvalid {
		t.Errorf("unknown session: HTTP %d %s", r.status, r.body)
	}
}

func TestPageTokensInEitherBase64Alphabet(t *testing.T) {
	e := newEnv(t, Options{})
	e.addCompleted(3)
	tok := e.token(t)
	p := e.list(t, tok, "session_a", url.Values{"page_size": {"1"}}).page(t)
	std := *p.Data.PageToken
	urlSafe := strings.NewReplacer("+", "-", "/", "_").Replace(strings.TrimRight(std, "="))
	for _, pt := range []string{std, urlSafe} {
		p := e.list(t, tok, "session_a", url.Values{"page_size": {"1"}, "page_token": {pt}}).page(t)
		if len(p.Data.Runs) != 1 || p.Data.Runs[0].ID != "run_001" {
			t.Errorf("token %q: %+v", pt, p.Data)
		}
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t, Options{})
	e.fake.PutRun(mkRun("session_a", 1, feishu.StatusCompleted))
	e.fake.AddUserToken("u-alice")
	for _, path := range []string{ListRunsPath("session_a"), GetRunPath("session_a", "run_001")} {
		for _, c := range []struct {
			name, authz string
			status      int
			code        int
		}{
			{"no header", "", 400, feishu.CodeTokenMissing},
			{"no Bearer prefix", "t-abc", 400, feishu.CodeTokenMissing},
			{"unknown tenant token", "Bearer t-abc", 400, feishu.CodeTokenInvalid},
			{"unknown user token", "Bearer u-bob", 400, feishu.CodeTokenUserInvalid},
			{"malformed token", "Bearer abc", 400, feishu.CodeTokenMalformed},
			{"registered user token", "Bearer u-alice", 200, 0},
			{"tenant token", "Bearer " + e.token(t), 200, 0},
		} {
			r, err := e.do(t, context.Background(), http.MethodGet, path, c.authz, "")
			if err != nil {
				t.Fatal(err)
			}
			if r.status != c.status || r.code(t) != c.code || r.header.Get("Content-Type") != contentTypeJSON {
				t.Errorf("%s, %s: HTTP %d %s", path, c.name, r.status, r.body)
			}
			if c.code == feishu.CodeTokenInvalid && r.json(t)["msg"] != msgTokenInvalid {
				t.Errorf("%s, %s: msg %v", path, c.name, r.json(t)["msg"])
			}
		}
	}

	t.Run("ExpireTokens invalidates every tenant token", func(t *testing.T) {
		tok := e.token(t)
		e.fake.ExpireTokens()
		if r := e.list(t, tok, "session_a", nil); r.status != 400 || r.code(t) != feishu.CodeTokenInvalid {
			t.Fatalf("HTTP %d %s", r.status, r.body)
		}
		if newTok := e.token(t); newTok == tok {
			t.Fatal("token endpoint returned the expired token")
		}
	})
}

func TestFaults(t *testing.T) {
	type check func(t *testing.T, r response)
	wantCode := func(status, code int) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if r.status != status || r.code(t) != code || r.header.Get("Content-Type") != contentTypeJSON {
				t.Errorf("HTTP %d %s, want %d code %d", r.status, r.body, status, code)
			}
		}
	}
	rateLimited := func(status int, reset string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			wantCode(status, feishu.CodeRateLimited)(t, r)
			if r.header.Get("x-ogw-ratelimit-reset") != reset || r.header.Get("x-ogw-ratelimit-limit") == "" {
				t.Errorf("headers %v, want reset %q", r.header, reset)
			}
		}
	}
	for _, c := range []struct {
		name     string
		fault    Fault
		endpoint feishu.Endpoint
		check    check
	}{
		{"429 on listing", Fault{Kind: RateLimit429, ResetSeconds: 7}, feishu.EndpointListRuns, rateLimited(429, "7")},
		{"429 on token", Fault{Kind: RateLimit429}, feishu.EndpointTenantToken, rateLimited(429, "1")},
		{"400 99991400", Fault{Kind: RateLimit400, ResetSeconds: 3}, feishu.EndpointListRuns, rateLimited(400, "3")},
		{"invalid token", Fault{Kind: InvalidToken}, feishu.EndpointListRuns, wantCode(400, feishu.CodeTokenInvalid)},
		{"token endpoint failure", Fault{Kind: TokenEndpointFailure}, feishu.EndpointTenantToken, wantCode(200, feishu.CodeTokenInvalidParam)},
		{"500 JSON", Fault{Kind: ServerError}, feishu.EndpointListRuns, wantCode(500, 500)},
		{"503 empty", Fault{Kind: ServerError, HTTPStatus: 503, EmptyBody: true}, feishu.EndpointListRuns, func(t *testing.T, r response) {
			if r.status != 503 || r.body != "" {
				t.Errorf("HTTP %d %q", r.status, r.body)
			}
		}},
		{"404 text", Fault{Kind: NotFoundText}, feishu.EndpointListRuns, func(t *testing.T, r response) {
			if r.status != 404 || r.body != "404 page not found\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
				t.Errorf("HTTP %d %q %v", r.status, r.body, r.header)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.fake.AddSession("session_a")
			tok := e.token(t)
			e.fake.SetFault(Scope{Endpoint: c.endpoint}, Fault{Kind: c.fault.Kind, Times: 1, ResetSeconds: c.fault.ResetSeconds, HTTPStatus: c.fault.HTTPStatus, EmptyBody: c.fault.EmptyBody})
			call := func() response {
				if c.endpoint == feishu.EndpointTenantToken {
					return e.tokenCall(t, "cli_helpdesk", "s3cret")
				}
				return e.list(t, tok, "session_a", nil)
			}
			r := call()
			if r.header.Get("X-Tt-Logid") == "" {
				t.Error("no X-Tt-Logid")
			}
			c.check(t, r)
			if r := call(); r.status != 200 || r.code(t) != 0 {
				t.Errorf("after Times 1: HTTP %d %s", r.status, r.body)
			}
		})
	}
}

func TestMalformedJSONIsTruncated(t *testing.T) {
	e := newEnv(t, Options{})
	e.fake.PutRun(mkRun("session_a", 1, feishu.StatusCompleted))
	tok := e.token(t)
	e.fake.SetFault(Scope{}, Fault{Kind: MalformedJSON})
	for _, r := range []response{e.list(t, tok, "session_a", nil), e.tokenCall(t, "cli_helpdesk", "s3cret")} {
		if r.status != 200 || r.header.Get("Content-Type") != contentTypeJSON || json.Valid([]byte(r.body)) || !strings.HasPrefix(r.body, `{"code":0`) {
			t.Errorf("HTTP %d %q", r.status, r.body)
		}
	}
}

func TestFaultScopes(t *testing.T) {
	e := newEnv(t, Options{})
	e.fake.AddApp("cli_sales", "pw")
	e.fake.AddSession("session_a")
	e.fake.AddSession("session_b")
	helpdesk := e.token(t)
	salesResp := e.tokenCall(t, "cli_sales", "pw")
	sales, _ := salesResp.json(t)["tenant_access_token"].(string)

	e.fake.SetFault(Scope{SessionID: "session_b"}, Fault{Kind: ServerError})
	e.fake.SetFault(Scope{AppID: "cli_sales"}, Fault{Kind: RateLimit429})
	for _, c := range []struct {
		token, session string
		status         int
	}{
		{helpdesk, "session_a", 200},
		{helpdesk, "session_b", 500},
		{sales, "session_a", 429},
	} {
		if r := e.list(t, c.token, c.session, nil); r.status != c.status {
			t.Errorf("%s: HTTP %d, want %d", c.session, r.status, c.status)
		}
	}
	if r := e.tokenCall(t, "cli_sales", "pw"); r.status != 429 {
		t.Errorf("token call of the faulted app: HTTP %d", r.status)
	}
	if r := e.tokenCall(t, "cli_helpdesk", "s3cret"); r.status != 200 {
		t.Errorf("token call of another app: HTTP %d", r.status)
	}
	e.fake.ClearFault(Scope{SessionID: "session_b"})
	if r := e.list(t, helpdesk, "session_b", nil); r.status != 200 {
		t.Errorf("after ClearFault: HTTP %d", r.status)
	}
	e.fake.ClearFaults()
	if r := e.list(t, sales, "session_a", nil); r.status != 200 {
		t.Errorf("after ClearFaults: HTTP %d", r.status)
	}
}

func TestSlowHonoursTheRequestContext(t *testing.T) {
	e := newEnv(t, Options{})
	e.fake.AddSession("session_a")
	tok := e.token(t)
	e.fake.SetFault(Scope{SessionID: "session_a"}, Fault{Kind: Slow, Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := e.do(t, ctx, http.MethodGet, ListRunsPath("session_a"), "Bearer "+tok, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}

	e.fake.SetFault(Scope{SessionID: "session_a"}, Fault{Kind: Slow, Delay: time.Millisecond})
	if r := e.list(t, tok, "session_a", nil); r.status != 200 {
		t.Fatalf("short delay: HTTP %d %s", r.status, r.body)
	}
}

func TestRepeatPageToken(t *testing.T) {
	e := newEnv(t, Options{})
	e.addCompleted(5)
	tok := e.token(t)
	e.fake.SetFault(Scope{SessionID: "session_a"}, Fault{Kind: RepeatPageToken})
	q := url.Values{"page_size": {"2"}}
	var seen []string
	for range 3 {
		p := e.list(t, tok, "session_a", q).page(t)
		if !p.Data.HasMore || p.Data.PageToken == nil {
			t.Fatalf("has_more %v token %v", p.Data.HasMore, p.Data.PageToken)
		}
		seen = append(seen, *p.Data.PageToken)
		q.Set("page_token", *p.Data.PageToken)
	}
	if seen[0] != seen[1] || seen[1] != seen[2] {
		t.Fatalf("tokens %q, want one repeated", seen)
	}
}

func TestRunsInsertedMidListingShiftPages(t *testing.T) {
	e := newEnv(t, Options{})
	e.fake.SetOrder(NewestFirst)
	e.addCompleted(4)
	var hooked []int
	e.fake.OnPage(func(sessionID string, page int) {
		hooked = append(hooked, page)
		if page == 0 {
			e.fake.PutRun(mkRun(sessionID, 10, feishu.StatusQueued))
		}
	})
	pages := listAll(t, e, e.token(t), "session_a", 2)
	want := "[[run_003 run_002] [run_002 run_001] [run_000]]"
	if got := fmt.Sprint(pages); got != want {
		t.Fatalf("pages %s, want %s (the new run shifts later pages)", got, want)
	}
	if fmt.Sprint(hooked) != "[0 1 2]" {
		t.Fatalf("hook saw pages %v", hooked)
	}
	if runs := e.fake.Runs("session_a"); len(runs) != 5 || runs[0].ID != "run_010" {
		t.Fatalf("Runs = %v", runs)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t, Options{})
	tok := e.token(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				e.fake.PutRun(mkRun("session_a", g*100+i, feishu.StatusInProgress))
				if r := e.list(t, tok, "session_a", nil); r.status != 200 {
					t.Errorf("HTTP %d", r.status)
				}
				e.fake.SetFault(Scope{SessionID: "session_x"}, Fault{Kind: Slow})
			}
		})
	}
	wg.Wait()
	if got := e.fake.Requests("list_runs"); got != 80 {
		t.Fatalf("Requests = %d, want 80", got)
	}
}

// get requests a run from the get-run endpoint.
func (e *env) get(t *testing.T, token, sessionID, runID string) response {
	t.Helper()
	r, err := e.do(t, context.Background(), http.MethodGet, GetRunPath(sessionID, runID), "Bearer "+token, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestGetRunWireShapeMatchesTheListedRun(t *testing.T) {
	e := newEnv(t, Options{})
	failed := mkRun("session_4dfunz7sp1g8m", 1, feishu.StatusFailed)
	failed.StartedAt = t0.Add(2 * time.Second)
	failed.EndedAt = t0.Add(5 * time.Second)
	failed.Error = &feishu.RunError{Code: "sp_ec_sm_900101", Message: "技能不存在或已删除"}
	e.fake.PutRun(failed)

	r := e.get(t, e.token(t), "session_4dfunz7sp1g8m", "run_001")
	if r.status != 200 || r.header.Get("Content-Type") != contentTypeJSON || r.header.Get("X-Tt-Logid") == "" {
		t.Fatalf("HTTP %d, headers %v", r.status, r.header)
	}
	want := `{"code":0,"msg":"success","data":{"run":` +
		`{"id":"run_001","created_at":"1711975666710","app_id":"spring_helpdesk__c","session_id":"session_4dfunz7sp1g8m","status":"FAILED","started_at":"1711975667710","ended_at":"1711975670710","error":{"code":"sp_ec_sm_900101","message":"技能不存在或已删除"},"metadata":"{}"}` +
		`}}`
	if r.body != want {
		t.Fatalf("body\n got %s\nwant %s", r.body, want)
	}
	if got, list := e.fake.Requests("get_run"), e.fake.Requests("list_runs"); got != 1 || list != 0 {
		t.Errorf("Requests(get_run) = %d, Requests(list_runs) = %d, want 1 and 0", got, list)
	}
}

func TestGetRunOfAnUnknownSessionOrRunIs2700001(t *testing.T) {
	e := newEnv(t, Options{})
	e.fake.PutRun(mkRun("session_a", 1, feishu.StatusCompleted))
	e.fake.PutRun(mkRun("session_b", 2, feishu.StatusCompleted))
	tok := e.token(t)
	for _, c := range []struct{ name, session, run string }{
		{"unknown session", "session_x", "run_001"},
		{"unknown run in a known session", "session_a", "run_999"},
		{"run of another session", "session_a", "run_002"},
	} {
		r := e.get(t, tok, c.session, c.run)
		if r.status != 400 || r.code(t) != feishu.CodeParamInvalid || r.json(t)["msg"] != msgParamInvalid {
			t.Errorf("%s: HTTP %d %s, want 400 code 2700001", c.name, r.status, r.body)
		}
	}
	if r := e.get(t, tok, "session_a", "run_001"); r.status != 200 || r.code(t) != 0 {
		t.Errorf("known run: HTTP %d %s", r.status, r.body)
	}
}

func TestFaultsScopedToAnEndpoint(t *testing.T) {
	e := newEnv(t, Options{})
	e.fake.PutRun(mkRun("session_a", 1, feishu.StatusCompleted))
	tok := e.token(t)

	e.fake.SetFault(Scope{Endpoint: feishu.EndpointGetRun}, Fault{Kind: RateLimit429})
	if r := e.get(t, tok, "session_a", "run_001"); r.status != 429 || r.code(t) != feishu.CodeRateLimited {
		t.Errorf("get run with a get_run fault: HTTP %d %s", r.status, r.body)
	}
	if r := e.list(t, tok, "session_a", nil); r.status != 200 {
		t.Errorf("listing with a get_run fault: HTTP %d %s", r.status, r.body)
	}
	e.fake.ClearFaults()

	e.fake.SetFault(Scope{Endpoint: feishu.EndpointListRuns}, Fault{Kind: ServerError})
	if r := e.get(t, tok, "session_a", "run_001"); r.status != 200 {
		t.Errorf("get run with a list_runs fault: HTTP %d %s", r.status, r.body)
	}
	e.fake.ClearFaults()

	// InvalidToken means something to get_run, so it hits it (once).
	e.fake.SetFault(Scope{SessionID: "session_a"}, Fault{Kind: InvalidToken, Times: 1})
	if r := e.get(t, tok, "session_a", "run_001"); r.status != 400 || r.code(t) != feishu.CodeTokenInvalid {
		t.Errorf("get run with InvalidToken: HTTP %d %s", r.status, r.body)
	}
	if r := e.list(t, tok, "session_a", nil); r.status != 200 {
		t.Errorf("listing after the used-up InvalidToken: HTTP %d %s", r.status, r.body)
	}
	// RepeatPageToken means nothing to get_run: not applied, not used up.
	e.fake.SetFault(Scope{}, Fault{Kind: RepeatPageToken, Times: 1})
	if r := e.get(t, tok, "session_a", "run_001"); r.status != 200 {
		t.Errorf("get run with RepeatPageToken: HTTP %d %s", r.status, r.body)
	}
	if p := e.list(t, tok, "session_a", nil).page(t); !p.Data.HasMore {
		t.Error("RepeatPageToken was used up by get_run")
	}
	if got := e.fake.Requests("get_run"); got != 4 {
		t.Errorf("Requests(get_run) = %d, want 4, faulted ones included", got)
	}
}

func TestLatencyDelaysRunAnswersAndHonoursTheContext(t *testing.T) {
	const latency = 30 * time.Millisecond
	e := newEnv(t, Options{Latency: latency})
	e.fake.PutRun(mkRun("session_a", 1, feishu.StatusCompleted))
	tok := e.token(t)
	for _, path := range []string{ListRunsPath("session_a"), GetRunPath("session_a", "run_001")} {
		start := time.Now()
		r, err := e.do(t, context.Background(), http.MethodGet, path, "Bearer "+tok, "")
		if err != nil || r.status != 200 {
			t.Fatalf("%s: HTTP %d, %v", path, r.status, err)
		}
		if took := time.Since(start); took < latency {
			t.Errorf("%s answered in %v, want at least %v", path, took, latency)
		}
	}
	slow := newEnv(t, Options{Latency: time.Hour})
	slow.fake.AddSession("session_a")
	slowTok := slow.token(t) // the token endpoint is not delayed
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := slow.do(t, ctx, http.MethodGet, ListRunsPath("session_a"), "Bearer "+slowTok, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestListingFollowsEveryChangeOfTheRunsOrTheOrder(t *testing.T) {
	e := newEnv(t, Options{})
	e.addCompleted(3)
	tok := e.token(t)
	ids := func() string { return fmt.Sprint(listAll(t, e, tok, "session_a", 10)) }
	for _, step := range []struct {
		name   string
		change func()
		want   string
	}{
		{"as put", func() {}, "[[run_000 run_001 run_002]]"},
		{"a run put", func() { e.fake.PutRun(mkRun("session_a", 3, feishu.StatusQueued)) }, "[[run_000 run_001 run_002 run_003]]"},
		{"a run deleted", func() { e.fake.DeleteRun("session_a", "run_001") }, "[[run_000 run_002 run_003]]"},
		{"the order changed", func() { e.fake.SetOrder(NewestFirst) }, "[[run_003 run_002 run_000]]"},
		{"a run changed", func() {
			r := mkRun("session_a", 0, feishu.StatusCompleted)
			r.CreatedAt = t0.Add(time.Hour)
			e.fake.PutRun(r)
		}, "[[run_000 run_003 run_002]]"},
		{"the session removed and added again", func() {
			e.fake.RemoveSession("session_a")
			e.fake.PutRun(mkRun("session_a", 7, feishu.StatusQueued))
		}, "[[run_007]]"},
	} {
		step.change()
		if got := ids(); got != step.want {
			t.Errorf("%s: pages %s, want %s", step.name, got, step.want)
		}
	}
}

func TestEchoCredentialsQuotesTheRequestsCredentials(t *testing.T) {
	f := New(Options{})
	f.AddApp("cli_echo", "echoed-secret")
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, form := range []EchoForm{EchoJSON, EchoText, EchoHTML} {
		f.SetFault(Scope{}, Fault{Kind: EchoCredentials, Echo: form})
		resp, err := http.Post(srv.URL+TokenPath, "application/json", strings.NewReader(`{"app_id":"cli_echo","app_secret":"echoed-secret"}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(string(body), "echoed-secret") {
			t.Errorf("form %d: token answer %q does not quote the secret", form, body)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+ListRunsPath("session_x"), nil)
		req.Header.Set("Authorization", "Bearer t-echoed-token")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(string(body), "Bearer t-echoed-token") {
			t.Errorf("form %d: list answer %q does not quote the Authorization header", form, body)
		}
	}
}

// A final run vanishes from the listing once it ended VanishAfter ago and
// was listed VanishAfterListings times; later runs move up a place, so a
// page token handed out before points one run further; get run still finds
// the run.
func TestVanishedRunsLeaveTheListingAndShiftPageTokens(t *testing.T) {
	e := newEnv(t, Options{VanishAfter: 90 * time.Second, VanishAfterListings: 1})
	for i := range 6 {
		r := mkRun("session_a", i, feishu.StatusCompleted)
		r.EndedAt = t0.Add(time.Duration(i) * time.Second)
		e.fake.PutRun(r)
	}
	tok := e.token(t)
	q := url.Values{"page_size": {"3"}}
	first := e.list(t, tok, "session_a", q).page(t)
	if len(first.Data.Runs) != 3 || first.Data.PageToken == nil {
		t.Fatalf("first page %+v", first.Data)
	}
	// run_000..002 were listed once; 90 s after they ended they go.
	e.clock.Advance(92 * time.Second)
	q.Set("page_token", *first.Data.PageToken)
	next := e.list(t, tok, "session_a", q).page(t)
	var got []string
	for _, r := range next.Data.Runs {
		got = append(got, r.ID)
	}
	// Positions 3.. of the shrunk listing: run_003..005 moved to 0..2.
	if len(got) != 0 {
		t.Errorf("page after the vanishing: %v, want none (the runs moved up past the token)", got)
	}
	if n := e.fake.Vanished(); n != 3 {
		t.Errorf("Vanished() = %d, want 3", n)
	}
	// run_003..005 were never listed: they stay.
	if ids := len(e.fake.Runs("session_a")); ids != 3 {
		t.Errorf("listing holds %d runs, want 3", ids)
	}
	if r := e.get(t, tok, "session_a", "run_000"); r.code(t) != 0 {
		t.Errorf("get run of a vanished run: code %d, want 0", r.code(t))
	}
}

func TestSessionOrderOverridesTheDefault(t *testing.T) {
	e := newEnv(t, Options{})
	for i := range 3 {
		e.fake.PutRun(mkRun("session_a", i, feishu.StatusCompleted))
		e.fake.PutRun(mkRun("session_b", i, feishu.StatusCompleted))
	}
	e.fake.SetSessionOrder("session_b", NewestFirst)
	if a := e.fake.Runs("session_a"); a[0].ID != "run_000" {
		t.Errorf("session_a starts with %s, want run_000 (oldest first)", a[0].ID)
	}
	if b := e.fake.Runs("session_b"); b[0].ID != "run_002" {
		t.Errorf("session_b starts with %s, want run_002 (newest first)", b[0].ID)
	}
}
