package main

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
	"github.com/aily-exporter/aily_exporter/internal/sharding"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// The credentials the tests configure; none may ever be shown.
const (
	appSecret = "sekrit-app-secret-0123456789"
	userToken = "u-sekrit-user-token-0123456789"
	// sessionsURLPassword is the basic auth password of sessions_url.
	sessionsURLPassword = "sekrit-sessions-url-password"
)

// tenantToken matches the tokens the fake issues.
var tenantToken = regexp.MustCompile(`t-[0-9a-f]{20,}`)

// syncBuffer is a bytes.Buffer the logger writes and the test reads
// concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is the exporter's real HTTP handler in front of the fake Feishu API.
type testEnv struct {
	t        *testing.T
	fake     *feishufake.Fake
	api      *httptest.Server
	dir      string
	exporter *exporter
	server   *httptest.Server
	logs     *syncBuffer
	reloaded chan error
}

// configYAML is the configuration the tests start from: a tenant-token app
// with sessions listed in the file and in a sessions file, and a user-token
// app.
func configYAML(apiURL string, helpdeskSessions ...string) string {
	return fmt.Sprintf(`apps:
  - name: helpdesk
    app_id: cli_helpdesk
    app_secret: ${AILY_TEST_APP_SECRET}
    base_url: %[1]s
    sessions: [%[2]s]
    sessions_file: helpdesk.sessions
  - name: personal
    user_access_token_file: user.token
    base_url: %[1]s
    sessions: [session_user]
`, apiURL, strings.Join(helpdeskSessions, ", "))
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, "")
}

// newTestEnvWith is newTestEnv with the state kept in storageDir (none when
// empty), read before the first configuration as at start.
func newTestEnvWith(t *testing.T, storageDir string) *testEnv {
	t.Helper()
	t.Setenv("AILY_TEST_APP_SECRET", appSecret)
	e := &testEnv{t: t, fake: feishufake.New(feishufake.Options{}), dir: t.TempDir(), logs: &syncBuffer{}, reloaded: make(chan error, 10)}
	e.fake.AddApp("cli_helpdesk", appSecret)
	e.fake.AddUserToken(userToken)
	now := time.Now()
	for i, id := range []string{"session_ok", "session_bad", "session_extra", "session_from_file", "session_user"} {
		e.fake.PutRun(feishu.Run{
			ID: fmt.Sprintf("run_%d", i), AppID: "spring_demo__c", SessionID: id, Status: feishu.StatusCompleted,
			CreatedAt: now.Add(-time.Minute), StartedAt: now.Add(-50 * time.Second), EndedAt: now.Add(-10 * time.Second),
		})
		e.fake.PutRun(feishu.Run{
			ID: fmt.Sprintf("run_%d_live", i), AppID: "spring_demo__c", SessionID: id, Status: feishu.StatusInProgress,
			CreatedAt: now.Add(-time.Minute), StartedAt: now.Add(-50 * time.Second),
		})
	}
	e.api = httptest.NewServer(e.fake)
	t.Cleanup(e.api.Close)
	e.write("user.token", userToken+"\n")
	e.write("helpdesk.sessions", "# generated\nsession_from_file\n")
	e.write("aily.yml", configYAML(e.api.URL, "session_ok", "session_bad"))

	logger, _ := newLogger(e.logs, "debug", "logfmt")
	var store *storage
	if storageDir != "" {
		var err error
		if store, err = openStorage(storageDir, logger); err != nil {
			t.Fatal(err)
		}
	}
	e.exporter = newExporter(exporterOptions{
		storage: store,
		logger:  logger,
		source:  func() (*config.Config, error) { return config.Load(filepath.Join(e.dir, "aily.yml")) },
		clients: clientOptions{timeout: 10 * time.Second, pageSize: 50, rateLimit: 0},
		// No min interval, and idle sessions as due as active ones: every
		// scrape polls afresh, so that each sees the fake as the test just
		// set it.
		watch:    watch.Options{Concurrency: 4, MinInterval: -1, IdleInterval: time.Nanosecond},
		onReload: func(err error) { e.reloaded <- err },
	})
	if err := e.exporter.reload(); err != nil {
		t.Fatalf("initial load: %v", err)
	}
	<-e.reloaded
	e.server = httptest.NewServer(e.exporter.routes(routeOptions{telemetryPath: "/metrics", timeoutOffset: time.Second}))
	t.Cleanup(e.server.Close)
	t.Cleanup(e.exporter.close)
	t.Cleanup(func() { e.checkNoSecret("the logs", e.logs.String()) })
	return e
}

