package exporter

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/status"
)

// statusPage gets /status and /status.json with the query and checks that
// neither shows a secret.
func (e *testEnv) statusPage(query string) (string, *status.Page) {
	e.t.Helper()
	code, body := e.do(http.MethodGet, "/status"+query, nil, time.Minute)
	if code != http.StatusOK {
		e.t.Fatalf("GET /status%s: HTTP %d\n%s", query, code, body)
	}
	e.checkNoSecret("/status", body)
	code, js := e.do(http.MethodGet, "/status.json"+query, nil, time.Minute)
	if code != http.StatusOK {
		e.t.Fatalf("GET /status.json%s: HTTP %d\n%s", query, code, js)
	}
	e.checkNoSecret("/status.json", js)
	var p status.Page
	if err := json.Unmarshal([]byte(js), &p); err != nil {
		e.t.Fatalf("/status.json: %v\n%s", err, js)
	}
	return body, &p
}

var (
	failedRowRE  = regexp.MustCompile(`(?s)<tr class="failed-run" data-run-id="([^"]*)">(.*?)</tr>`)
	sessionRowRE = regexp.MustCompile(`<tr class="session" data-app="([^"]*)" data-session-id="([^"]*)" data-state="([^"]*)">`)
	cellRE       = regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
)

// htmlText returns the text of an HTML fragment: tags dropped, entities read.
func htmlText(s string) string {
	return html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, ""))
}

