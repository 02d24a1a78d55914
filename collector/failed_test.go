package collector

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// failedRun returns a FAILED run with the error code and message.
func failedRun(id, code, msg string) feishu.Run {
	r := runs.New(id, failed, 1, 2, 5)
	r.Error = &feishu.RunError{Code: code, Message: msg}
	return r
}

// twoApps is a collector of two apps on one lister: a, per session,
// watching s1, and b, summed, watching s2.
func twoApps(t *testing.T) (*feishufake.Clock, *memLister, *Collector) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	c := newTestCollector(t, clk, nil, 0)
	c.SetApps([]watch.App{
		{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}},
		{Name: "b", API: lister, PerSession: false, Sessions: []string{"s2"}},
	})
	return clk, lister, c
}

func TestFailedRunsAreKeptNewestFirstAndBounded(t *testing.T) {
	clk, lister, c := twoApps(t)
	gather(t, context.Background(), c) // baseline

	var batch []feishu.Run
	for i := range watch.MaxFailedRuns + 20 {
		batch = append(batch, failedRun(fmt.Sprintf("r%03d", i), "sp_ec_x", fmt.Sprintf("message %d", i)))
	}
	batch = append(batch, runs.New("ok", completed, 1, 2, 3))
	lister.set("s1", batch...)
	lister.set("s2", failedRun("b1", "sp_ec_y", strings.Repeat("é", 2000)))
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)

	got := c.w.FailedRuns("a")
	if len(got) != watch.MaxFailedRuns {
		t.Fatalf("%d failed batch of app a kept, want %d", len(got), watch.MaxFailedRuns)
	}
	ids := map[string]bool{}
	for _, f := range got {
		ids[f.RunID] = true
		if f.App != "a" || f.SessionID != "s1" || f.Code != "sp_ec_x" || !f.Timed || f.Duration != 3*time.Second {
			t.Errorf("failed run %+v", f)
		}
	}
	if got[0].RunID != "r119" || got[watch.MaxFailedRuns-1].RunID != "r020" {
		t.Errorf("failed batch from %s to %s, want the newest first: r119 to r020", got[0].RunID, got[watch.MaxFailedRuns-1].RunID)
	}
	if len(ids) != watch.MaxFailedRuns || ids["r000"] || !ids["r119"] {
		t.Errorf("kept %d distinct batch, r000 %v, r119 %v: want the %d most recent", len(ids), ids["r000"], ids["r119"], watch.MaxFailedRuns)
	}
	b := c.w.FailedRuns("b")
	if len(b) != 1 || b[0].SessionID != "s2" || len(b[0].Message) > watch.MaxFailedMessageBytes || !strings.HasSuffix(b[0].Message, "…") {
		t.Errorf("app b's failed batch = %d, message %d bytes: want 1, cut to %d", len(b), len(b[0].Message), watch.MaxFailedMessageBytes)
	}
	if n := len(c.w.FailedRuns("")); n != watch.MaxFailedRuns+1 {
		t.Errorf("%d failed batch of every app, want %d", n, watch.MaxFailedRuns+1)
	}
	if f := c.w.FinishedBySession(); f[sessionKeyOf("b", "s2")][1] != 1 || f[sessionKeyOf("a", "s1")][0] != 1 {
		t.Errorf("finished by session = %v", f)
	}

	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	if n := len(c.w.FailedRuns("b")); n != 0 {
		t.Errorf("%d failed batch kept of a removed app", n)
	}
}