func (e *testEnv) write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// checkNoSecret fails the test if s shows a credential.
func (e *testEnv) checkNoSecret(what, s string) {
	e.t.Helper()
	for _, secret := range []string{appSecret, userToken, sessionsURLPassword} {
		if strings.Contains(s, secret) {
			e.t.Errorf("%s show the secret %q", what, secret)
		}
	}
	if tok := tenantToken.FindString(s); tok != "" {
		e.t.Errorf("%s show the tenant token %q", what, tok)
	}
}

// do sends a request to the exporter and returns the status and body.
func (e *testEnv) do(method, path string, header http.Header, timeout time.Duration) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.server.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// scrape gets /metrics as Prometheus would with a 10s scrape timeout.
func (e *testEnv) scrape() string {
	e.t.Helper()
	code, body := e.do(http.MethodGet, "/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"10"}}, time.Minute)
	if code != http.StatusOK {
		e.t.Fatalf("GET /metrics: HTTP %d\n%s", code, body)
	}
	e.checkNoSecret("/metrics", body)
	return body
}

// hasLine reports whether the exposition holds a sample line starting with
// prefix (a metric name with its labels, and possibly the value).
func hasLine(body, prefix string) bool {
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

func sessionUp(app, session string, v int) string {
	return fmt.Sprintf(`aily_session_up{app=%q,session_id=%q} %d`, app, session, v)
}

func TestMetricsServedWhenOneSessionFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault feishufake.Fault
	}{
		{"plain-text 404", feishufake.Fault{Kind: feishufake.NotFoundText}},
		{"HTTP 500", feishufake.Fault{Kind: feishufake.ServerError, HTTPStatus: 500}},
		{"bad JSON", feishufake.Fault{Kind: feishufake.MalformedJSON}},
		// Far longer than any scrape: the scrape deadline must cut it.
		{"too slow for the scrape timeout", feishufake.Fault{Kind: feishufake.Slow, Delay: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.fake.SetFault(feishufake.Scope{SessionID: "session_bad"}, tc.fault)

			// A 3s scrape timeout less the 1s offset leaves the
			// collector 2s; the client gives up at the scrape timeout,
			// as Prometheus would.
			code, body := e.do(http.MethodGet, "/metrics",
				http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"3"}}, 3*time.Second)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d, want 200\n%s", code, body)
			}
			for _, want := range []string{
				sessionUp("helpdesk", "session_bad", 0),
				sessionUp("helpdesk", "session_ok", 1),
				sessionUp("helpdesk", "session_from_file", 1),
				sessionUp("personal", "session_user", 1),
				"aily_up 0",
				`aily_runs{app="helpdesk",session_id="session_ok",status="IN_PROGRESS"} 1`,
				`aily_runs_finished_total{app="helpdesk",session_id="session_bad",status="FAILED"} 0`,
				"aily_exporter_build_info{",
				"aily_exporter_config_last_reload_successful 1",
				"go_goroutines ",
				"promhttp_metric_handler_requests_total{",
			} {
				if !hasLine(body, want) {
					t.Errorf("no line %q in\n%s", want, body)
				}
			}
			// The failing session's current-state gauges are left out.
			if hasLine(body, `aily_runs{app="helpdesk",session_id="session_bad"`) {
				t.Errorf("aily_runs of the failing session served:\n%s", body)
			}
			e.checkNoSecret("/metrics", body)
		})
	}
}

