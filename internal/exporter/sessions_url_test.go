package exporter

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/status"
)

// sessionsAgent is the service that publishes helpdesk's sessions: it
// answers the JSON array set last, or the HTTP status set instead, or
// nothing (hang) until the test ends.
type sessionsAgent struct {
	srv     *httptest.Server
	release chan struct{}

	mu       sync.Mutex
	ids      string // the JSON array
	status   int    // not 0: answer this status instead
	hang     bool
	requests int
	auth     []string // the Authorization headers received
}

func newSessionsAgent(t *testing.T, ids string) *sessionsAgent {
	t.Helper()
	a := &sessionsAgent{ids: ids, release: make(chan struct{})}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.requests++
		a.auth = append(a.auth, r.Header.Get("Authorization"))
		ids, status, hang := a.ids, a.status, a.hang
		a.mu.Unlock()
		switch {
		case hang:
			select {
			case <-r.Context().Done():
			case <-a.release:
			}
		case status != 0:
			w.WriteHeader(status)
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, ids)
		}
	}))
	t.Cleanup(func() {
		close(a.release)
		a.srv.Close()
	})
	return a
}

func (a *sessionsAgent) set(ids string, status int, hang bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids, a.status, a.hang = ids, status, hang
}

func (a *sessionsAgent) lastAuth() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.auth[len(a.auth)-1]
}

func (a *sessionsAgent) requestCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests
}

// sessionsURLConfig is configYAML with helpdesk's sessions also fetched
// from url with basic auth, refreshed hourly: the tests fetch again
// themselves.
func sessionsURLConfig(apiURL, url string, helpdeskSessions ...string) string {
	return strings.Replace(configYAML(apiURL, helpdeskSessions...), "    sessions_file: helpdesk.sessions\n",
		fmt.Sprintf(`    sessions_file: helpdesk.sessions
    sessions_url: %s/aily/sessions
    sessions_refresh_interval: 1h
    sessions_http_config:
      basic_auth:
        username: exporter
        password: %s
`, url, sessionsURLPassword), 1)
}

// reloadWith writes the configuration and reloads it.
func (e *testEnv) reloadWith(cfg string) {
	e.t.Helper()
	e.write("aily.yml", cfg)
	if err := e.exporter.Reload(); err != nil {
		e.t.Fatalf("reload: %v", err)
	}
	<-e.reloaded
}

// source returns the app's sessions_url source.
func (e *testEnv) source(app string) *appDiscovery {
	e.t.Helper()
	e.exporter.mu.Lock()
	d := e.exporter.discoveries[app]
	e.exporter.mu.Unlock()
	if d == nil {
		e.t.Fatalf("app %s has no sessions_url source", app)
	}
	return d
}

// stopped fails the test unless d's goroutine ends.
func (e *testEnv) stopped(d *appDiscovery) {
	e.t.Helper()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		e.t.Error("the source of a sessions_url that left the configuration still runs")
	}
}

// refetch fetches the app's sessions_url once, as its next refresh would.
func (e *testEnv) refetch(app string) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return e.source(app).source.Refresh(ctx)
}