func TestFailedRunLogIsRateLimited(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	logs := &testkit.LogBuffer{}
	c := newTestCollector(t, clk, logs, 0)
	c.SetApps([]watch.App{{Name: "a", API: lister, PerSession: true, Sessions: []string{"s1"}}})
	gather(t, context.Background(), c)

	var runs []feishu.Run
	for i := range 1000 {
		runs = append(runs, failedRun(fmt.Sprintf("r%04d", i), "sp_ec_x", "line one\nline two\x1b[31m "+strings.Repeat("x", 400)))
	}
	lister.set("s1", runs...)
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)
	lines := infoLines(logs.String())
	perRun := 0
	for _, l := range lines {
		if strings.Contains(l, `msg="Run failed"`) {
			perRun++
			if !strings.Contains(l, `error_message="line one\\nline two\\x1b[31m xxx`) {
				t.Errorf("control characters not escaped: %s", l)
			}
			if !strings.Contains(l, "run_id=r0") || !strings.Contains(l, "session_id=s1") || !strings.Contains(l, "error_code=sp_ec_x") ||
				!strings.Contains(l, "duration=3s") {
				t.Errorf("log line lacks a field: %s", l)
			}
		}
	}
	if perRun != watch.FailedRunsLoggedPerSecond || len(lines) != watch.FailedRunsLoggedPerSecond {
		t.Fatalf("%d lines, %d of them per run, after a burst of 1,000 failures in one second: want %d and no summary yet:\n%s",
			len(lines), perRun, watch.FailedRunsLoggedPerSecond, logs.String())
	}

	// The second has passed by the next scrape: one line says what was left out.
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)
	lines = infoLines(logs.String())
	if len(lines) != watch.FailedRunsLoggedPerSecond+1 || !strings.Contains(lines[len(lines)-1], "990 more failed runs of app a in the last second") {
		t.Errorf("want one summary line after the %d per-run lines, got %d lines, last %q", watch.FailedRunsLoggedPerSecond, len(lines), lines[len(lines)-1])
	}
}

func TestExemplarsNameTheLatestRun(t *testing.T) {
	clk, lister, c := twoApps(t)
	baselineServedTwice(t, c)
	lister.set("s1", failedRun("run_first", "sp_ec_x", "m"), runs.New("run_slow", completed, 1, 2, 5000))
	lister.set("s2", failedRun("run_b", "sp_ec_x", "m"))
	clk.Advance(10 * time.Second)
	gather(t, context.Background(), c)
	gather(t, context.Background(), c) // the new code's series served at zero twice
	lister.set("s1", failedRun("run_first", "sp_ec_x", "m"), runs.New("run_slow", completed, 1, 2, 5000),
		failedRun("run_latest", "sp_ec_x", "m"))
	clk.Advance(10 * time.Second)

	reg := prometheus.NewRegistry()
	reg.MustRegister(timed{c})
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer srv.Close()
	get := func(accept string) string {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		if _, err := fmt.Fprint(&b, readAll(t, resp)); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	om := get(string(expfmt.NewFormat(expfmt.TypeOpenMetrics)))
	for _, want := range []string{
		`aily_run_failures_total{app="a",error_code="sp_ec_x",session_id="s1"} 2.0 # {run_id="run_latest",session_id="s1"} 1.0`,
		`aily_run_failures_total{app="b",error_code="sp_ec_x"} 1.0 # {run_id="run_b",session_id="s2"} 1.0`,
		`aily_run_duration_seconds_bucket{app="a",session_id="s1",status="FAILED",le="10.0"} 2 # {run_id="run_latest",session_id="s1"} 3.0`,
		`aily_run_duration_seconds_bucket{app="a",session_id="s1",status="COMPLETED",le="+Inf"} 1 # {run_id="run_slow",session_id="s1"} 4998.0`,
	} {
		if !strings.Contains(om, want) {
			t.Errorf("OpenMetrics scrape lacks\n  %s\nin:\n%s", want, grepLines(om, "aily_run_failures_total", "aily_run_duration_seconds_bucket"))
		}
	}
	if text := get("text/plain"); strings.Contains(text, "run_latest") || strings.Count(text, `le="+Inf"`) != strings.Count(text, "aily_run_duration_seconds_count")+strings.Count(text, "aily_run_queue_seconds_count")+strings.Count(text, "aily_session_staleness_seconds_count") {
		t.Errorf("the text format carries an exemplar or an extra +Inf bucket:\n%s", grepLines(text, "+Inf", "run_latest"))
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func sessionKeyOf(app, id string) watchKey { return watchKey{App: app, ID: id} }

// infoLines returns the log lines an operator sees at the default level.
func infoLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !strings.Contains(l, "level=debug") {
			out = append(out, l)
		}
	}
	return out
}