func TestReloadBySIGHUPDropsRemovedSessions(t *testing.T) {
	e := newTestEnv(t)
	if body := e.scrape(); !hasLine(body, sessionUp("helpdesk", "session_bad", 1)) {
		t.Fatalf("session_bad not watched before the reload:\n%s", body)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.exporter.runReloader(ctx, hup)

	e.write("aily.yml", configYAML(e.api.URL, "session_ok"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := <-e.reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}

	body := e.scrape()
	if strings.Contains(body, `session_id="session_bad"`) {
		t.Errorf("the removed session's series are still served:\n%s", body)
	}
	if !hasLine(body, sessionUp("helpdesk", "session_ok", 1)) {
		t.Errorf("the kept session is gone:\n%s", body)
	}
	if !hasLine(body, "aily_exporter_config_last_reload_successful 1") {
		t.Errorf("reload not reported successful:\n%s", body)
	}
}

func TestReloadByHTTP(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.exporter.runReloader(ctx, nil)

	if code, _ := e.do(http.MethodGet, "/-/reload", nil, time.Minute); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: HTTP %d, want 405", code)
	}

	// A good reload adds a session.
	e.write("aily.yml", configYAML(e.api.URL, "session_ok", "session_bad", "session_extra"))
	if code, body := e.do(http.MethodPost, "/-/reload", nil, time.Minute); code != http.StatusOK {
		t.Fatalf("POST /-/reload: HTTP %d: %s", code, body)
	}
	<-e.reloaded
	if body := e.scrape(); !hasLine(body, sessionUp("helpdesk", "session_extra", 1)) {
		t.Errorf("the added session is not served:\n%s", body)
	}

	// A bad reload keeps the running configuration and says so.
	e.write("aily.yml", configYAML(e.api.URL, "session_ok")+"  - name: helpdesk\n")
	code, body := e.do(http.MethodPost, "/-/reload", nil, time.Minute)
	if code != http.StatusInternalServerError || !strings.Contains(body, "failed to reload config") {
		t.Errorf("POST /-/reload of a bad file: HTTP %d %q, want 500 with the reason", code, body)
	}
	if err := <-e.reloaded; err == nil {
		t.Error("a bad file reloaded without error")
	}
	body = e.scrape()
	for _, want := range []string{
		"aily_exporter_config_last_reload_successful 0",
		sessionUp("helpdesk", "session_extra", 1),
		sessionUp("helpdesk", "session_bad", 1),
	} {
		if !hasLine(body, want) {
			t.Errorf("after a bad reload, no line %q in\n%s", want, body)
		}
	}
	if _, cfg := e.do(http.MethodGet, "/config", nil, time.Minute); !strings.Contains(cfg, "session_extra") {
		t.Errorf("/config does not show the configuration still running:\n%s", cfg)
	}
}

func TestConfigEndpointRedactsSecrets(t *testing.T) {
	e := newTestEnv(t)
	code, body := e.do(http.MethodGet, "/config", nil, time.Minute)
	if code != http.StatusOK {
		t.Fatalf("GET /config: HTTP %d", code)
	}
	e.checkNoSecret("/config", body)
	for _, want := range []string{"app_secret: <secret>", "name: helpdesk", "user_access_token_file: "} {
		if !strings.Contains(body, want) {
			t.Errorf("/config lacks %q:\n%s", want, body)
		}
	}
}

func TestNoSecretWhenCredentialsFail(t *testing.T) {
	e := newTestEnv(t)
	e.scrape() // a token is issued and cached
	e.fake.ExpireTokens()
	e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointTenantToken}, feishufake.Fault{Kind: feishufake.TokenEndpointFailure})
	e.fake.RemoveUserToken(userToken)
	body := e.scrape()
	for _, want := range []string{sessionUp("helpdesk", "session_ok", 0), sessionUp("personal", "session_user", 0)} {
		if !hasLine(body, want) {
			t.Errorf("no line %q in\n%s", want, body)
		}
	}
	if !strings.Contains(e.logs.String(), "10003") {
		t.Errorf("the logs do not name the token endpoint's code:\n%s", e.logs.String())
	}
	// checkNoSecret runs on the logs at cleanup.
}

func TestSessionsFileChangeSeenByNextScrape(t *testing.T) {
	e := newTestEnv(t)
	if body := e.scrape(); !hasLine(body, sessionUp("helpdesk", "session_from_file", 1)) {
		t.Fatalf("session_from_file not watched:\n%s", body)
	}
	e.write("helpdesk.sessions", "session_extra\n")
	body := e.scrape()
	if !hasLine(body, sessionUp("helpdesk", "session_extra", 1)) {
		t.Errorf("a session added to the file is not watched:\n%s", body)
	}
	if strings.Contains(body, `session_id="session_from_file"`) {
		t.Errorf("a session removed from the file is still served:\n%s", body)
	}

	// An unreadable file keeps the sessions last read.
	if err := os.Remove(filepath.Join(e.dir, "helpdesk.sessions")); err != nil {
		t.Fatal(err)
	}
	if body := e.scrape(); !hasLine(body, sessionUp("helpdesk", "session_extra", 1)) {
		t.Errorf("a vanished file dropped its sessions:\n%s", body)
	}
}

