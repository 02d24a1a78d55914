package exporter

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/sharding"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// BenchmarkShards is 100 apps × 100 sessions (one finished run each at
// first) against a loopback fake, watched by one exporter, and by the same
// configuration over 4 shards with app keys (four exporters in this process,
// --shard=0..3 --total-shards=4); with the apps' per_session left to its
// default (true: 100 sessions) and set to false. docs/performance.md
// ("Sharding: 100 apps × 100 sessions") has the figures, and why the flags
// are these:
//
//	go test -run '^$' -bench BenchmarkShards -benchtime 1x -benchmem ./internal/exporter/
//
// Every session is polled at every scrape (no min interval, idle sessions
// always due): the most a scrape can do. The rate limit and the daily budget
// are off (--feishu.rate-limit 0 --poll.daily-budget 0), so that a scrape
// measures the work of polling and answering, not the wait for the limiter;
// -shards.rate-limit and -shards.concurrency (after -args) set
// --feishu.rate-limit and --feishu.concurrency.
//
// Each exporter first scrapes until every session it owns has its baseline
// (not timed). Then each iteration puts one new final run in a tenth of the
// sessions and scrapes the exporters over HTTP as Prometheus does, one after
// the other: each shard alone on the machine, as it would be on its own.
// Reported per iteration: the slowest exporter's scrape (what a scrape of
// the shards takes when each has a machine of its own), the process's CPU
// time (getrusage; the fake's side of the exchanges and the reading of the
// answers included) in all and per app, the requests that reached the fake
// and the series answered; and once, the exporters' live heap per app (what
// a GC frees when they are dropped, their connections closed first: neither
// the fake's heap nor the connections' buffers). Each exporter's figures are
// logged.
func BenchmarkShards(b *testing.B) {
	for _, perSession := range []bool{true, false} {
		for _, total := range []int{1, 4} {
			b.Run(fmt.Sprintf("per_session=%t/shards=%d", perSession, total), func(b *testing.B) {
				benchShards(b, perSession, total)
			})
		}
	}
}

// BenchmarkShards' --feishu.rate-limit and --feishu.concurrency.
var (
	shardsRateLimit   = flag.Float64("shards.rate-limit", 0, "BenchmarkShards' --feishu.rate-limit (0: none)")
	shardsConcurrency = flag.Int("shards.concurrency", watch.DefaultConcurrency, "BenchmarkShards' --feishu.concurrency")
)

