package feishu_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit/fakeapi"
)

const (
	testAppID     = "cli_a5test0000000001"
	testAppSecret = "s3cr3t-Value-That-Must-Not-Leak"
	testSession   = "session_4dfunz7sp1g8m"
)

// epoch is the tests' "now": any fixed instant does.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sleeper records the waits the client asks for instead of sleeping.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.waits)
}

// observer records everything the client reports.
type observer struct {
	mu          sync.Mutex
	requests    []string // "endpoint code"
	rateLimited []time.Duration
	renewals    []error
	malformed   []string // "session run: err"
}

func (o *observer) ObserveRequest(ep feishu.Endpoint, code string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.requests = append(o.requests, string(ep)+" "+code)
}

func (o *observer) ObserveRateLimited(_ feishu.Endpoint, wait time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rateLimited = append(o.rateLimited, wait)
}

func (o *observer) ObserveTokenRenewal(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.renewals = append(o.renewals, err)
}

func (o *observer) ObserveMalformedRun(sessionID, runID string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.malformed = append(o.malformed, fmt.Sprintf("%s %s: %v", sessionID, runID, err))
}

func (o *observer) Requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.requests)
}

// testEnv is a fake API served over real HTTP, and what a client needs to
// talk to it deterministically.
type testEnv struct {
	fake  *feishufake.Fake
	srv   *httptest.Server
	clock *feishufake.Clock
	sleep *sleeper
	obs   *observer

	mu        sync.Mutex
	bearers   []string // every Authorization token the server saw
	pageSizes []string // the page_size of every list request
}

func newTestEnv(t *testing.T, opts feishufake.Options) *testEnv {
	t.Helper()
	e := &testEnv{clock: feishufake.NewClock(epoch), sleep: &sleeper{}, obs: &observer{}}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	e.fake = feishufake.New(opts)
	e.fake.AddApp(testAppID, testAppSecret)
	e.srv = fakeapi.Serve(t, e.fake, func(r *http.Request) {
		e.mu.Lock()
		defer e.mu.Unlock()
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			e.bearers = append(e.bearers, tok)
		}
		if r.Method == http.MethodGet {
			e.pageSizes = append(e.pageSizes, r.URL.Query().Get("page_size"))
		}
	})
	return e
}

// config is a client configuration for the fake's app with the test's
// clock, sleeper and observer.
func (e *testEnv) config() feishu.Config {
	return feishu.Config{
		BaseURL:   e.srv.URL,
		AppID:     testAppID,
		AppSecret: testAppSecret,
		PageSize:  20,
		Observer:  e.obs,
		Now:       e.clock.Now,
		Sleep:     e.sleep.Sleep,
		Rand:      func() float64 { return 0.5 },
	}
}

func (e *testEnv) client(t *testing.T, edit ...func(*feishu.Config)) *feishu.Client {
	t.Helper()
	return fakeapi.NewClient(t, e.config(), edit...)
}

func (e *testEnv) Bearers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.bearers)
}

func (e *testEnv) PageSizes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.pageSizes)
}

// addRuns puts n runs into a session, created one second apart, the
// first i%len(statuses) in each status in turn; it returns their IDs.
func (e *testEnv) addRuns(sessionID string, n int, statuses ...feishu.RunStatus) []string {
	if len(statuses) == 0 {
		statuses = []feishu.RunStatus{feishu.StatusCompleted}
	}
	e.fake.AddSession(sessionID)
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("run_%s%05d", strings.TrimPrefix(sessionID, "session_"), i)
		e.fake.PutRun(fakeapi.Run(sessionID, ids[i], epoch.Add(time.Duration(i)*time.Second), statuses[i%len(statuses)]))
	}
	return ids
}

func runIDs(runs []feishu.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}

// count returns how many of xs equal x.
func count[T comparable](xs []T, x T) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// staticHandler answers every list request from a list of canned
// responses, in turn (the last one repeating), and every token request
// with a valid token. It serves the cases the fake has no fault for.
type staticHandler struct {
	mu        sync.Mutex
	responses []cannedResponse
	served    int
}

type cannedResponse struct {
	status int
	header map[string]string
	body   string
}

func (h *staticHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == feishufake.TokenPath {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"code":0,"msg":"ok","tenant_access_token":"t-static0123456789","expire":7200}`))
		return
	}
	h.mu.Lock()
	resp := h.responses[min(h.served, len(h.responses)-1)]
	h.served++
	h.mu.Unlock()
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write([]byte(resp.body))
}

func (h *staticHandler) Served() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.served
}

// newStaticServer serves canned list responses and returns a client of it.
func newStaticServer(t *testing.T, obs feishu.Observer, sl *sleeper, responses ...cannedResponse) (*feishu.Client, *staticHandler) {
	t.Helper()
	h := &staticHandler{responses: responses}
	c := newClientOf(t, h, func(c *feishu.Config) {
		c.Observer = obs
		if sl != nil {
			c.Sleep = sl.Sleep
		}
	})
	return c, h
}

// page renders a list-runs body from runs given as JSON objects.
func page(hasMore bool, pageToken string, runs ...string) string {
	return fmt.Sprintf(`{"code":0,"msg":"success","data":{"runs":[%s],"page_token":%q,"has_more":%t}}`,
		strings.Join(runs, ","), pageToken, hasMore)
}

func jsonOK(body string) cannedResponse {
	return cannedResponse{status: http.StatusOK, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, body: body}
}

// newClientOf returns a client of an arbitrary handler.
func newClientOf(t *testing.T, h http.Handler, edit ...func(*feishu.Config)) *feishu.Client {
	t.Helper()
	return fakeapi.NewClient(t, feishu.Config{
		BaseURL: fakeapi.Serve(t, h, nil).URL, AppID: testAppID, AppSecret: testAppSecret,
		Sleep: (&sleeper{}).Sleep, Rand: func() float64 { return 0.5 },
	}, edit...)
}

// writeTokenFile writes a user access token file and returns its path.
func writeTokenFile(t *testing.T, tok string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantRequests fails the test unless the fake answered want requests to the
// endpoints, summed, as the fake names them ("list_runs", "get_run",
// "tenant_token").
func (e *testEnv) wantRequests(t *testing.T, want int, endpoints ...string) {
	t.Helper()
	n := 0
	for _, ep := range endpoints {
		n += e.fake.Requests(ep)
	}
	if n != want {
		t.Errorf("%s requests = %d, want %d", strings.Join(endpoints, "+"), n, want)
	}
}

// mustList lists testSession with c, failing the test on an error.
func mustList(t *testing.T, c *feishu.Client) []feishu.Run {
	t.Helper()
	runs, err := c.ListRuns(context.Background(), testSession)
	if err != nil {
		t.Fatalf("ListRuns: %v", err)
	}
	return runs
}