func TestStatusPageShowsTheFakesFailedRuns(t *testing.T) {
	e := newTestEnv(t)
	now := time.Now()
	// Failed before the watch began: not counted, not shown.
	e.fake.PutRun(feishu.Run{ID: "run_before", SessionID: "session_ok", Status: feishu.StatusFailed,
		CreatedAt: now.Add(-time.Hour), StartedAt: now.Add(-time.Hour), EndedAt: now.Add(-50 * time.Minute),
		Error: &feishu.RunError{Code: "sp_ec_old", Message: "old"}})
	e.scrape()                        // the baseline
	now = time.Now().Add(time.Second) // after the watch began

	messages := map[string]string{
		"run_script": `<script>alert("x")</script> & more`,
		"run_cn":     "大模型调用超时",
		"run_long":   strings.Repeat("long message ", 100),
		"run_nocode": "",
	}
	for id, msg := range messages {
		r := feishu.Run{ID: id, SessionID: "session_ok", Status: feishu.StatusFailed,
			CreatedAt: now, StartedAt: now.Add(time.Second), EndedAt: now.Add(11 * time.Second)}
		if id != "run_nocode" {
			r.Error = &feishu.RunError{Code: "sp_ec_" + id, Message: msg}
		}
		e.fake.PutRun(r)
	}
	e.fake.PutRun(feishu.Run{ID: "run_extra_fail", SessionID: "session_extra", Status: feishu.StatusFailed,
		CreatedAt: now.Add(-time.Hour), Error: &feishu.RunError{Code: "sp_ec_extra", Message: "another"}})
	e.fake.SetFault(feishufake.Scope{SessionID: "session_bad"}, feishufake.Fault{Kind: feishufake.NotFoundText})
	e.write("helpdesk.sessions", "session_from_file\nsession_extra\n")
	e.scrape() // adds session_extra: its baseline counts nothing
	e.fake.PutRun(feishu.Run{ID: "run_extra_fail2", SessionID: "session_extra", Status: feishu.StatusFailed,
		CreatedAt: time.Now().Add(time.Second), Error: &feishu.RunError{Code: "sp_ec_extra", Message: "another"}})
	e.scrape()

	body, p := e.statusPage("")
	want := []string{"run_cn", "run_extra_fail2", "run_long", "run_nocode", "run_script"}
	var got []string
	for _, f := range p.FailedRuns {
		got = append(got, f.RunID)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("failed runs in /status.json = %v, want those the fake failed after the watch began %v", got, want)
	}

	// The HTML shows the same failed runs, their messages as text.
	rows := failedRowRE.FindAllStringSubmatch(body, -1)
	if len(rows) != len(p.FailedRuns) {
		t.Fatalf("%d failed runs in the HTML, %d in the JSON", len(rows), len(p.FailedRuns))
	}
	for i, row := range rows {
		f := p.FailedRuns[i]
		cells := cellRE.FindAllStringSubmatch(row[2], -1)
		if row[1] != f.RunID || len(cells) != 7 {
			t.Errorf("HTML row %d is run %s with %d cells, JSON %s", i, row[1], len(cells), f.RunID)
			continue
		}
		text := func(i int) string { return htmlText(cells[i][1]) }
		msg := f.Message
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		if text(1) != f.App || text(2) != f.SessionID || text(3) != f.RunID || text(4) != f.Code || text(5) != msg {
			t.Errorf("HTML row of %s = %q %q %q %q %q, JSON %+v", f.RunID, text(1), text(2), text(3), text(4), text(5), f)
		}
		if f.RunID != "run_extra_fail2" && (f.DurationSeconds == nil || *f.DurationSeconds != 10 || text(6) != "10s") {
			t.Errorf("duration of %s: JSON %v, HTML %q; want 10s", f.RunID, f.DurationSeconds, text(6))
		}
		// Messages are kept whole up to 1 KiB, then cut with a marker.
		if want := messages[f.RunID]; f.RunID != "run_extra_fail2" && f.Message != want &&
			!(len(want) > 1024 && len(f.Message) <= 1024 && strings.HasPrefix(want, strings.TrimSuffix(f.Message, "…"))) {
			t.Errorf("message of %s = %q, want the fake's %q", f.RunID, f.Message, want)
		}
	}
	if strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more") {
		t.Errorf("the message holding <script> is not shown as text:\n%s", body)
	}

	// Sessions: the same in both, the failing one failing with its error in words.
	srows := sessionRowRE.FindAllStringSubmatch(body, -1)
	if len(srows) != len(p.Sessions) || p.SessionsTotal != 5 {
		t.Fatalf("%d sessions in the HTML, %d in the JSON (total %d), want 5", len(srows), len(p.Sessions), p.SessionsTotal)
	}
	for i, r := range srows {
		s := p.Sessions[i]
		if r[1] != s.App || r[2] != s.ID || r[3] != string(s.State) {
			t.Errorf("HTML session row %d = %v, JSON %s/%s %s", i, r[1:], s.App, s.ID, s.State)
		}
		switch {
		case s.ID == "session_bad" && (s.State != "failing" || !strings.Contains(s.Error, "404")):
			t.Errorf("session_bad: state %s, error %q; want failing with the HTTP 404", s.State, s.Error)
		case s.ID == "session_ok" && (s.Finished[feishu.StatusFailed] != 4 || s.InFlight[feishu.StatusInProgress] != 1 || s.AgeSeconds == nil):
			t.Errorf("session_ok: %+v; want 4 FAILED since the watch began, 1 IN_PROGRESS in flight, a last success", s)
		}
	}
	if !strings.Contains(body, html.EscapeString(p.Sessions[slices.IndexFunc(p.Sessions, func(s status.Session) bool { return s.ID == "session_bad" })].Error)) {
		t.Errorf("the failing session's error is not on the page")
	}
	var helpdesk *status.App
	for i := range p.Apps {
		if p.Apps[i].Name == "helpdesk" {
			helpdesk = &p.Apps[i]
		}
	}
	if helpdesk == nil || helpdesk.Sessions["failing"] != 1 || helpdesk.Sessions["active"]+helpdesk.Sessions["idle"] != 3 ||
		helpdesk.RequestsLastMinute == 0 || !helpdesk.Token.Healthy || helpdesk.Token.RenewedAt == nil {
		t.Errorf("app helpdesk = %+v", helpdesk)
	}

	// Filtered by app.
	body, p = e.statusPage("?app=personal&sort=state")
	if len(p.FailedRuns) != 0 || len(p.Sessions) != 1 || p.Sessions[0].ID != "session_user" || strings.Contains(body, "run_script") {
		t.Errorf("?app=personal shows %d failed runs and sessions %v", len(p.FailedRuns), p.Sessions)
	}
	_, p = e.statusPage("?sort=state")
	if p.Sessions[0].ID != "session_bad" {
		t.Errorf("sorted by state, the first session is %s %s, want the failing session_bad", p.Sessions[0].ID, p.Sessions[0].State)
	}
}

