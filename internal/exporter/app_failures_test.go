package exporter

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/status"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// wrongSecret is a secret the fake does not know; like appSecret, it may
// never be shown.
const wrongSecret = "sekrit-wrong-secret-9876543210"

// appsEnv is what manySessionsEnv makes.
type appsEnv struct {
	sessions int    // of the app helpdesk
	secret   string // helpdesk's app_secret
	clk      *feishufake.Clock
	timeout  time.Duration // --feishu.timeout
	apiURL   string        // base_url of both apps; "" the fake's
}

// manySessionsEnv is the exporter, with the flags' defaults for requests
// and polling but --feishu.timeout, in front of the fake (or o.apiURL): the
// app helpdesk with o.sessions sessions and o.secret, and the user-token app
// personal with one. The exporter and the clients run on o.clk.
func manySessionsEnv(t *testing.T, o appsEnv) *testEnv {
	t.Helper()
	t.Setenv("AILY_TEST_APP_SECRET", o.secret)
	e := &testEnv{t: t, fake: feishufake.New(feishufake.Options{Now: o.clk.Now}), dir: t.TempDir(), logs: &testkit.LogBuffer{}, reloaded: make(chan error, 10)}
	e.fake.AddApp("cli_helpdesk", appSecret)
	e.fake.AddUserToken(userToken)
	e.fake.AddSession("session_user")
	var ids strings.Builder
	for _, id := range sessionIDs(o.sessions) {
		e.fake.AddSession(id)
		ids.WriteString(id + "\n")
	}
	e.api = httptest.NewServer(e.fake)
	t.Cleanup(e.api.Close)
	if o.apiURL == "" {
		o.apiURL = e.api.URL
	}
	e.write("user.token", userToken+"\n")
	e.write("helpdesk.sessions", ids.String())
	e.write("aily.yml", configYAML(o.apiURL))
	e.start(nil, ClientOptions{Timeout: o.timeout, PageSize: 50, RateLimit: 20, Concurrency: 4, now: o.clk.Now},
		watch.Options{MinInterval: 5 * time.Second, Concurrency: 4, RateLimit: 20, Now: o.clk.Now})
	t.Cleanup(func() {
		e.checkNoSecret("the logs", e.logs.String())
		if strings.Contains(e.logs.String(), wrongSecret) {
			t.Errorf("the logs show the secret %q", wrongSecret)
		}
	})
	return e
}

// sessionIDs are the IDs of manySessionsEnv's sessions.
func sessionIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("session_%03d", i)
	}
	return ids
}

// appLogLines returns the log lines of an app at a level, and the messages
// of those lines that name a session.
func appLogLines(t *testing.T, logs, app, lvl string) (lines []testkit.LogLine, perSession []string) {
	t.Helper()
	for _, l := range testkit.LogLines(t, logs, "app="+app) {
		if l["level"] != lvl || l["app"] != app {
			continue
		}
		lines = append(lines, l)
		if l["session_id"] != "" {
			perSession = append(perSession, l["msg"])
		}
	}
	return lines, perSession
}

func TestAWrongSecretIsOneFactPerApp(t *testing.T) {
	clk := feishufake.NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	e := manySessionsEnv(t, appsEnv{sessions: 300, secret: wrongSecret, clk: clk, timeout: 10 * time.Second})

	const scrapes = 6
	for i := range scrapes {
		body := e.scrape()
		for _, want := range []string{
			`aily_sessions_overdue{app="helpdesk"} 0`,
			`aily_sessions{app="helpdesk",state="failing"} 300`,
			`aily_app_token_up{app="helpdesk"} 0`,
			`aily_app_token_up{app="personal"} 1`,
			sessionUp("personal", "session_user", 1),
		} {
			if !hasLine(body, want) {
				t.Errorf("scrape %d: no line %q", i+1, want)
			}
		}
		clk.Advance(15 * time.Second)
	}
	// One token call per scrape at most: not one per session, nor one per
	// session and scrape (300 × 6).
	if n := e.fake.Requests(string(feishu.EndpointTenantToken)); n > scrapes {
		t.Errorf("%d token requests in %d scrapes, want at most one a scrape", n, scrapes)
	}
	warns, perSession := appLogLines(t, e.logs.String(), "helpdesk", "warn")
	if len(warns) != 1 || len(perSession) != 0 {
		t.Fatalf("%d warnings for the app (%d naming a session), want 1 for the app:\n%s", len(warns), len(perSession), e.logs.String())
	}
	if w := warns[0]; !strings.Contains(w["err"], "10003") || !strings.Contains(w["hint"], "app_secret") {
		t.Errorf("the warning does not name the code and what to check: %v", w)
	}
	_, p := e.statusPage("?app=helpdesk")
	if tok := p.Apps[0].Token; tok.State != status.TokenFailed || !strings.Contains(tok.Error, "10003") {
		t.Errorf("the status page's token: %+v, want failed with code 10003", tok)
	}

	// The secret fixed: one line for the app says so, none per session.
	// (Ten sessions are enough, and they fit the request budget.)
	t.Setenv("AILY_TEST_APP_SECRET", appSecret)
	e.write("helpdesk.sessions", strings.Join(sessionIDs(10), "\n"))
	if err := e.exporter.Reload(); err != nil {
		t.Fatal(err)
	}
	<-e.reloaded
	clk.Advance(10 * time.Minute)
	body := e.scrape()
	if !hasLine(body, `aily_app_token_up{app="helpdesk"} 1`) || !hasLine(body, sessionUp("helpdesk", "session_000", 1)) {
		t.Errorf("the app's token and sessions are not up after the fix:\n%s", grepLines(body, "aily_app_token_up"))
	}
	infos, perSession := appLogLines(t, e.logs.String(), "helpdesk", "info")
	var works int
	for _, l := range infos {
		if strings.Contains(l["msg"], "work again") {
			works++
		}
	}
	if works != 1 || len(perSession) != 0 {
		t.Errorf("%d info lines say the app works again (%d lines name a session), want 1 for the app:\n%s", works, len(perSession), e.logs.String())
	}
}