func TestEndpoints(t *testing.T) {
	e := newTestEnv(t)
	for _, tc := range []struct {
		path string
		want string
	}{
		{"/", "/metrics"},
		{"/-/healthy", "Healthy"},
		{"/-/ready", "Ready"},
	} {
		code, body := e.do(http.MethodGet, tc.path, nil, time.Minute)
		if code != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: HTTP %d, body %q; want 200 containing %q", tc.path, code, body, tc.want)
		}
	}
}

func TestDisableExporterMetrics(t *testing.T) {
	e := newTestEnv(t)
	srv := httptest.NewServer(e.exporter.routes(routeOptions{telemetryPath: "/metrics", disableExporterMetrics: true}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)
	for _, absent := range []string{"go_goroutines", "process_", "promhttp_"} {
		if strings.Contains(body, absent) {
			t.Errorf("%s served with --web.disable-exporter-metrics", absent)
		}
	}
	for _, want := range []string{"aily_exporter_build_info{", "aily_up ", "aily_exporter_config_last_reload_successful 1"} {
		if !hasLine(body, want) {
			t.Errorf("no line %q with --web.disable-exporter-metrics", want)
		}
	}
}

func TestScrapeTimeout(t *testing.T) {
	for _, tc := range []struct {
		header string
		offset time.Duration
		want   time.Duration
	}{
		{"", 500 * time.Millisecond, 9500 * time.Millisecond},
		{"10", 500 * time.Millisecond, 9500 * time.Millisecond},
		{"2.5", 0, 2500 * time.Millisecond},
		{"0.5", 500 * time.Millisecond, 500 * time.Millisecond}, // the offset would leave nothing
		{"garbage", time.Second, 9 * time.Second},
		{"-3", time.Second, 9 * time.Second},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := scrapeTimeout(h, tc.offset); got != tc.want {
			t.Errorf("scrapeTimeout(%q, %v) = %v, want %v", tc.header, tc.offset, got, tc.want)
		}
	}
}

func TestParseBuckets(t *testing.T) {
	got, err := parseBuckets("1, 2.5,5,3600")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{1, 2.5, 5, 3600}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for in, want := range map[string]string{
		"":        "at least one bucket",
		"1,x":     `"x" is not a number`,
		"1,,2":    `"" is not a number`,
		"5,2":     "buckets must be increasing, but 2 follows 5",
		"1,1":     "buckets must be increasing, but 1 follows 1",
		"-1,2":    "-1 is negative",
		"1,+Inf":  `"+Inf" is not a number`,
		"1,NaN,2": `"NaN" is not a number`,
	} {
		if _, err := parseBuckets(in); err == nil || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "--collector.duration-buckets") {
			t.Errorf("parseBuckets(%q) error %v, want one naming the flag and saying %q", in, err, want)
		}
	}
}

