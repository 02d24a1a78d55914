package collector_test

import (
	"bytes"
	"context"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/aily-exporter/aily_exporter/collector"
	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.prom from the current output")

const goldenFile = "testdata/golden.prom"

// TestGoldenScrape scrapes the collector, with the real feishu client, from
// the fake API over HTTP with a fixed clock, and compares the whole
// exposition with testdata/golden.prom. Regenerate with
//
//	go test ./collector/ -run TestGoldenScrape -update
func TestGoldenScrape(t *testing.T) {
	now := testkit.T0
	clock := func() time.Time { return now }
	ms := func(sec int) time.Time { return testkit.T0.Add(time.Duration(sec) * time.Second) }

	fake := feishufake.New(feishufake.Options{Now: clock})
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	fake.AddApp("cli_helpdesk", "helpdesk-secret")
	fake.AddApp("cli_sales", "sales-secret")

	put := func(session, id string, st feishu.RunStatus, created, started, ended int, code string) {
		r := feishu.Run{ID: id, AppID: "spring_helpdesk__c", SessionID: session, Status: st, CreatedAt: ms(created)}
		if started != 0 {
			r.StartedAt = ms(started)
		}
		if ended != 0 {
			r.EndedAt = ms(ended)
		}
		if code != "" {
			r.Error = &feishu.RunError{Code: code, Message: "failed"}
		}
		fake.PutRun(r)
	}
	// Before the exporter watches: history, and two runs in flight.
	put("session_a", "run_old", feishu.StatusCompleted, -600, -590, -500, "")
	put("session_a", "run_busy", feishu.StatusInProgress, -120, -110, 0, "")
	put("session_a", "run_wait", feishu.StatusQueued, -30, 0, 0, "")
	put("session_b", "run_b_old", feishu.StatusFailed, -900, -880, -870, "sp_ec_sm_900101")
	fake.AddSession("session_c")
	put("session_s", "run_s1", feishu.StatusRequiresMessage, -60, -50, 0, "")
	put("session_t", "run_t1", feishu.StatusInProgress, -40, -35, 0, "")

	c := collector.New(watch.New(watch.Options{MinInterval: 5 * time.Second,
		Concurrency: 2,
		// Every session is due again at every scrape, 30s apart.
		IdleInterval:    30 * time.Second,
		Now:             clock,
		DurationBuckets: []float64{1, 10, 60, 300},
	}), collector.Options{Logger: log.NewNopLogger()})
	client := func(app, id, secret string) *feishu.Client {
		cl, err := feishu.NewClient(feishu.Config{
			BaseURL:   srv.URL,
			AppID:     id,
			AppSecret: feishu.Secret(secret),
			PageSize:  2, // several pages per session
			Observer:  c.APIObserver(app),
			Now:       clock,
			Sleep:     func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
		})
		if err != nil {
			t.Fatalf("new client: %v", err)
		}
		return cl
	}
	c.SetApps([]watch.App{
		{Name: "helpdesk", API: client("helpdesk", "cli_helpdesk", "helpdesk-secret"), PerSession: true,
			Sessions: []string{"session_a", "session_b", "session_c", "session_missing"}},
		// Summed per app: no session_id, no aily_session_* series.
		{Name: "sales", API: client("sales", "cli_sales", "sales-secret"), PerSession: false,
			Sessions: []string{"session_s", "session_t"}},
	})

	scrape := func() *prometheus.Registry {
		reg := prometheus.NewPedanticRegistry()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		reg.MustRegister(c.ForScrape(ctx))
		return reg
	}

	now = testkit.T0.Add(10 * time.Second)
	if _, err := scrape().Gather(); err != nil { // the baseline
		t.Fatal(err)
	}
	// A second scrape serves the known series at zero again: the third
	// shows at once what is counted for them, and serves the failures of
	// each error code new to its session at zero.
	now = testkit.T0.Add(40 * time.Second)
	if _, err := scrape().Gather(); err != nil {
		t.Fatal(err)
	}

	// Between the scrapes: runs finish, start, arrive; one fails twice over.
	now = testkit.T0.Add(70 * time.Second)
	put("session_a", "run_busy", feishu.StatusCompleted, -120, -110, 40, "")
	put("session_a", "run_wait", feishu.StatusInProgress, -30, 20, 0, "")
	put("session_a", "run_new", feishu.StatusFailed, 30, 31, 33, "sp_ec_sm_900101")
	put("session_a", "run_fast", feishu.StatusCompleted, 50, 52, 53, "")
	put("session_b", "run_b1", feishu.StatusFailed, 45, 46, 60, "")
	put("session_b", "run_b2", feishu.StatusQueued, 65, 0, 0, "")
	put("session_s", "run_s1", feishu.StatusExpired, -60, -50, 60, "")
	put("session_t", "run_t1", feishu.StatusCompleted, -40, -35, 55, "")
	put("session_t", "run_t2", feishu.StatusFailed, 56, 57, 66, "sp_ec_other")
	reg := scrape()

	if *update {
		// Not testutil.GatherAndFormat: without metric names it keeps none.
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", goldenFile)
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if err := testutil.GatherAndCompare(reg, bytes.NewReader(want)); err != nil {
		t.Errorf("scrape differs from %s (-update rewrites it):\n%v", goldenFile, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