// silentAPI is an address that accepts connections and never answers.
func silentAPI(t *testing.T) (url, host string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String(), ln.Addr().String()
}

// scrapeWithin scrapes as Prometheus would with a scrape timeout of d.
func (e *testEnv) scrapeWithin(d time.Duration) string {
	e.t.Helper()
	code, body := e.do(http.MethodGet, "/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {fmt.Sprint(d.Seconds())}}, time.Minute)
	if code != http.StatusOK {
		e.t.Fatalf("GET /metrics: HTTP %d\n%s", code, body)
	}
	return body
}

func TestAnAPIThatNeverAnswersIsOneWarningNamingTheHostAndTheTimeout(t *testing.T) {
	clk := feishufake.NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	url, host := silentAPI(t)
	e := manySessionsEnv(t, appsEnv{sessions: 20, secret: appSecret, clk: clk, timeout: 100 * time.Millisecond, apiURL: url})
	for range 3 {
		e.scrapeWithin(10 * time.Second)
		clk.Advance(15 * time.Second)
	}
	for _, app := range []string{"helpdesk", "personal"} {
		warns, perSession := appLogLines(t, e.logs.String(), app, "warn")
		if len(warns) != 1 || len(perSession) != 0 {
			t.Fatalf("app %s: %d warnings (%d naming a session), want 1 for the app:\n%s", app, len(warns), len(perSession), e.logs.String())
		}
		w := warns[0]
		if !strings.Contains(w["err"], host) || !strings.Contains(w["hint"], host) || !strings.Contains(w["hint"], "--feishu.timeout") {
			t.Errorf("app %s: the warning does not name the host %s and --feishu.timeout: %v", app, host, w)
		}
	}
}

func TestRepeatedCutOffsAreOneWarningPerApp(t *testing.T) {
	clk := feishufake.NewClock(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	url, host := silentAPI(t)
	// A request may take longer than the scrape: the scrape deadline cuts
	// the polls off.
	e := manySessionsEnv(t, appsEnv{sessions: 20, secret: appSecret, clk: clk, timeout: time.Minute, apiURL: url})
	for range 3 {
		body := e.scrapeWithin(1500 * time.Millisecond) // a deadline of 0.5s
		if !hasLine(body, sessionUp("helpdesk", "session_000", 0)) {
			t.Fatalf("the session cut off is not down:\n%s", body)
		}
		clk.Advance(15 * time.Second)
	}
	// The four polls each scrape starts are of helpdesk (its sessions come
	// first), and all of them are cut off.
	for _, app := range []string{"helpdesk"} {
		warns, perSession := appLogLines(t, e.logs.String(), app, "warn")
		if len(warns) != 1 || len(perSession) != 0 {
			t.Fatalf("app %s: %d warnings (%d naming a session), want 1 for the app:\n%s", app, len(warns), len(perSession), e.logs.String())
		}
		w := warns[0]
		if !strings.Contains(w["msg"], "cut off by the scrape deadline") || !strings.Contains(w["err"], host) {
			t.Errorf("app %s: the warning does not say polls were cut off at %s: %v", app, host, w)
		}
		for _, setting := range []string{"scrape_timeout", "--scrape.timeout-offset", "--feishu.timeout"} {
			if !strings.Contains(w["hint"], setting) {
				t.Errorf("app %s: the warning's hint does not name %s: %v", app, setting, w)
			}
		}
	}
}
