package exporter

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
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

// testEnv is the exporter's real HTTP handler in front of the fake Feishu API.
type testEnv struct {
	t        *testing.T
	fake     *feishufake.Fake
	api      *httptest.Server
	dir      string
	exporter *Exporter
	server   *httptest.Server
	logs     *testkit.LogBuffer
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
	e := &testEnv{t: t, fake: feishufake.New(feishufake.Options{}), dir: t.TempDir(), logs: &testkit.LogBuffer{}, reloaded: make(chan error, 10)}
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

	logger := testkit.Logger(e.logs, "debug")
	var store *Storage
	if storageDir != "" {
		var err error
		if store, err = OpenStorage(storageDir, logger); err != nil {
			t.Fatal(err)
		}
	}
	// No min interval, and idle sessions as due as active ones: every
	// scrape polls afresh, so that each sees the fake as the test just set
	// it.
	e.start(store, ClientOptions{Timeout: 10 * time.Second, PageSize: 50, RateLimit: 0},
		watch.Options{Concurrency: 4, MinInterval: -1, IdleInterval: time.Nanosecond})
	t.Cleanup(func() { e.checkNoSecret("the logs", e.logs.String()) })
	return e
}

// start builds the exporter on aily.yml with store (nil: no state),
// clients and wo, loads it and serves it.
func (e *testEnv) start(store *Storage, clients ClientOptions, wo watch.Options) {
	e.t.Helper()
	e.exporter = New(Options{
		Storage:  store,
		Logger:   testkit.Logger(e.logs, "debug"),
		Source:   func() (*config.Config, error) { return config.Load(filepath.Join(e.dir, "aily.yml")) },
		Clients:  clients,
		Watch:    wo,
		onReload: func(err error) { e.reloaded <- err },
	})
	if err := e.exporter.Reload(); err != nil {
		e.t.Fatalf("initial load: %v", err)
	}
	<-e.reloaded
	e.server = httptest.NewServer(e.exporter.Routes(RouteOptions{TelemetryPath: "/metrics", TimeoutOffset: time.Second}))
	e.t.Cleanup(e.server.Close)
	e.t.Cleanup(e.exporter.Close)
}

// runReloader runs the exporter's reloader, as the command does, until
// the test ends: POST /-/reload needs it.
func (e *testEnv) runReloader() {
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	go e.exporter.RunReloader(ctx, nil)
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
	go e.exporter.RunReloader(ctx, hup)

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
	e.runReloader()

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

// getMetrics returns the body of GET /metrics of the server at url.
func getMetrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestDisableExporterMetrics(t *testing.T) {
	e := newTestEnv(t)
	srv := httptest.NewServer(e.exporter.Routes(RouteOptions{TelemetryPath: "/metrics", DisableExporterMetrics: true}))
	defer srv.Close()
	body := getMetrics(t, srv.URL)
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

func TestMissingSessionsFileIsAWarning(t *testing.T) {
	e := newTestEnv(t)
	e.runReloader()

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
	if err := os.Remove(filepath.Join(e.dir, "helpdesk.sessions")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := checkConfig(filepath.Join(e.dir, "aily.yml"))
	if code != 0 || stdout != "config OK\n" || !strings.Contains(stderr, "helpdesk.sessions does not exist") {
		t.Errorf("--config.check: exit %d, stdout %q, stderr %q; want 0, config OK and the warning", code, stdout, stderr)
	}
}
