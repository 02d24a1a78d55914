package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/apiusage"
	"github.com/aily-exporter/aily_exporter/internal/discovery"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// manyRuns is an in-memory API: each session has one run in flight, and
// every tenth session fails.
type manyRuns struct{ t0 time.Time }

func (m manyRuns) ListRunsPage(_ context.Context, session, _ string) (feishu.RunsPage, error) {
	if strings.HasSuffix(session, "0") {
		return feishu.RunsPage{}, errors.New("list runs of session " + session + ": HTTP 404")
	}
	return feishu.RunsPage{Runs: []feishu.Run{{ID: "r_" + session, SessionID: session, Status: feishu.StatusInProgress,
		CreatedAt: m.t0.Add(-time.Minute), StartedAt: m.t0.Add(-50 * time.Second)}}}, nil
}

func (m manyRuns) GetRun(context.Context, string, string) (feishu.Run, error) {
	return feishu.Run{}, errors.New("not found")
}

func (manyRuns) PageSize() int { return 50 }

// t0 is the moment the tests' pages are built at; now is their clock.
var t0 = testkit.T0

func now() time.Time { return t0 }

// sourceOf returns a source at t0 with an app of each name, the i-th (from
// 1) watching the one session "s<i>" of a manyRuns.
func sourceOf(names ...string) *source {
	c := newSource(watch.Options{MinInterval: 5 * time.Second, Now: now})
	apps := make([]watch.App, len(names))
	for i, name := range names {
		apps[i] = watch.App{Name: name, API: manyRuns{t0: t0}, PerSession: true, Sessions: []string{fmt.Sprintf("s%d", i+1)}}
	}
	c.SetApps(apps)
	return c
}

// rendered writes p as HTML and as JSON.
func rendered(t *testing.T, p *Page) (html, js *bytes.Buffer) {
	t.Helper()
	html, js = new(bytes.Buffer), new(bytes.Buffer)
	if err := WriteHTML(html, p); err != nil {
		t.Fatal(err)
	}
	if err := WriteJSON(js, p); err != nil {
		t.Fatal(err)
	}
	return html, js
}

// wantAll checks that doc, a page written as what (HTML or JSON), holds
// each of wants.
func wantAll(t *testing.T, what string, doc fmt.Stringer, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(doc.String(), want) {
			t.Errorf("the %s lacks %s:\n%s", what, want, doc)
		}
	}
}

// source is what the page reads: a watcher, and its apps' API use.
type source struct {
	*apiusage.Book
	w *watch.Watcher
}

func newSource(o watch.Options) *source {
	return &source{Book: apiusage.New(), w: watch.New(o)}
}

// SetApps configures the apps, as the collector does.
func (s *source) SetApps(apps []watch.App) {
	s.w.SetApps(apps)
	names := make([]string, len(apps))
	for i, a := range apps {
		names[i] = a.Name
	}
	s.Book.SetApps(names)
}

