package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/collector"
	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/watch"
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

// collectorWith returns a collector that has polled n sessions of app "a".
func collectorWith(tb testing.TB, n int, now func() time.Time) *collector.Collector {
	tb.Helper()
	c := collector.New(collector.Options{Watch: watch.Options{Concurrency: 8, Now: now, RateLimit: 0}})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("session_%05d", i+1)
	}
	c.SetApps([]collector.App{{Name: "a", API: manyRuns{t0: now()}, PerSession: true, Sessions: ids}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.Watcher().Poll(ctx)
	return c
}

func TestThousandsOfSessionsArePaged(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return t0 }
	c := collectorWith(t, 5000, now)
	o := Options{RateLimit: 20, Now: now}

	p := Build(c, o, Query{Page: 2})
	if p.SessionsTotal != 5000 || p.Pages != 50 || len(p.Sessions) != DefaultPerPage || p.Sessions[0].ID != "session_00101" {
		t.Fatalf("page 2: total %d, %d pages, %d sessions from %s; want 5000, 50, 100 from session_00101",
			p.SessionsTotal, p.Pages, len(p.Sessions), p.Sessions[0].ID)
	}
	if a := p.Apps[0]; a.Sessions[watch.Failing] != 500 || a.Sessions[watch.Active] != 4500 || a.BudgetPerMinute != 1200 {
		t.Errorf("app a = %+v; want 500 failing, 4500 active, a budget of 1200 a minute", a)
	}
	if p := Build(c, o, Query{Page: 99}); p.Query.Page != 50 || len(p.Sessions) != 100 {
		t.Errorf("page 99 of 50 gives page %d with %d sessions, want the last", p.Query.Page, len(p.Sessions))
	}
	p = Build(c, o, Query{Sort: "state"})
	if p.Sessions[0].State != watch.Failing || p.Sessions[0].ID != "session_00010" || p.Sessions[0].Error == "" {
		t.Errorf("sorted by state, the first session is %+v; want the failing session_00010 with its error", p.Sessions[0])
	}
	s := Build(c, o, Query{Page: 1}).Sessions[0]
	if s.InFlight[feishu.StatusInProgress] != 1 || s.OldestSeconds == nil || *s.OldestSeconds != 60 {
		t.Errorf("session_00001 = %+v; want one IN_PROGRESS run, a minute old", s)
	}

	var buf bytes.Buffer
	if err := WriteHTML(&buf, Build(c, o, Query{Page: 2, Sort: "state"})); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{`href="/status?page=3&amp;sort=state" rel="next"`, `href="/status?sort=state" rel="prev"`, "5000 sessions, page 2 of 50"} {
		if !strings.Contains(html, want) {
			t.Errorf("page 2 lacks %s", want)
		}
	}
	if n := strings.Count(html, `<tr class="session"`); n != DefaultPerPage {
		t.Errorf("page 2 shows %d sessions, want %d", n, DefaultPerPage)
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
			if err := WriteHTML(&buf, Build(c, o, Query{Sort: "state"})); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len()), "bytes/page")
	})
	b.Run("json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := WriteJSON(&buf, Build(c, o, Query{Sort: "state"})); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestAppsShowTheirDailyBudgetSpendAndStaleness(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	clock := func() time.Time { return now }
	c := collector.New(collector.Options{Watch: watch.Options{Concurrency: 8, Now: clock}})
	c.SetApps([]collector.App{{Name: "a", API: manyRuns{t0: t0}, PerSession: true, DailyBudget: 50000,
		Sessions: []string{"session_1", "session_2", "session_3"}}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.Watcher().Poll(ctx)
	now = t0.Add(90 * time.Second)

	p := Build(c, Options{Now: clock}, Query{})
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