func TestSessionsFromTheURLArePolledAndDropped(t *testing.T) {
	e := newTestEnv(t)
	agent := newSessionsAgent(t, `["session_extra", "session_ok"]`)
	e.reloadWith(sessionsURLConfig(e.api.URL, agent.srv.URL, "session_ok"))

	// At the reload, the first fetch: its sessions join the others, each once.
	body := e.scrape()
	for _, want := range []string{
		sessionUp("helpdesk", "session_extra", 1),
		sessionUp("helpdesk", "session_ok", 1),
		sessionUp("helpdesk", "session_from_file", 1),
		`aily_sessions_discovery_up{app="helpdesk"} 1`,
		`aily_sessions_discovered{app="helpdesk"} 2`,
	} {
		if !hasLine(body, want) {
			t.Errorf("no line %q after the first fetch:\n%s", want, body)
		}
	}
	if n := strings.Count(body, `aily_session_up{app="helpdesk",session_id="session_ok"}`); n != 1 {
		t.Errorf("session_ok, listed by the file and the URL, is served %d times", n)
	}
	if hasLine(body, `aily_sessions_discovery_up{app="personal"}`) {
		t.Errorf("an app without sessions_url has discovery series:\n%s", body)
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("exporter:"+sessionsURLPassword))
	if got := agent.lastAuth(); got != wantAuth {
		t.Errorf("the fetch sent Authorization %q, want the basic auth configured", got)
	}

	// The agent ends session_extra and creates session_new: the next fetch
	// adds one and drops the other, as a reload would.
	now := time.Now()
	e.fake.PutRun(feishu.Run{ID: "run_new", AppID: "spring_demo__c", SessionID: "session_new", Status: feishu.StatusCompleted,
		CreatedAt: now.Add(-time.Minute), StartedAt: now.Add(-50 * time.Second), EndedAt: now.Add(-10 * time.Second)})
	agent.set(`["session_new"]`, 0, false)
	if err := e.refetch("helpdesk"); err != nil {
		t.Fatal(err)
	}
	body = e.scrape()
	if !hasLine(body, sessionUp("helpdesk", "session_new", 1)) {
		t.Errorf("the session added to the list is not polled:\n%s", body)
	}
	if strings.Contains(body, `session_id="session_extra"`) {
		t.Errorf("the session removed from the list is still served:\n%s", body)
	}
	for _, want := range []string{sessionUp("helpdesk", "session_ok", 1), `aily_sessions_discovered{app="helpdesk"} 1`} {
		if !hasLine(body, want) {
			t.Errorf("no line %q after the list changed:\n%s", want, body)
		}
	}

	// The agent fails: the last list stays, the failure shows as a series,
	// on /status and once in the log.
	agent.set("", http.StatusInternalServerError, false)
	for range 3 {
		if err := e.refetch("helpdesk"); err == nil {
			t.Fatal("a fetch answered 500 succeeded")
		}
		body = e.scrape()
	}
	for _, want := range []string{sessionUp("helpdesk", "session_new", 1), `aily_sessions_discovery_up{app="helpdesk"} 0`,
		`aily_sessions_discovered{app="helpdesk"} 1`} {
		if !hasLine(body, want) {
			t.Errorf("no line %q while the URL fails:\n%s", want, body)
		}
	}
	if n := len(regexp.MustCompile(`level=warn [^\n]*Cannot fetch the sessions of sessions_url`).FindAllString(e.logs.String(), -1)); n != 1 {
		t.Errorf("three failed fetches warned %d times, want once:\n%s", n, e.logs)
	}
	html, p := e.statusPage("?app=helpdesk")
	var u *status.SessionsURL
	for _, a := range p.Apps {
		if a.Name == "helpdesk" {
			u = a.SessionsURL
		}
	}
	if u == nil || u.Up || u.URL != agent.srv.URL+"/aily/sessions" || u.Sessions != 1 || !strings.Contains(u.LastError, "HTTP 500") || u.LastSuccess == nil {
		t.Errorf("/status.json sessions_url = %+v, want down with the 500, the URL, the last success and 1 session kept", u)
	}
	if !strings.Contains(html, `<tr class="sessions-url" data-app="helpdesk" data-up="false">`) {
		t.Errorf("/status has no failing sessions_url row for helpdesk:\n%s", html)
	}

	// /config shows the URL and hides the password (checkNoSecret).
	_, cfg := e.do(http.MethodGet, "/config", nil, time.Minute)
	e.checkNoSecret("/config", cfg)
	for _, want := range []string{"sessions_url: " + agent.srv.URL + "/aily/sessions", "password: <secret>", "sessions_refresh_interval: 1h0m0s"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("/config lacks %q:\n%s", want, cfg)
		}
	}
}