// collectorWith returns a collector that has polled n sessions of app "a".
func collectorWith(tb testing.TB, n int, now func() time.Time) *source {
	tb.Helper()
	c := newSource(watch.Options{MinInterval: 5 * time.Second, Concurrency: 8, Now: now, RateLimit: 0})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("session_%05d", i+1)
	}
	c.SetApps([]watch.App{{Name: "a", API: manyRuns{t0: now()}, PerSession: true, Sessions: ids}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.w.Poll(ctx)
	return c
}

// mustBuild is Build for a query whose app exists.
func mustBuild(tb testing.TB, c *source, o Options, q Query) *Page {
	tb.Helper()
	p, err := Build(c.w, c, o, q)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestThousandsOfSessionsArePaged(t *testing.T) {
	c := collectorWith(t, 5000, now)
	o := Options{RateLimit: 20, Now: now}

	p := mustBuild(t, c, o, Query{Page: 2})
	if p.SessionsTotal != 5000 || p.Pages != 50 || len(p.Sessions) != defaultPerPage || p.Sessions[0].ID != "session_00101" {
		t.Fatalf("page 2: total %d, %d pages, %d sessions from %s; want 5000, 50, 100 from session_00101",
			p.SessionsTotal, p.Pages, len(p.Sessions), p.Sessions[0].ID)
	}
	if a := p.Apps[0]; a.Sessions[watch.Failing] != 500 || a.Sessions[watch.Active] != 4500 || a.BudgetPerMinute != 1200 {
		t.Errorf("app a = %+v; want 500 failing, 4500 active, a budget of 1200 a minute", a)
	}
	if p := mustBuild(t, c, o, Query{Page: 99}); p.Query.Page != 50 || len(p.Sessions) != 100 {
		t.Errorf("page 99 of 50 gives page %d with %d sessions, want the last", p.Query.Page, len(p.Sessions))
	}
	p = mustBuild(t, c, o, Query{Sort: "state"})
	if p.Sessions[0].State != watch.Failing || p.Sessions[0].ID != "session_00010" || p.Sessions[0].Error == "" {
		t.Errorf("sorted by state, the first session is %+v; want the failing session_00010 with its error", p.Sessions[0])
	}
	s := mustBuild(t, c, o, Query{Page: 1}).Sessions[0]
	if s.InFlight[feishu.StatusInProgress] != 1 || s.OldestSeconds == nil || *s.OldestSeconds != 60 {
		t.Errorf("session_00001 = %+v; want one IN_PROGRESS run, a minute old", s)
	}

	var buf bytes.Buffer
	if err := WriteHTML(&buf, mustBuild(t, c, o, Query{Page: 2, Sort: "state"})); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{`href="/status?page=3&amp;sort=state" rel="next"`, `href="/status?sort=state" rel="prev"`, "5000 sessions, page 2 of 50"} {
		if !strings.Contains(html, want) {
			t.Errorf("page 2 lacks %s", want)
		}
	}
	if n := strings.Count(html, `<tr class="session"`); n != defaultPerPage {
		t.Errorf("page 2 shows %d sessions, want %d", n, defaultPerPage)
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "http://") || strings.Contains(html, "https://") {
		t.Errorf("the page has a script or an external reference")
	}
}

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		in   map[string]string
		want Query
	}{
		{nil, Query{Page: 1}},
		{map[string]string{"app": "helpdesk", "sort": "state", "page": "3"}, Query{App: "helpdesk", Sort: "state", Page: 3}},
		{map[string]string{"sort": "bogus", "page": "x"}, Query{Page: 1}},
	} {
		if got := ParseQuery(func(k string) string { return tc.in[k] }); got != tc.want {
			t.Errorf("ParseQuery(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// BenchmarkStatusPage5000Sessions builds and renders the first page (HTML)
// of 5,000 sessions, and the JSON of the same.
func BenchmarkStatusPage5000Sessions(b *testing.B) {
	t0 := time.Now()
	c := collectorWith(b, 5000, func() time.Time { return t0 })
	o := Options{RateLimit: 20}
	b.Run("html", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := WriteHTML(&buf, mustBuild(b, c, o, Query{Sort: "state"})); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len()), "bytes/page")
	})
	b.Run("json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := WriteJSON(&buf, mustBuild(b, c, o, Query{Sort: "state"})); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestAppsShowTheirDailyBudgetSpendAndStaleness(t *testing.T) {
	now := t0
	clock := func() time.Time { return now }
	c := newSource(watch.Options{MinInterval: 5 * time.Second, Concurrency: 8, Now: clock})
	c.SetApps([]watch.App{{Name: "a", API: manyRuns{t0: t0}, PerSession: true, DailyBudget: 50000,
		Sessions: []string{"session_1", "session_2", "session_3"}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.w.Poll(ctx)
	now = t0.Add(90 * time.Second)

	p, err := Build(c.w, c, Options{Now: clock}, Query{})
	if err != nil {
		t.Fatal(err)
	}
	a := p.Apps[0]
	if a.DailyBudget != 50000 {
		t.Errorf("daily budget %v, want 50000", a.DailyBudget)
	}
	// Three requests in the first 90 s: 3 × 86400/90 a day.
	if a.ProjectedPerDay != 2880 {
		t.Errorf("projected spend %v a day, want 2880", a.ProjectedPerDay)
	}
	if a.StalenessMaxSeconds == nil || *a.StalenessMaxSeconds != 90 || *a.StalenessMedianSeconds != 90 {
		t.Errorf("staleness median %v max %v, want 90 s both", a.StalenessMedianSeconds, a.StalenessMaxSeconds)
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"50000 / 2880", "1m30s / 1m30s"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestBeforeTheFirstScrapeThePageSaysSo(t *testing.T) {
	c := newSource(watch.Options{MinInterval: 5 * time.Second, Now: now})
	c.SetApps([]watch.App{{Name: "a", API: manyRuns{t0: t0}, PerSession: true, Sessions: []string{"session_1"}}})
	o := Options{Now: now, Started: t0.Add(-42 * time.Second), TelemetryPath: "/m"}

	p := mustBuild(t, c, o, Query{})
	if p.LastScrape != nil || p.Started != o.Started {
		t.Errorf("last scrape %v, started %v; want none, %v", p.LastScrape, p.Started, o.Started)
	}
	for _, want := range []string{"No scrape of /m has come since the exporter started 42s ago",
		"polled only when Prometheus scrapes /m", "scrape configuration"} {
		if !strings.Contains(p.Notice, want) {
			t.Errorf("the notice %q does not say %q", p.Notice, want)
		}
	}
	if tok := p.Apps[0].Token; tok.State != TokenNotFetched || tok.Healthy {
		t.Errorf("token before any fetch = %+v, want not fetched yet and not healthy", tok)
	}
	html, js := rendered(t, p)
	wantAll(t, "HTML", html, `<p id="no-scrape-yet" class="notice">`, `<td class="token">not fetched yet</td>`)
	wantAll(t, "JSON", js, `"last_scrape": null`, `"notice": "No scrape of /m`, `"state": "not fetched yet"`)

	// After a scrape, and a token renewal.
	o.LastScrape = t0.Add(-time.Second)
	c.TokenRenewal("a", nil, t0)
	p = mustBuild(t, c, o, Query{})
	if p.Notice != "" || p.LastScrape == nil || !p.LastScrape.Equal(o.LastScrape) {
		t.Errorf("after a scrape: notice %q, last scrape %v; want none, %v", p.Notice, p.LastScrape, o.LastScrape)
	}
	if tok := p.Apps[0].Token; tok.State != TokenOK || !tok.Healthy || tok.RenewedAt == nil {
		t.Errorf("token after a renewal = %+v, want ok", tok)
	}
	html.Reset()
	if err := WriteHTML(html, p); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html.String(), "no-scrape-yet") || !strings.Contains(html.String(), "Last scrape 2025-03-01 11:59:59Z") {
		t.Errorf("after a scrape the HTML still says none came, or not when the last was:\n%s", html.String())
	}

	c.TokenRenewal("a", errors.New("tenant token: code 10003: invalid param"), t0)
	if tok := mustBuild(t, c, o, Query{}).Apps[0].Token; tok.State != TokenFailed || tok.Healthy || tok.Error == "" {
		t.Errorf("token after a failed renewal = %+v, want failed with the error", tok)
	}
}

func TestAnUnknownAppIsNotFoundWithTheAppsListed(t *testing.T) {
	c := sourceOf("helpdesk", "sales")
	q := Query{App: "nosuchapp", Sort: "state", Page: 1}
	_, err := Build(c.w, c, Options{Now: now}, q)
	var unknown *UnknownAppError
	if !errors.As(err, &unknown) || unknown.App != "nosuchapp" || !slices.Equal(unknown.Apps, []string{"helpdesk", "sales"}) {
		t.Fatalf("Build(?app=nosuchapp) = %v, want an *UnknownAppError listing helpdesk and sales", err)
	}
	var html, js bytes.Buffer
	if err := WriteUnknownAppHTML(&html, unknown, q); err != nil {
		t.Fatal(err)
	}
	wantAll(t, "HTML", &html, `No app &#34;nosuchapp&#34;`, `<a href="/status?app=helpdesk&amp;sort=state">helpdesk</a>`,
		`<a href="/status?app=sales&amp;sort=state">sales</a>`)
	if err := WriteUnknownAppJSON(&js, unknown); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Error string   `json:"error"`
		App   string   `json:"app"`
		Apps  []string `json:"apps"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.App != "nosuchapp" || !slices.Equal(got.Apps, []string{"helpdesk", "sales"}) || !strings.Contains(got.Error, "helpdesk, sales") {
		t.Errorf("JSON = %+v", got)
	}
	if _, err := Build(c.w, c, Options{Now: now}, Query{App: "sales"}); err != nil {
		t.Errorf("a configured app: %v", err)
	}
}

func TestAppsShowTheirSessionsURL(t *testing.T) {
	c := sourceOf("fetched", "failing", "static", "never")
	const refused = `HTTP 401 Unauthorized: want 200 and the list of session IDs`
	o := Options{Now: now, Discovery: map[string]discovery.Status{
		"fetched": {URL: "https://agent.example.com/sessions?app=fetched", RefreshInterval: time.Minute,
			LastAttempt: t0.Add(-10 * time.Second), LastSuccess: t0.Add(-10 * time.Second), Sessions: 1},
		"failing": {URL: "https://agent.example.com/sessions?app=failing", RefreshInterval: 30 * time.Second,
			LastAttempt: t0.Add(-5 * time.Second), LastSuccess: t0.Add(-time.Hour), LastError: refused, Sessions: 7},
		"never": {URL: "https://agent.example.com/sessions?app=never", RefreshInterval: time.Minute,
			LastAttempt: t0.Add(-5 * time.Second), LastError: "GET: connection refused"},
	}}
	p := mustBuild(t, c, o, Query{})
	byName := map[string]App{}
	for _, a := range p.Apps {
		byName[a.Name] = a
	}
	if u := byName["fetched"].SessionsURL; u == nil || !u.Up || u.Sessions != 1 || u.LastSuccess == nil || u.RefreshIntervalSeconds != 60 || u.LastError != "" {
		t.Errorf("fetched: %+v, want up with 1 session", u)
	}
	if u := byName["failing"].SessionsURL; u == nil || u.Up || u.LastError != refused || u.Sessions != 7 || !u.LastSuccess.Equal(t0.Add(-time.Hour)) {
		t.Errorf("failing: %+v, want down with its error, its last success and the 7 sessions kept", u)
	}
	if u := byName["static"].SessionsURL; u != nil {
		t.Errorf("an app without sessions_url shows %+v", u)
	}

	html, js := rendered(t, p)
	wantAll(t, "HTML", html,
		`<tr class="sessions-url" data-app="fetched" data-up="true">`,
		`<code>https://agent.example.com/sessions?app=fetched</code>`,
		`ok (2025-03-01 11:59:50Z)`,
		`<tr class="sessions-url" data-app="failing" data-up="false">`,
		`<td class="n">30s</td>`,
		`HTTP 401 Unauthorized: want 200 and the list of session IDs (2025-03-01 11:59:55Z); the sessions last fetched are kept`,
	)
	if strings.Count(html.String(), "are kept") != 1 {
		t.Errorf("the app whose URL never answered says its sessions are kept:\n%s", html.String())
	}
	if n := strings.Count(html.String(), `<tr class="sessions-url"`); n != 3 {
		t.Errorf("%d sessions_url rows, want 3 (the app without one has none)", n)
	}
	wantAll(t, "JSON", js, `"sessions_url": {`, `"url": "https://agent.example.com/sessions?app=failing"`, `"last_error": "HTTP 401`, `"up": false`)

	// No app with a sessions_url: no table.
	html.Reset()
	if err := WriteHTML(html, mustBuild(t, c, Options{Now: now}, Query{})); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html.String(), "sessions-url") {
		t.Errorf("a sessions_url table without any sessions_url")
	}
}