func TestStatusPageShowsATokenFailureWithoutSecrets(t *testing.T) {
	for _, fault := range []feishufake.Fault{
		{Kind: feishufake.TokenEndpointFailure},
		// A careless gateway quoting the request back: the app secret
		// must not reach the page (statusPage checks).
		{Kind: feishufake.EchoCredentials, Echo: feishufake.EchoJSON},
		{Kind: feishufake.EchoCredentials, Echo: feishufake.EchoText},
	} {
		t.Run(fault.Kind.String(), func(t *testing.T) {
			e := newTestEnv(t)
			e.fake.SetFault(feishufake.Scope{Endpoint: feishu.EndpointTenantToken}, fault)
			e.scrape()
			body, p := e.statusPage("?app=helpdesk")
			for _, a := range p.Apps {
				if a.Name != "helpdesk" {
					continue
				}
				if a.Token.Healthy || a.Token.Error == "" || a.Sessions["failing"] != 3 {
					t.Errorf("app helpdesk after a failed token call: %+v", a)
				}
				if !strings.Contains(body, html.EscapeString(a.Token.Error)) {
					t.Errorf("the token error %q is not on the page", a.Token.Error)
				}
			}
		})
	}
}

func TestStatusPageBeforeTheFirstScrape(t *testing.T) {
	e := newTestEnv(t)
	body, p := e.statusPage("")
	if p.LastScrape != nil || !strings.Contains(p.Notice, "No scrape of /metrics has come") ||
		!strings.Contains(p.Notice, "scrape configuration") {
		t.Errorf("before any scrape: last scrape %v, notice %q; want none, and a notice saying so", p.LastScrape, p.Notice)
	}
	if !strings.Contains(body, `id="no-scrape-yet"`) || !strings.Contains(body, html.EscapeString(p.Notice)) {
		t.Errorf("the HTML does not show the notice")
	}
	for _, a := range p.Apps {
		if a.Token.State != status.TokenNotFetched || a.Token.Healthy {
			t.Errorf("app %s before any scrape: token %+v, want not fetched yet", a.Name, a.Token)
		}
	}
	if n := strings.Count(body, `<td class="token">not fetched yet</td>`); n != 2 {
		t.Errorf("the HTML shows %d tokens not fetched yet, want 2", n)
	}

	e.scrape()
	body, p = e.statusPage("")
	if p.LastScrape == nil || p.Notice != "" || strings.Contains(body, "no-scrape-yet") {
		t.Errorf("after a scrape: last scrape %v, notice %q", p.LastScrape, p.Notice)
	}
	for _, a := range p.Apps {
		if a.Token.State != status.TokenOK || !a.Token.Healthy {
			t.Errorf("app %s after a scrape: token %+v, want ok", a.Name, a.Token)
		}
	}
}

func TestStatusPageOfAnUnknownAppIsNotFound(t *testing.T) {
	e := newTestEnv(t)
	e.scrape()
	code, body := e.do(http.MethodGet, "/status?app=nosuchapp", nil, time.Minute)
	if code != http.StatusNotFound || !strings.Contains(body, "nosuchapp") ||
		!strings.Contains(body, `href="/status?app=helpdesk"`) || !strings.Contains(body, `href="/status?app=personal"`) {
		t.Errorf("GET /status?app=nosuchapp: HTTP %d, want 404 listing the apps\n%s", code, body)
	}
	if strings.Contains(body, "No failed run") {
		t.Errorf("the 404 reads as an app with no failed run:\n%s", body)
	}
	code, js := e.do(http.MethodGet, "/status.json?app=nosuchapp", nil, time.Minute)
	var got struct {
		Error string   `json:"error"`
		Apps  []string `json:"apps"`
	}
	if err := json.Unmarshal([]byte(js), &got); err != nil || code != http.StatusNotFound ||
		!slices.Equal(got.Apps, []string{"helpdesk", "personal"}) || got.Error == "" {
		t.Errorf("GET /status.json?app=nosuchapp: HTTP %d, %+v (%v); want 404 with the apps\n%s", code, got, err, js)
	}
}