func TestFlagDefaults(t *testing.T) {
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse(nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, fl := range a.Model().Flags {
		got[fl.Name] = strings.Join(fl.Default, ",")
	}
	want := map[string]string{
		"config.file":                  "aily.yml",
		"config.check":                 "false",
		"demo":                         "false",
		"web.listen-address":           ":9851",
		"web.telemetry-path":           "/metrics",
		"web.disable-exporter-metrics": "false",
		"feishu.timeout":               "10s",
		"feishu.page-size":             "50",
		"feishu.concurrency":           "4",
		"feishu.rate-limit":            "20",
		"scrape.timeout-offset":        "500ms",
		"poll.min-interval":            "5s",
		"poll.idle-after":              "10m",
		"poll.idle-interval":           "5m",
		"poll.full-interval":           "6h",
		"collector.duration-buckets":   "1,2.5,5,10,20,30,60,120,300,600,1800,3600",
		"log.level":                    "info",
		"log.format":                   "logfmt",
		"demo.speed":                   "1",
		"demo.burst-interval":          "10m",
		"demo.api-address":             "127.0.0.1:0",
	}
	for name, def := range want {
		if g, ok := got[name]; !ok || g != def {
			t.Errorf("--%s default %q (defined %v), want %q", name, g, ok, def)
		}
	}
	for _, fl := range a.Model().Flags {
		if fl.Help == "" {
			t.Errorf("--%s has no help text", fl.Name)
		}
	}
	if f.scrapeTimeoutOffset != 500*time.Millisecond || f.feishuRateLimit != 20 || f.demoSpeed != 1 {
		t.Errorf("parsed defaults: %+v", f)
	}
	buckets, err := parseBuckets(f.durationBuckets)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(histogram.DefaultBuckets(), buckets); diff != "" {
		t.Errorf("default buckets differ from the collector's (-collector +flag):\n%s", diff)
	}
}

// TestRemovedFlagsAreRefused: a flag that is gone is an error at start, not
// a value silently taken (--scrape.min-interval used to win over
// --poll.min-interval); CHANGELOG.md says what replaces it.
func TestRemovedFlagsAreRefused(t *testing.T) {
	for _, flag := range []string{"--scrape.min-interval=10s"} {
		a := kingpin.New(programName, "")
		addFlags(a)
		err := parseFlags(a, []string{flag})
		name, _, _ := strings.Cut(flag, "=")
		if err == nil || !strings.Contains(err.Error(), "unknown long flag '"+name+"'") {
			t.Errorf("%s: %v, want an unknown flag", flag, err)
		}
	}
}

func TestFlagsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--feishu.timeout=0s"}, "--feishu.timeout 0s must be above 0"},
		{[]string{"--feishu.page-size=0"}, "--feishu.page-size 0 must be at least 1"},
		{[]string{"--feishu.concurrency=-1"}, "--feishu.concurrency -1 must be at least 1"},
		{[]string{"--feishu.rate-limit=-5"}, "--feishu.rate-limit -5 must be a number"},
		{[]string{"--scrape.timeout-offset=-1s"}, "--scrape.timeout-offset -1s must not be negative"},
		{[]string{"--poll.min-interval=-1s"}, "--poll.min-interval -1s must not be negative"},
		{[]string{"--poll.idle-after=0s"}, "--poll.idle-after 0s must be above 0"},
		{[]string{"--poll.idle-interval=0s"}, "--poll.idle-interval 0s must be above 0"},
		{[]string{"--poll.full-interval=-1h"}, "--poll.full-interval -1h0m0s must be above 0"},
		{[]string{"--collector.duration-buckets=5,1"}, "buckets must be increasing"},
		{[]string{"--demo", "--demo.speed=0"}, "--demo.speed 0 must be above 0"},
		{[]string{"--demo.speed=10"}, "--demo.speed given without --demo"},
		{[]string{"--demo.failing-session=s", "--demo.api-address=127.0.0.1:9999"},
			"--demo.api-address, --demo.failing-session given without --demo"},
		{[]string{"--config.check", "--demo.burst-interval=1m"}, "--demo.burst-interval given without --demo"},
		{[]string{"--web.telemetry-path=metrics"}, `--web.telemetry-path "metrics" must start with "/"`},
		{[]string{"--web.telemetry-path="}, `--web.telemetry-path "" must start with "/"`},
		{[]string{"--web.telemetry-path=/-/healthy"}, `--web.telemetry-path "/-/healthy" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=/config"}, `--web.telemetry-path "/config" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=/status"}, `--web.telemetry-path "/status" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=/-/metrics"}, `--web.telemetry-path "/-/metrics" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=GET /metrics"}, `--web.telemetry-path "GET /metrics" must start with "/"`},
		{[]string{"--web.telemetry-path=/my metrics"}, `--web.telemetry-path "/my metrics" must be a plain path`},
		{[]string{"--web.telemetry-path=/{name}"}, `--web.telemetry-path "/{name}" must be a plain path`},
		{[]string{"--web.telemetry-path=/metrics?x"}, `--web.telemetry-path "/metrics?x" must be a plain path`},
		{[]string{"--web.telemetry-path=/a/../metrics"}, `--web.telemetry-path "/a/../metrics" must be a plain path`},
	} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr syncBuffer
		code := run(context.Background(), f, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions: [s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sesions: [s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path       string
		wantCode   int
		wantOut    string
		wantStderr string
	}{
		{good, 0, "config OK\n", ""},
		{bad, 1, "", `line 5: unknown key "sesions"`},
		{filepath.Join(dir, "missing.yml"), 1, "", "missing.yml"},
	} {
		var stdout, stderr bytes.Buffer
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse([]string{"--config.check", "--config.file", tc.path}); err != nil {
			t.Fatal(err)
		}
		code := run(context.Background(), f, &stdout, &stderr)
		if code != tc.wantCode || stdout.String() != tc.wantOut || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("--config.check %s: exit %d, stdout %q, stderr %q; want %d, %q, %q",
				filepath.Base(tc.path), code, stdout.String(), stderr.String(), tc.wantCode, tc.wantOut, tc.wantStderr)
		}
	}
}

func TestDemoWatchesEverySimulatedSession(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	logger, _ := newLogger(logs, "info", "logfmt")
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse([]string{"--demo"}); err != nil {
		t.Fatal(err)
	}
	d, err := startDemo(ctx, f, logger)
	if err != nil {
		t.Fatal(err)
	}
	e := newExporter(exporterOptions{logger: logger, source: d.config, clients: clientOptions{timeout: 10 * time.Second}})
	if err := e.reload(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.routes(routeOptions{telemetryPath: "/metrics"}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	body := string(b)

	if !hasLine(body, "aily_up 1") {
		t.Errorf("aily_up is not 1:\n%s", body)
	}
	for _, app := range d.sim.Apps() {
		for _, s := range app.Sessions {
			if !hasLine(body, sessionUp(app.Name, s, 1)) {
				t.Errorf("simulated session %s/%s is not watched", app.Name, s)
			}
		}
		if strings.Contains(body, app.AppSecret) || strings.Contains(logs.String(), app.AppSecret) {
			t.Errorf("the secret of simulated app %s is shown", app.Name)
		}
	}
	if !strings.Contains(logs.String(), "/simulator/burst") {
		t.Errorf("the simulator's address is not logged:\n%s", logs.String())
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse([]string{"--demo", "--web.listen-address", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as if SIGTERM had come
	var stdout, stderr syncBuffer
	if code := run(ctx, f, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; logs:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Shutting down") {
		t.Errorf("no shutdown logged:\n%s", stderr.String())
	}
}

func TestMissingSessionsFileIsAWarning(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.exporter.runReloader(ctx, nil)

	// helpdesk's only sessions come from a file that is not there (yet), as
	// when a volume is mounted late.
	if err := os.Remove(filepath.Join(e.dir, "helpdesk.sessions")); err != nil {
		t.Fatal(err)
	}
	e.write("aily.yml", configYAML(e.api.URL))
	if code, body := e.do(http.MethodPost, "/-/reload", nil, time.Minute); code != http.StatusOK {
		t.Fatalf("POST /-/reload: HTTP %d %q, want 200", code, body)
	}
	if err := <-e.reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
	if logs := e.logs.String(); !regexp.MustCompile(`level=warn .*helpdesk.sessions does not exist`).MatchString(logs) {
		t.Errorf("no warning about the missing file in the logs:\n%s", logs)
	}
	body := e.scrape()
	if strings.Contains(body, `app="helpdesk",session_id=`) {
		t.Errorf("helpdesk watches sessions without a sessions file:\n%s", body)
	}
	if !hasLine(body, sessionUp("personal", "session_user", 1)) {
		t.Errorf("the other app is not watched:\n%s", body)
	}
	e.scrape()
	e.scrape()
	if n := len(regexp.MustCompile(`level=warn [^\n]*Keeping the sessions last read`).FindAllString(e.logs.String(), -1)); n > 1 {
		t.Errorf("three scrapes without the file warned %d times, want at most once", n)
	}

	// The file appears: the next scrape watches its sessions.
	e.write("helpdesk.sessions", "session_from_file\n")
	if body := e.scrape(); !hasLine(body, sessionUp("helpdesk", "session_from_file", 1)) {
		t.Errorf("the sessions of a file that appeared are not watched:\n%s", body)
	}

	// --config.check says the same, and passes.
	var stdout, stderr bytes.Buffer
	if err := os.Remove(filepath.Join(e.dir, "helpdesk.sessions")); err != nil {
		t.Fatal(err)
	}
	code := checkConfig(filepath.Join(e.dir, "aily.yml"), "", clientOptions{timeout: time.Second}, sharding.Shard{}, &stdout, &stderr)
	if code != 0 || stdout.String() != "config OK\n" || !strings.Contains(stderr.String(), "helpdesk.sessions does not exist") {
		t.Errorf("--config.check: exit %d, stdout %q, stderr %q; want 0, config OK and the warning", code, stdout.String(), stderr.String())
	}
}

func TestTelemetryPathAccepted(t *testing.T) {
	for _, path := range []string{"/", "/metrics", "/aily/metrics", "/metrics/"} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse([]string{"--web.telemetry-path=" + path}); err != nil {
			t.Fatal(err)
		}
		if err := checkFlags(f); err != nil {
			t.Errorf("--web.telemetry-path=%s: %v", path, err)
			continue
		}
		e := newExporter(exporterOptions{logger: log.NewNopLogger()})
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("--web.telemetry-path=%s passes checkFlags but the routes panic: %v", path, r)
				}
			}()
			e.routes(routeOptions{telemetryPath: f.telemetryPath})
		}()
	}
}

func TestParseErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--feishu.page-size=abc"}, `--feishu.page-size: "abc" is not valid: strconv.ParseFloat: parsing "abc": invalid syntax`},
		{[]string{"--feishu.rate-limit", "fast"}, `--feishu.rate-limit: "fast" is not valid`},
		{[]string{"--feishu.timeout=10"}, `--feishu.timeout: "10" is not valid: time: missing unit in duration "10"`},
		{[]string{"--log.level=loud"}, `--log.level: "loud" is not valid: enum value must be one of debug,info,warn,error`},
		{[]string{"--feishu.concurrency=2", "--feishu.page-size=x"}, `--feishu.page-size: "x" is not valid`},
		{[]string{"--no-such-flag"}, "unknown long flag '--no-such-flag'"},
	} {
		a := kingpin.New(programName, "")
		addFlags(a)
		err := parseFlags(a, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if err := parseFlags(a, []string{"--feishu.page-size=20"}); err != nil || f.feishuPageSize != 20 {
		t.Errorf("parseFlags of a good value: %v, page size %d", err, f.feishuPageSize)
	}
}

func TestConfigCheckChecksTheWebConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("aily.yml", "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions: [s]\n")
	for _, tc := range []struct {
		name       string
		webConfig  string
		wantCode   int
		wantStderr string
	}{
		{"no web config", "", 0, ""},
		{"basic auth", write("web-ok.yml", "basic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n"), 0, ""},
		{"unknown key", write("web-typo.yml", "tls_server_confg:\n  cert_file: x\n"), 1, "--web.config.file"},
		{"missing certificate", write("web-tls.yml", "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n"), 1, "nope.crt"},
		{"missing file", filepath.Join(dir, "missing-web.yml"), 1, "missing-web.yml"},
	} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		args := []string{"--config.check", "--config.file", cfg}
		if tc.webConfig != "" {
			args = append(args, "--web.config.file", tc.webConfig)
		}
		if _, err := a.Parse(args); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), f, &stdout, &stderr)
		if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d and %q", tc.name, code, stdout.String(), stderr.String(), tc.wantCode, tc.wantStderr)
		}
		if tc.wantCode == 0 && stdout.String() != "config OK\n" {
			t.Errorf("%s: stdout %q, want config OK", tc.name, stdout.String())
		}
	}
}

func TestNoArchivedYAMLModule(t *testing.T) {
	// gopkg.in/yaml.v3 is archived; the Prometheus libraries moved to
	// go.yaml.in/yaml/v3, and so does every package here, tests included.
	const archived = "gopkg.in/yaml.v3"
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == strconv.Quote(archived) {
				t.Errorf("%s imports %s; use go.yaml.in/yaml/v3", path, archived)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(archived) + ` v\S+\s*$`).Match(mod) {
		t.Errorf("go.mod requires %s directly", archived)
	}
}
