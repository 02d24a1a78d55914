package exporter

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// These tests run the real binary against the fake API over HTTP, stop it
// (SIGTERM) or kill it (SIGKILL) and start it again on the same
// --storage.path, and check that every run is counted exactly once and that
// no counter ever goes back.

var buildOnce struct {
	sync.Once
	bin string
	err error
}

// exporterBinary builds the exporter once per test binary.
func exporterBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "aily-exporter-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.bin = filepath.Join(dir, "aily_exporter")
		out, err := exec.Command("go", "build", "-o", buildOnce.bin, "github.com/aily-exporter/aily_exporter").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.bin
}

// restartEnv is a fake API, a configuration and a state directory that
// exporter processes come and go on.
type restartEnv struct {
	t        *testing.T
	fake     *feishufake.Fake
	api      *httptest.Server
	dir      string
	sessions []string
	mu       sync.Mutex // guards seq
	seq      int
	logs     testkit.LogBuffer
}

func newRestartEnv(t *testing.T, sessions int) *restartEnv {
	t.Helper()
	e := &restartEnv{t: t, fake: feishufake.New(feishufake.Options{}), dir: t.TempDir()}
	e.fake.AddApp("cli_restart", "restart-secret")
	e.fake.SetOrder(feishufake.NewestFirst)
	e.api = httptest.NewServer(e.fake)
	t.Cleanup(e.api.Close)
	for i := range sessions {
		id := fmt.Sprintf("session_%02d", i)
		e.sessions = append(e.sessions, id)
		// History: final before anyone watched, never to be counted.
		old := time.Now().Add(-time.Hour)
		for j := range 30 {
			c := old.Add(time.Duration(j) * time.Second)
			e.fake.PutRun(feishu.Run{ID: fmt.Sprintf("hist_%d_%02d", i, j), SessionID: id, AppID: "spring_r__c",
				Status: feishu.StatusCompleted, CreatedAt: c, StartedAt: c, EndedAt: c.Add(time.Second)})
		}
	}
	cfg := fmt.Sprintf("apps:\n  - name: restart\n    app_id: cli_restart\n    app_secret: restart-secret\n    base_url: %s\n    sessions: [%s]\n",
		e.api.URL, strings.Join(e.sessions, ", "))
	if err := os.WriteFile(filepath.Join(e.dir, "aily.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// newRun adds a run to a session, in flight, and returns it.
func (e *restartEnv) newRun(session string) feishu.Run {
	e.mu.Lock()
	e.seq++
	id := fmt.Sprintf("run_%05d", e.seq)
	e.mu.Unlock()
	now := time.Now()
	r := feishu.Run{ID: id, SessionID: session, AppID: "spring_r__c", Status: feishu.StatusInProgress,
		CreatedAt: now, StartedAt: now}
	e.fake.PutRun(r)
	return r
}

// finish makes a run final.
func (e *restartEnv) finish(r feishu.Run, st feishu.RunStatus) {
	r.Status, r.EndedAt = st, time.Now()
	if st == feishu.StatusFailed {
		r.Error = &feishu.RunError{Code: "sp_ec_test", Message: "failed in a test"}
	}
	e.fake.PutRun(r)
}

// exporterProc is one exporter process.
type exporterProc struct{ *testkit.Process }

func (e *restartEnv) start() *exporterProc {
	e.t.Helper()
	return &exporterProc{testkit.StartExporter(e.t, exporterBinary(e.t), &e.logs,
		"--config.file="+filepath.Join(e.dir, "aily.yml"),
		"--storage.path="+filepath.Join(e.dir, "data"),
		"--poll.min-interval=0s", "--poll.idle-interval=1s",
		"--feishu.rate-limit=0", "--log.level=debug")}
}

// counters scrapes the exporter and returns every aily_ counter by series.
func (x *exporterProc) counters() (map[string]float64, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+x.Addr+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := testkit.Samples(resp.Body)
	if err != nil {
		return nil, err
	}
	// The run counters: aily_runs_*_total and aily_run_failures_total.
	maps.DeleteFunc(out, func(series string, _ float64) bool {
		name, _, _ := strings.Cut(series, "{")
		return !strings.HasSuffix(name, "_total") ||
			!strings.HasPrefix(name, "aily_runs_") && !strings.HasPrefix(name, "aily_run_failures")
	})
	return out, nil
}

func (e *restartEnv) mustCounters(x *exporterProc) map[string]float64 {
	e.t.Helper()
	c, err := x.counters()
	if err != nil {
		e.t.Fatalf("scrape: %v\n%s", err, e.logs.String())
	}
	return c
}

// finished returns the sum of aily_runs_finished_total.
func finished(c map[string]float64) float64 {
	n := 0.0
	for k, v := range c {
		if strings.HasPrefix(k, "aily_runs_finished_total") {
			n += v
		}
	}
	return n
}

func (x *exporterProc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	_ = x.Cmd.Process.Signal(sig)
	select {
	case <-x.Done:
	case <-time.After(15 * time.Second):
		t.Fatalf("exporter did not exit on %v", sig)
	}
	x.Done <- nil // for the cleanup's receive
}

func TestRestartCountsRunsThatFinishedWhileDownOnce(t *testing.T) {
	e := newRestartEnv(t, 3)
	var inFlight []feishu.Run
	for _, s := range e.sessions {
		inFlight = append(inFlight, e.newRun(s), e.newRun(s))
	}
	x := e.start()
	// The baseline, and a second scrape: the counters have been served at
	// zero twice, so the next scrape shows what it counts.
	e.mustCounters(x)
	e.mustCounters(x)
	e.finish(inFlight[0], feishu.StatusCompleted)
	before := e.mustCounters(x)
	if got := finished(before); got != 1 {
		t.Fatalf("finished before the restart: %v, want 1", got)
	}
	x.stop(t, syscall.SIGTERM)

	// While it is down: the other runs in flight finish, a run comes and goes.
	for i, r := range inFlight[1:] {
		e.finish(r, []feishu.RunStatus{feishu.StatusCompleted, feishu.StatusFailed}[i%2])
	}
	e.finish(e.newRun(e.sessions[0]), feishu.StatusCancelled)
	listsBefore := e.fake.Requests("list_runs")

	x = e.start()
	after := e.mustCounters(x)
	for k, v := range before {
		if after[k] < v {
			t.Errorf("%s went back from %v to %v across the restart", k, v, after[k])
		}
	}
	if got, want := finished(after), float64(len(inFlight)+1); got != want {
		t.Errorf("finished after the restart: %v, want %v (every run once, the history never)", got, want)
	}
	if n := e.fake.Requests("list_runs") - listsBefore; n > len(e.sessions) {
		t.Errorf("the first scrape after the restart made %d list requests for %d sessions: a baseline, not the incremental price", n, len(e.sessions))
	}
	if strings.Contains(e.logs.String(), "corrupt") {
		t.Errorf("the state was not loaded cleanly:\n%s", e.logs.String())
	}
}

func TestKilledAtAnyMomentNoCounterGoesBack(t *testing.T) {
	e := newRestartEnv(t, 3)
	rng := rand.New(rand.NewPCG(1, 2))
	served := map[string]float64{} // the highest value each counter was served at
	var mu sync.Mutex
	truth := 0 // runs finished since the first start

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Runs come and go all the time, in every session.
	var wg sync.WaitGroup
	started := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-started
		rng := rand.New(rand.NewPCG(3, 4)) // this goroutine's own
		var open []feishu.Run
		for ctx.Err() == nil {
			if len(open) < 6 {
				open = append(open, e.newRun(e.sessions[rng.IntN(len(e.sessions))]))
			} else {
				i := rng.IntN(len(open))
				e.finish(open[i], feishu.StatusCompleted)
				open = append(open[:i], open[i+1:]...)
				mu.Lock()
				truth++
				mu.Unlock()
			}
			time.Sleep(3 * time.Millisecond)
		}
		for _, r := range open {
			e.finish(r, feishu.StatusCompleted)
			mu.Lock()
			truth++
			mu.Unlock()
		}
	}()

	check := func(c map[string]float64) {
		mu.Lock()
		defer mu.Unlock()
		for k, v := range c {
			if v < served[k] {
				t.Errorf("%s served at %v after %v was served before", k, v, served[k])
			}
			served[k] = max(served[k], v)
		}
	}
	for i := range 12 {
		x := e.start()
		if i == 0 {
			e.mustCounters(x) // the baseline before any run finishes
			close(started)
		}
		// Scrape in a loop and kill the process at a random moment: during
		// a scrape, a save, or between them.
		stop := make(chan struct{})
		scraped := make(chan struct{})
		go func() {
			defer close(scraped)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c, err := x.counters(); err == nil {
					check(c)
				}
			}
		}()
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		_ = syscall.Kill(-x.Cmd.Process.Pid, syscall.SIGKILL)
		<-x.Done
		x.Done <- nil
		close(stop)
		<-scraped
	}
	cancel()
	wg.Wait()

	// Once the runs settle, every count equals the truth.
	x := e.start()
	var got float64
	for range 5 {
		c := e.mustCounters(x)
		check(c)
		got = finished(c)
	}
	mu.Lock()
	want := float64(truth)
	mu.Unlock()
	if got != want {
		t.Errorf("after 12 kills: %v runs counted finished, %v finished: want every run once", got, want)
	}
	if strings.Contains(e.logs.String(), "corrupt") {
		t.Errorf("a kill left a state file that could not be read:\n%s", e.logs.String())
	}
}
