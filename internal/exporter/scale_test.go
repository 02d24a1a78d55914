package exporter

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/aily-exporter/aily_exporter/collector"
	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// manySessions returns a sessions file of n sessions. With the two sessions
// configYAML lists in the file itself, manySessions(config.ManySessions-1)
// gives helpdesk one session too many.
func manySessions(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "session_%06d\n", i)
	}
	return b.String()
}

// sizeWarning matches the warning of an app with more than
// config.ManySessions sessions and per_session not set: its run metrics are
// summed per app.
var sizeWarning = regexp.MustCompile(`level=warn [^\n]*helpdesk[^\n]*10001 sessions: the run metrics are summed per app[^\n]*or shard`)

func TestManySessionsWarnAtReloadAndConfigCheck(t *testing.T) {
	e := newTestEnv(t)
	e.runReloader()
	if sizeWarning.MatchString(e.logs.String()) {
		t.Fatalf("a warning before the app has 10,001 sessions:\n%s", e.logs.String())
	}

	e.write("helpdesk.sessions", manySessions(config.ManySessions-1))
	if code, body := e.do(http.MethodPost, "/-/reload", nil, time.Minute); code != http.StatusOK {
		t.Fatalf("POST /-/reload: HTTP %d %q, want 200", code, body)
	}
	if err := <-e.reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !sizeWarning.MatchString(e.logs.String()) {
		t.Errorf("no warning at the reload about 10,001 sessions with per_session: true:\n%s", e.logs.String())
	}

	code, stdout, stderr := checkConfig(filepath.Join(e.dir, "aily.yml"))
	if code != 0 || stdout != "config OK\n" ||
		!strings.Contains(stderr, `warning: app "helpdesk" (line 2): 10001 sessions: the run metrics are summed per app`) {
		t.Errorf("--config.check: exit %d, stdout %q, stderr %q; want 0, config OK and the warning", code, stdout, stderr)
	}

	// per_session: false: no warning.
	e.write("aily.yml", strings.Replace(configYAML(e.api.URL, "session_ok"), "sessions_file: helpdesk.sessions",
		"sessions_file: helpdesk.sessions\n    per_session: false", 1))
	if code, _, stderr := checkConfig(filepath.Join(e.dir, "aily.yml")); code != 0 ||
		strings.Contains(stderr, "warning") {
		t.Errorf("--config.check with per_session: false: exit %d, stderr %q; want 0 and no warning", code, stderr)
	}
}

func TestManySessionsWarnWhenTheSessionsFileGrows(t *testing.T) {
	e := newTestEnv(t)
	e.write("helpdesk.sessions", manySessions(config.ManySessions-1))
	e.exporter.refreshSessions() // as the next scrape does
	if !sizeWarning.MatchString(e.logs.String()) {
		t.Errorf("no warning when the sessions file takes the app to 10,001 sessions:\n%s", e.logs.String())
	}
	// The scrape answers the app's sums, not 10,001 sessions' series.
	body := e.scrape()
	if strings.Contains(body, `aily_runs_created_total{app="helpdesk",session_id=`) || !strings.Contains(body, `aily_runs_created_total{app="helpdesk"}`) {
		t.Errorf("with 10,001 sessions and per_session not set, the scrape does not sum the run metrics per app:\n%.2000s", body)
	}
}

func TestScrapeTellsTheCollectorHowManySeriesItAnswered(t *testing.T) {
	e := newTestEnv(t)
	body := e.scrape()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	if got := e.exporter.collector.AnswerCost().Series; got != series {
		t.Errorf("the collector was told of %d series, want the %d served", got, series)
	}
}

// gatherer is a Gatherer of fixed families.
type gatherer []*dto.MetricFamily

func (g gatherer) Gather() ([]*dto.MetricFamily, error) { return g, nil }

func family(name string, values ...string) *dto.MetricFamily {
	mf := &dto.MetricFamily{Name: proto.String(name), Help: proto.String(name), Type: dto.MetricType_GAUGE.Enum()}
	for _, v := range values {
		mf.Metric = append(mf.Metric, &dto.Metric{
			Label: []*dto.LabelPair{{Name: proto.String("l"), Value: proto.String(v)}},
			Gauge: &dto.Gauge{Value: proto.Float64(1)},
		})
	}
	return mf
}

func TestScrapeGathererSortsAndCounts(t *testing.T) {
	for _, tc := range []struct {
		name               string
		scrape, persistent gatherer
		want               map[string][]string // by family in order, its series' label values
	}{
		{
			name:       "disjoint names: put together, sorted by name",
			scrape:     gatherer{family("aily_runs", "a", "b"), family("aily_up", "x")},
			persistent: gatherer{family("aily_exporter_build_info", "v"), family("go_goroutines", "g")},
			want: map[string][]string{
				"aily_exporter_build_info": {"v"}, "aily_runs": {"a", "b"}, "aily_up": {"x"}, "go_goroutines": {"g"},
			},
		},
		{
			name:       "a name in both: merged as prometheus.Gatherers does",
			scrape:     gatherer{family("aily_runs", "b")},
			persistent: gatherer{family("aily_runs", "a"), family("go_goroutines", "g")},
			want:       map[string][]string{"aily_runs": {"a", "b"}, "go_goroutines": {"g"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &scrapeGatherer{scrape: tc.scrape, persistent: tc.persistent}
			mfs, err := g.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			var names []string
			series := 0
			for _, mf := range mfs {
				names = append(names, mf.GetName())
				for _, m := range mf.GetMetric() {
					got[mf.GetName()] = append(got[mf.GetName()], m.GetLabel()[0].GetValue())
					series++
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("gathered (-want +got):\n%s", diff)
			}
			if !slices.IsSorted(names) {
				t.Errorf("families not sorted by name: %v", names)
			}
			if g.series != series {
				t.Errorf("counted %d series, want %d", g.series, series)
			}
		})
	}
}

func TestScrapeWhoseAnswerTakesItsWholeDeadlineDoesNotPoll(t *testing.T) {
	e := newTestEnv(t) // its fake and files
	logs := &testkit.LogBuffer{}
	logger := testkit.Logger(logs, "debug")
	x := New(Options{
		Logger:  logger,
		Source:  func() (*config.Config, error) { return config.Load(filepath.Join(e.dir, "aily.yml")) },
		Clients: ClientOptions{Timeout: 10 * time.Second, PageSize: 50},
		// Answering is assumed to take a second a series: far more than
		// the scrape's 3 s.
		collector: collector.Options{SecondsPerSeries: 1},
		Watch:     watch.Options{MinInterval: -1},
	})
	if err := x.Reload(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(x.Routes(RouteOptions{TelemetryPath: "/metrics", TimeoutOffset: 500 * time.Millisecond}))
	defer srv.Close()
	// Twice: the first scrape's reserve is a guess; the second's is
	// measured, and warns.
	for range 2 {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "3")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d, want 200:\n%s", resp.StatusCode, b)
		}
		if n := e.fake.Requests(string(feishu.EndpointListRuns)); n != 0 {
			t.Errorf("%d listings, want none: the answer was to take the whole deadline", n)
		}
		if !hasLine(string(b), `aily_sessions{app="helpdesk",state="pending"} 3`) {
			t.Errorf("the sessions are not served from their last state (pending):\n%s", b)
		}
	}
	if !regexp.MustCompile(`level=warn [^\n]*No time left for polling`).MatchString(logs.String()) {
		t.Errorf("no warning that polls got no time:\n%s", logs.String())
	}
}