func TestAReloadKeepsOrDropsTheSessionsURL(t *testing.T) {
	e := newTestEnv(t)
	agent := newSessionsAgent(t, `["session_extra"]`)
	withURL := sessionsURLConfig(e.api.URL, agent.srv.URL, "session_ok")
	e.reloadWith(withURL)
	if n := agent.requestCount(); n != 1 {
		t.Fatalf("the reload that added sessions_url fetched it %d times, want once", n)
	}

	// Another change to the file: the source stays, with its list; no new
	// first fetch.
	e.reloadWith(strings.Replace(withURL, "sessions: [session_ok]", "sessions: [session_ok, session_bad]", 1))
	body := e.scrape()
	if n := agent.requestCount(); n != 1 {
		t.Errorf("a reload that left sessions_url alone fetched it again (%d requests)", n)
	}
	for _, want := range []string{sessionUp("helpdesk", "session_extra", 1), sessionUp("helpdesk", "session_bad", 1)} {
		if !hasLine(body, want) {
			t.Errorf("no line %q after the reload:\n%s", want, body)
		}
	}

	// Its settings change: a new source, fetched at the reload; the old
	// one stops.
	old := e.source("helpdesk")
	e.reloadWith(strings.Replace(withURL, "refresh_interval: 1h", "refresh_interval: 2h", 1))
	if n := agent.requestCount(); n != 2 {
		t.Errorf("a reload that changed sessions_url's settings made %d requests in all, want 2", n)
	}
	e.stopped(old)

	// sessions_url leaves the configuration: its sessions and series go,
	// and its source stops.
	old = e.source("helpdesk")
	e.reloadWith(configYAML(e.api.URL, "session_ok"))
	e.stopped(old)
	body = e.scrape()
	if strings.Contains(body, `session_id="session_extra"`) || strings.Contains(body, "aily_sessions_discover") {
		t.Errorf("sessions_url's sessions or series are served after it left the configuration:\n%s", body)
	}
	e.exporter.mu.Lock()
	n := len(e.exporter.discoveries)
	e.exporter.mu.Unlock()
	if n != 0 {
		t.Errorf("%d sources still run", n)
	}
}

// TestAFailedFirstFetchDoesNotStopTheExporter: the URL hangs when it is
// first fetched; the reload succeeds after the fetch's timeout, the other
// sessions are served, and the URL's sessions come once it answers.
func TestAFailedFirstFetchDoesNotStopTheExporter(t *testing.T) {
	e := newTestEnv(t)
	e.exporter.discoveryTimeout = 200 * time.Millisecond
	agent := newSessionsAgent(t, `["session_extra"]`)
	agent.set("", 0, true)
	start := time.Now()
	e.reloadWith(sessionsURLConfig(e.api.URL, agent.srv.URL, "session_ok"))
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the reload took %v with a URL that hangs, want about the 200ms timeout", took)
	}
	body := e.scrape()
	for _, want := range []string{sessionUp("helpdesk", "session_ok", 1), sessionUp("personal", "session_user", 1),
		`aily_sessions_discovery_up{app="helpdesk"} 0`, `aily_sessions_discovery_last_success_timestamp_seconds{app="helpdesk"} 0`,
		`aily_sessions_discovered{app="helpdesk"} 0`, "aily_exporter_config_last_reload_successful 1"} {
		if !hasLine(body, want) {
			t.Errorf("no line %q with a URL that hangs:\n%s", want, body)
		}
	}
	if !strings.Contains(e.logs.String(), "no complete answer within 200ms") {
		t.Errorf("the log does not say the fetch timed out:\n%s", e.logs)
	}

	agent.set(`["session_extra"]`, 0, false)
	if err := e.refetch("helpdesk"); err != nil {
		t.Fatal(err)
	}
	if body := e.scrape(); !hasLine(body, sessionUp("helpdesk", "session_extra", 1)) || !hasLine(body, `aily_sessions_discovery_up{app="helpdesk"} 1`) {
		t.Errorf("the URL's sessions are not polled once it answers:\n%s", body)
	}
}

func TestConfigCheckBuildsTheSessionsURLClient(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "aily.yml")
	e := &testEnv{t: t, dir: dir}
	e.write("aily.yml", `apps:
  - name: a
    app_id: cli_a
    app_secret: x
    sessions_url: https://agent.example.com/sessions
    sessions_http_config:
      tls_config: {ca_file: missing-ca.pem}
`)
	code, _, stderr := checkConfig(path)
	if code != 1 || !strings.Contains(stderr, `app "a": sessions_http_config: `) || !strings.Contains(stderr, "missing-ca.pem") {
		t.Errorf("--config.check with a CA file that is not there: exit %d, stderr %q; want 1 naming the app and the file", code, stderr)
	}
}