func benchShards(b *testing.B, perSession bool, total int) {
	const apps, sessions = 100, 100
	fake := feishufake.New(feishufake.Options{})
	fake.AddApp(fleetCredentials, fleetSecret)
	api := httptest.NewServer(fake)
	defer api.Close()
	ids := make([][]string, apps) // by app
	var yml strings.Builder
	yml.WriteString("apps:\n")
	then := time.Now().Add(-time.Hour)
	for a := range apps {
		app := fmt.Sprintf("app_%d", a)
		for s := range sessions {
			// The fake's sessions are global: an app's are its own by name.
			id := fmt.Sprintf("%s_session_%d", app, s)
			ids[a] = append(ids[a], id)
			fake.PutRun(feishu.Run{ID: "run_" + id, AppID: "spring_demo__c", SessionID: id, Status: feishu.StatusCompleted,
				CreatedAt: then, StartedAt: then, EndedAt: then.Add(time.Second)})
		}
		fmt.Fprintf(&yml, "  - name: %s\n    app_id: %s\n    app_secret: %s\n    base_url: %s\n    sessions: [%s]\n",
			app, fleetCredentials, fleetSecret, api.URL, strings.Join(ids[a], ", "))
		if !perSession {
			yml.WriteString("    per_session: false\n")
		}
	}
	path := filepath.Join(b.TempDir(), "aily.yml")
	if err := os.WriteFile(path, []byte(yml.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	runs := 0
	// newRuns puts one new final run in every tenth session, a different
	// tenth each time.
	newRuns := func() {
		now := time.Now()
		turn := runs / (apps * sessions / 10)
		for _, app := range ids {
			for s, id := range app {
				if (s+turn)%10 != 0 {
					continue
				}
				runs++
				status := feishu.StatusCompleted
				if runs%5 == 0 {
					status = feishu.StatusFailed
				}
				fake.PutRun(feishu.Run{ID: fmt.Sprintf("run_%d", runs), AppID: "spring_demo__c", SessionID: id,
					Status: status, CreatedAt: now, StartedAt: now, EndedAt: now})
			}
		}
	}
	requests := func() int {
		return fake.Requests("list_runs") + fake.Requests("get_run") + fake.Requests("tenant_token")
	}

	shards := make([]*benchShard, total)
	for i, shard := range shardsOf(b, total, sharding.KeyApp) {
		logger := testkit.Logger(io.Discard, "warn")
		e := New(Options{
			Logger: logger,
			Shard:  shard,
			Source: func() (*config.Config, error) { return config.Load(path) },
			// --poll.daily-budget 0 is dailyBudget's zero.
			Clients: ClientOptions{Timeout: 10 * time.Second, PageSize: 50, RateLimit: *shardsRateLimit, Concurrency: *shardsConcurrency},
			Watch: watch.Options{MinInterval: -1, IdleInterval: time.Nanosecond,
				RateLimit: *shardsRateLimit, Concurrency: *shardsConcurrency},
		})
		if err := e.Reload(); err != nil {
			b.Fatal(err)
		}
		shards[i] = &benchShard{exporter: e, client: &http.Client{},
			server: httptest.NewServer(e.Routes(RouteOptions{TelemetryPath: "/metrics", TimeoutOffset: time.Second}))}
	}
	defer func() {
		for _, s := range shards {
			s.close()
		}
	}()
	for _, s := range shards {
		s.baseline(b)
	}

	for b.Loop() {
		b.StopTimer()
		newRuns()
		b.StartTimer()
		for _, s := range shards {
			r0, c0, t0 := requests(), testkit.CPUTime(), time.Now()
			s.scrape(b)
			s.wall += time.Since(t0)
			s.cpu += testkit.CPUTime() - c0
			s.requests += requests() - r0
		}
	}

	// Each exporter's live heap: what a GC frees once it is dropped. The
	// connections to the fake are closed first, on both ends, so that their
	// buffers are not counted (nor do their transports keep the exporters).
	api.CloseClientConnections()
	time.Sleep(50 * time.Millisecond) // let the connections' goroutines end
	heap := testkit.LiveHeap()
	// Each exporter is told to be freed, or its figure would be wrong.
	var freed atomic.Int32
	for _, s := range shards {
		runtime.AddCleanup(s.exporter, func(int) { freed.Add(1) }, 0)
	}
	for _, s := range shards {
		s.close()
		after := testkit.LiveHeap()
		s.heap, heap = int64(heap)-int64(after), after
	}
	for deadline := time.Now().Add(time.Second); freed.Load() < int32(total) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := freed.Load(); n < int32(total) {
		b.Errorf("%d of %d exporters still live after they were dropped: their heap is not measured", int32(total)-n, total)
	}
	var slowest, cpu time.Duration
	var reqs, series int
	var heapAll int64
	n := float64(b.N)
	for i, s := range shards {
		slowest = max(slowest, s.wall)
		cpu += s.cpu
		reqs += s.requests
		series += s.series
		heapAll += s.heap
		a := float64(s.apps)
		b.Logf("shard %d of %d: %d apps, %d sessions, %d series: %.0f ms a scrape, %.0f ms CPU (%.1f ms an app), %.0f requests, %.0f KiB live heap an app",
			i, total, s.apps, s.sessions, s.series, testkit.Millis(s.wall)/n, testkit.Millis(s.cpu)/n, testkit.Millis(s.cpu)/n/a, float64(s.requests)/n, float64(s.heap)/1024/a)
	}
	b.ReportMetric(testkit.Millis(slowest)/n, "scrape-ms")
	b.ReportMetric(testkit.Millis(cpu)/n, "cpu-ms/op")
	b.ReportMetric(testkit.Millis(cpu)/n/apps, "cpu-ms/app")
	b.ReportMetric(float64(reqs)/n, "requests/op")
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(heapAll)/1024/apps, "heap-KiB/app")
}

// benchShard is one exporter of BenchmarkShards and what it measured.
type benchShard struct {
	exporter *Exporter
	server   *httptest.Server
	client   *http.Client

	apps, sessions, series int // owned; answered by the last scrape
	wall, cpu              time.Duration
	requests               int
	heap                   int64
}

// baseline scrapes until every session the exporter owns has its baseline.
func (s *benchShard) baseline(b *testing.B) {
	for range 5 {
		s.scrape(b)
		apps := map[string]bool{}
		s.sessions = 0
		pending := 0
		s.exporter.watcher.EachSnapshot(func(snap *watch.Snapshot) {
			apps[snap.App] = true
			s.sessions++
			if snap.LastSuccess.IsZero() {
				pending++
			}
		})
		s.apps = len(apps)
		if pending == 0 {
			return
		}
	}
	b.Fatal("sessions still without a baseline after 5 scrapes")
}

// scrape gets /metrics as Prometheus does, with a 60 s timeout, and reads
// the answer to the end.
func (s *benchShard) scrape(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, s.server.URL+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "60")
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3")
	req.Header.Set("Accept-Encoding", "gzip") // and read compressed, as Prometheus reads it
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	s.series = s.exporter.collector.AnswerCost().Series
}

func (s *benchShard) close() {
	if s.server == nil {
		return
	}
	s.server.Close()
	s.client.CloseIdleConnections()
	s.exporter.Close()
	s.server, s.client, s.exporter = nil, nil, nil
}
