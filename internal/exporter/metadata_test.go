package exporter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// metadataEnv is the exporter in front of the fake with the app helpdesk,
// whose runs' metadata keys skill and channel are labels (at most two values
// each), and its state kept in storageDir. Every scrape polls afresh.
func metadataEnv(t *testing.T, fake *feishufake.Fake, apiURL, storageDir, extra string) *testEnv {
	t.Helper()
	t.Setenv("AILY_TEST_APP_SECRET", appSecret)
	e := &testEnv{t: t, fake: fake, dir: t.TempDir(), logs: &testkit.LogBuffer{}, reloaded: make(chan error, 10)}
	e.write("aily.yml", fmt.Sprintf(`apps:
  - name: helpdesk
    app_id: cli_helpdesk
    app_secret: ${AILY_TEST_APP_SECRET}
    base_url: %s
    sessions: [session_a]
    metadata_labels: [skill, channel]
    metadata_label_limit: 2
%s`, apiURL, extra))
	logger := testkit.Logger(e.logs, "debug")
	store, err := OpenStorage(storageDir, logger)
	if err != nil {
		t.Fatal(err)
	}
	e.start(store, ClientOptions{Timeout: 10 * time.Second, PageSize: 50},
		watch.Options{Concurrency: 4, MinInterval: -1, IdleInterval: time.Nanosecond})
	return e
}

// series scrapes the exporter and returns the value of every counter and
// gauge, and the count of every histogram, by series written
// name{label="value",…} with the labels sorted.
func (e *testEnv) series() map[string]float64 {
	e.t.Helper()
	body := e.scrape()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			slices.Sort(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// metaSeries names a series of session_a of helpdesk with these skill and
// channel values and further labels.
func metaSeries(name, skill, channel string, kv ...string) string {
	labels := []string{`app="helpdesk"`, fmt.Sprintf("channel=%q", channel), `session_id="session_a"`, fmt.Sprintf("skill=%q", skill)}
	for i := 0; i < len(kv); i += 2 {
		labels = append(labels, fmt.Sprintf("%s=%q", kv[i], kv[i+1]))
	}
	slices.Sort(labels)
	return name + "{" + strings.Join(labels, ",") + "}"
}

// metaRun is a run of session_a created now with the metadata.
func metaRun(id string, st feishu.RunStatus, metadata string) feishu.Run {
	now := time.Now()
	r := feishu.Run{ID: id, AppID: "spring_demo__c", SessionID: "session_a", Status: st, CreatedAt: now,
		StartedAt: now.Add(time.Millisecond), Metadata: metadata}
	if st.Final() {
		r.EndedAt = now.Add(2 * time.Millisecond)
	}
	if st == feishu.StatusFailed {
		r.Error = &feishu.RunError{Code: "sp_ec_1", Message: "broken"}
	}
	return r
}

// settledSeries is series after three scrapes: what the first counts, the
// third shows.
func (e *testEnv) settledSeries() (got map[string]float64) {
	for range 3 {
		got = e.series()
	}
	return got
}

// checkSeries fails the test for each series of want whose value in got
// differs (a series not served is 0) and, if served, for each that is not
// served at all; when names the moment in the messages.
func checkSeries(t *testing.T, when string, got map[string]float64, served bool, want map[string]float64) {
	t.Helper()
	for series, w := range want {
		v, ok := got[series]
		switch {
		case served && (!ok || v != w):
			t.Errorf("%s%s = %v (served %v), want %v", when, series, v, ok, w)
		case !served && v != w:
			t.Errorf("%s%s = %v, want %v", when, series, v, w)
		}
	}
}

func TestMetadataLabelsOverHTTP(t *testing.T) {
	fake := feishufake.New(feishufake.Options{})
	fake.AddApp("cli_helpdesk", appSecret)
	fake.AddSession("session_a")
	api := httptest.NewServer(fake)
	t.Cleanup(api.Close)
	storageDir := t.TempDir()
	e := metadataEnv(t, fake, api.URL, storageDir, "")
	finished := "aily_runs_finished_total"

	// The baseline, then two scrapes: the series of the runs whose metadata
	// labels are all "" are served at zero from the start, and ready for
	// their first increment once served twice.
	e.series()
	e.series()
	got := e.series()
	if v, ok := got[metaSeries(finished, "", "", "status", "COMPLETED")]; !ok || v != 0 {
		t.Fatalf("the series of label values \"\" = %v, %v; want served at 0 from the start", v, ok)
	}
	if _, ok := got[`aily_runs{app="helpdesk",session_id="session_a",status="COMPLETED"}`]; !ok {
		t.Fatalf("aily_runs is not served without metadata labels")
	}

	// The first two skills seen are admitted; r_long is in flight.
	fake.PutRun(metaRun("r_refund", feishu.StatusFailed, `{"skill":"refund","channel":"im"}`))
	fake.PutRun(metaRun("r_faq", feishu.StatusCompleted, `{"skill":"faq","channel":"im","user":"ou_1"}`))
	fake.PutRun(metaRun("r_long", feishu.StatusInProgress, `{"skill":"refund","channel":"im"}`))
	got = e.series()
	// New label values are served at zero before their first increment
	// shows, as a new error code is.
	if v, ok := got[metaSeries(finished, "refund", "im", "status", "FAILED")]; !ok || v != 0 {
		t.Errorf("the new values' FAILED series = %v (served %v); want served at 0 first", v, ok)
	}
	// A third skill is past the limit of two: other. Metadata that is not
	// JSON gives "" to every label; an object gives "", a number its JSON
	// text.
	fake.PutRun(metaRun("r_billing", feishu.StatusCompleted, `{"skill":"billing","channel":"im"}`))
	fake.PutRun(metaRun("r_text", feishu.StatusCompleted, `refund please`))
	fake.PutRun(metaRun("r_object", feishu.StatusCompleted, `{"skill":{"name":"refund"},"channel":7}`))
	got = e.series()
	if v := got[metaSeries(finished, "", "", "status", "COMPLETED")]; v != 1 {
		t.Errorf("the run without JSON metadata counted %v, want 1 at once: its series were ready", v)
	}
	// r_long finishes with other metadata: it is counted under the
	// metadata it was first seen with.
	fake.PutRun(metaRun("r_long", feishu.StatusCompleted, `{"skill":"changed","channel":"web"}`))
	got = e.settledSeries()
	checkSeries(t, "", got, true, map[string]float64{
		metaSeries(finished, "refund", "im", "status", "FAILED"):                       1,
		metaSeries(finished, "refund", "im", "status", "COMPLETED"):                    1,
		metaSeries(finished, "faq", "im", "status", "COMPLETED"):                       1,
		metaSeries(finished, "other", "im", "status", "COMPLETED"):                     1,
		metaSeries(finished, "", "", "status", "COMPLETED"):                            1,
		metaSeries(finished, "", "7", "status", "COMPLETED"):                           1,
		metaSeries("aily_runs_created_total", "refund", "im"):                          2,
		metaSeries("aily_run_failures_total", "refund", "im", "error_code", "sp_ec_1"): 1,
		metaSeries("aily_run_duration_seconds", "faq", "im", "status", "COMPLETED"):    1,
		metaSeries("aily_run_queue_seconds", "other", "im"):                            1,
	})
	for series := range got {
		if strings.Contains(series, `skill="changed"`) || strings.Contains(series, `channel="web"`) {
			t.Errorf("a run was counted under the metadata it finished with: %s", series)
		}
	}
	// The status page counts every run, whatever its labels: 5 COMPLETED.
	code, body := e.do(http.MethodGet, "/status.json", nil, time.Minute)
	var page struct {
		Sessions []struct {
			ID       string                   `json:"id"`
			Finished map[feishu.RunStatus]int `json:"finished"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(body), &page); code != http.StatusOK || err != nil || len(page.Sessions) != 1 {
		t.Fatalf("/status.json: HTTP %d, %v\n%s", code, err, body)
	}
	if f := page.Sessions[0].Finished; f[feishu.StatusCompleted] != 5 || f[feishu.StatusFailed] != 1 {
		t.Errorf("/status.json shows finished %v, want 5 COMPLETED and 1 FAILED", f)
	}
	// The per-run gauges have no metadata labels.
	for series := range got {
		if strings.HasPrefix(series, "aily_runs{") && strings.Contains(series, "skill=") {
			t.Errorf("aily_runs has metadata labels: %s", series)
		}
	}

	// A run in flight at the restart keeps the metadata it was first seen
	// with in the saved state.
	fake.PutRun(metaRun("r_flight", feishu.StatusInProgress, `{"skill":"refund","channel":"im"}`))
	e.series()

	// After a restart, the values admitted before still count, and the
	// limit still holds: a new skill is other.
	e.exporter.Close()
	e.server.Close()
	fake.PutRun(metaRun("r_new", feishu.StatusCompleted, `{"skill":"shipping","channel":"im"}`))
	fake.PutRun(metaRun("r_faq2", feishu.StatusCompleted, `{"skill":"faq","channel":"im"}`))
	fake.PutRun(metaRun("r_flight", feishu.StatusCompleted, `{"skill":"late"}`))
	e2 := metadataEnv(t, fake, api.URL, storageDir, "")
	got = e2.settledSeries()
	afterRestart := map[string]float64{}
	for skill, n := range map[string]float64{"faq": 2, "other": 2, "refund": 2, "shipping": 0} {
		afterRestart[metaSeries(finished, skill, "im", "status", "COMPLETED")] = n
	}
	checkSeries(t, "after the restart, ", got, false, afterRestart)
	if _, ok := got[metaSeries(finished, "shipping", "im", "status", "COMPLETED")]; ok {
		t.Errorf("after the restart, a third skill has series of its own: the limit did not hold")
	}
}
