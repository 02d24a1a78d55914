//go:build soak

package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// The soak's shape: two apps of 7 and 5 sessions, one more session added by
// a reload halfway; listing orders alternating; pages of 10; runs that
// vanish from the listing 90 s after they end once listed three times; a
// fault every few seconds; scrapes every 1–8 s with deadlines of 4–10 s, a
// quarter of them as concurrent pairs; two exporters (an HA pair), one of
// them restarted from its saved state at 70% of the time.
const (
	vanishAfter    = 90 * time.Second
	vanishListings = 3
	pageSize       = 10
	longestRun     = 200 * time.Second
	settle         = 90 * time.Second
	// dailyBudget lets every session be polled as often as the soak
	// scrapes. The soak's load (about 0.55 new runs a second in one session
	// listed oldest first in pages of 10) costs more than the default
	// 100,000 requests a day of one app; capped, an exporter falls behind on
	// purpose (aily_sessions_overdue says so), and a run that ends and
	// vanishes between two affordable polls cannot be seen by any exporter.
	// The soak tests counting under faults, not the budget: it reports the
	// most sessions ever overdue, which must stay 0.
	dailyBudget = 5_000_000
)

var errorCodes = []string{"sp_ec_sm_900101", "sp_ec_llm_429", "sp_ec_tool_timeout", "sp_ec_kb_404", "sp_ec_other"}

// truthRun is what the soak knows of a run it created.
type truthRun struct {
	run   feishu.Run
	plan  []step
	next  int
	final bool
}

type step struct {
	at     time.Time
	status feishu.RunStatus
}

type session struct {
	app, id string
	rate    float64 // new runs a second
	live    bool    // runs are created in it
	order   feishufake.Order
}

type soak struct {
	t      *testing.T
	fake   *feishufake.Fake
	fronts map[string]*httptest.Server // one per exporter, onto the fake
	taps   map[string]*tap
	logs   map[string]*testkit.LogBuffer // by exporter, across its restart
	dir    string
	bin    string

	mu       sync.Mutex
	rng      *rand.Rand
	sessions []*session
	runs     map[string][]*truthRun // by session
	seq      int
	faults   map[string]int
	events   []string // what happened when, for a mismatch's report
	begin    time.Time
	creating atomic.Bool

	scrapes, pairs, scrapeErrors atomic.Int64
	overdue                      sync.Map // exporter name → most sessions overdue in a scrape (float64)
}

func minutes() time.Duration {
	m, err := strconv.ParseFloat(os.Getenv("SOAK_MINUTES"), 64)
	if err != nil || m <= 0 {
		m = 20
	}
	return time.Duration(m * float64(time.Minute))
}

func TestSoak(t *testing.T) {
	total := minutes()
	s := &soak{
		t:      t,
		dir:    t.TempDir(),
		rng:    rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 19)),
		runs:   map[string][]*truthRun{},
		faults: map[string]int{},
	}
	s.fake = feishufake.New(feishufake.Options{VanishAfter: vanishAfter, VanishAfterListings: vanishListings})
	s.fake.AddApp("cli_soak_alpha", "alpha-secret")
	s.fake.AddApp("cli_soak_beta", "beta-secret")
	s.fronts, s.taps, s.logs = map[string]*httptest.Server{}, map[string]*tap{}, map[string]*testkit.LogBuffer{}
	for _, name := range []string{"a", "b"} {
		s.taps[name] = &tap{s: s, next: s.fake}
		s.fronts[name] = httptest.NewServer(s.taps[name])
		defer s.fronts[name].Close()
		s.logs[name] = &testkit.LogBuffer{}
	}
	s.bin = buildExporter(t)

	n := 0
	for app, count := range map[string]int{"alpha": 7, "beta": 5} {
		for i := range count {
			rate := 0.02 + 0.13*s.rng.Float64()
			if app == "alpha" && i == 0 {
				rate = 0.55 // the busy one, listed oldest first
			}
			s.addSession(app, fmt.Sprintf("session_%s_%d", app, i), rate, n)
			n++
		}
	}
	late := &session{app: "beta", id: "session_beta_late", rate: 0.2, order: feishufake.NewestFirst}
	s.addHistory(late.id)
	s.fake.SetSessionOrder(late.id, feishufake.NewestFirst)

	s.writeConfig(false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := s.start("a")
	b := s.start("b")

	s.fake.OnPage(s.insertWhilePaging)
	s.creating.Store(true)
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	run(s.generate)
	run(s.chaos)
	scrapeCtx, stopScrapes := context.WithCancel(ctx)
	var scrapers sync.WaitGroup
	for _, x := range []**exporter{&a, &b} {
		scrapers.Add(1)
		go func() { defer scrapers.Done(); s.scrapeLoop(scrapeCtx, x) }()
	}

	begin := time.Now()
	s.mu.Lock()
	s.begin = begin
	s.mu.Unlock()
	t.Logf("soak: %v of runs and faults, then %v to settle", total, settle)
	time.Sleep(total / 2)
	s.writeConfig(true)
	for _, x := range []*exporter{a, b} {
		_ = x.Cmd.Process.Signal(syscall.SIGHUP)
	}
	// The session is watched from the reload on: its runs start after it.
	time.Sleep(3 * time.Second)
	s.mu.Lock()
	late.live = true
	s.sessions = append(s.sessions, late)
	s.mu.Unlock()
	t.Logf("soak: reloaded with %s at %v", late.id, time.Since(begin).Round(time.Second))

	time.Sleep(time.Until(begin.Add(total * 7 / 10)))
	s.restart(&a)
	t.Logf("soak: restarted exporter a from its saved state at %v", time.Since(begin).Round(time.Second))
	time.Sleep(time.Until(begin.Add(total)))

	// No new runs; the faults stop; every run ends; the exporters catch up.
	s.creating.Store(false)
	cancel()
	wg.Wait()
	s.fake.OnPage(nil)
	s.fake.ClearFaults()
	scrapeCtx2, stopScrapes2 := context.WithCancel(context.Background())
	stopScrapes()
	scrapers.Wait()
	for _, x := range []**exporter{&a, &b} {
		scrapers.Add(1)
		go func() { defer scrapers.Done(); s.scrapeLoop(scrapeCtx2, x) }()
	}
	end := time.Now().Add(longestRun)
	for time.Now().Before(end) && s.advanceAll() {
		time.Sleep(250 * time.Millisecond)
	}
	s.advanceAll()
	time.Sleep(settle)
	stopScrapes2()
	scrapers.Wait()

	want := s.truth()
	s.report()
	bad := 0
	for _, x := range []*exporter{a, b} {
		got, err := x.scrape(10)
		if err != nil {
			t.Fatalf("exporter %s: final scrape: %v\n%s", x.name, err, x.logTail())
		}
		bad += compare(t, x.name, want, got)
	}
	if bad > 0 {
		s.explain(a, b, want)
		t.Fatalf("soak: %d mismatched series (above)", bad)
	}
	t.Logf("soak: every counted series of both exporters equals the truth")
}

// addSession registers a session with an old history in the fake.
func (s *soak) addSession(app, id string, rate float64, n int) {
	s.addHistory(id)
	order := feishufake.OldestFirst
	if n%2 == 1 {
		order = feishufake.NewestFirst
	}
	s.fake.SetSessionOrder(id, order)
	s.sessions = append(s.sessions, &session{app: app, id: id, rate: rate, live: true, order: order})
}

// addHistory gives a session 30 runs that ended a day ago: never counted.
func (s *soak) addHistory(id string) {
	s.fake.AddSession(id)
	old := time.Now().Add(-24 * time.Hour)
	for i := range 30 {
		c := old.Add(time.Duration(i) * time.Minute)
		s.fake.PutRun(feishu.Run{ID: fmt.Sprintf("%s_hist_%02d", id, i), SessionID: id, AppID: "spring_soak__c",
			Status: feishu.StatusCompleted, CreatedAt: c, StartedAt: c, EndedAt: c.Add(time.Second)})
	}
}

func (s *soak) writeConfig(withLate bool) {
	var alpha, beta []string
	for _, ss := range s.sessions {
		if ss.app == "alpha" {
			alpha = append(alpha, ss.id)
		} else if ss.id != "session_beta_late" {
			beta = append(beta, ss.id)
		}
	}
	if withLate {
		beta = append(beta, "session_beta_late")
	}
	// Each exporter reaches the fake through its own front, so that the
	// soak knows which exporter was shown what.
	for name, front := range s.fronts {
		cfg := fmt.Sprintf(`apps:
  - name: alpha
    app_id: cli_soak_alpha
    app_secret: alpha-secret
    base_url: %[1]s
    sessions: [%[2]s]
  - name: beta
    app_id: cli_soak_beta
    app_secret: beta-secret
    base_url: %[1]s
    sessions: [%[3]s]
`, front.URL, strings.Join(alpha, ", "), strings.Join(beta, ", "))
		if err := os.WriteFile(filepath.Join(s.dir, "aily-"+name+".yml"), []byte(cfg), 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
}

// generate creates runs at each session's rate and moves them along their
// plans, until ctx is done.
func (s *soak) generate(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.mu.Lock()
		for _, ss := range s.sessions {
			if ss.live && s.rng.Float64() < ss.rate/10 {
				s.createLocked(ss)
			}
		}
		s.mu.Unlock()
		s.advanceAll()
	}
}

// insertWhilePaging creates a run now and then while a session is paged, so
// that later pages shift.
func (s *soak) insertWhilePaging(sessionID string, _ int) {
	if !s.creating.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rng.Float64() >= 0.05 {
		return
	}
	for _, ss := range s.sessions {
		if ss.id == sessionID && ss.live {
			s.createLocked(ss)
			s.faults["insert while paging"]++
		}
	}
}

// createLocked makes a run and plans its life: queued, in progress, maybe a
// message asked for, final after 1–20 s (now and then minutes).
func (s *soak) createLocked(ss *session) {
	s.seq++
	now := time.Now()
	r := feishu.Run{ID: fmt.Sprintf("run_%06d", s.seq), SessionID: ss.id, AppID: "spring_soak__c",
		Status: feishu.StatusQueued, CreatedAt: now, Metadata: "{}"}
	tr := &truthRun{run: r}
	at := now.Add(time.Duration(s.rng.Float64() * float64(3*time.Second)))
	tr.plan = append(tr.plan, step{at, feishu.StatusInProgress})
	if s.rng.Float64() < 0.1 {
		at = at.Add(time.Duration(s.rng.Float64() * float64(5*time.Second)))
		tr.plan = append(tr.plan, step{at, feishu.StatusRequiresMessage})
		at = at.Add(time.Second)
		tr.plan = append(tr.plan, step{at, feishu.StatusInProgress})
	}
	d := time.Second + time.Duration(s.rng.Float64()*float64(19*time.Second))
	if s.rng.Float64() < 0.03 {
		d = time.Minute + time.Duration(s.rng.Float64()*float64(longestRun-time.Minute-10*time.Second))
	}
	final := feishu.StatusCompleted
	switch p := s.rng.Float64(); {
	case p < 0.10:
		final = feishu.StatusFailed
	case p < 0.13:
		final = feishu.StatusCancelled
	case p < 0.15:
		final = feishu.StatusExpired
	}
	tr.plan = append(tr.plan, step{at.Add(d), final})
	s.runs[ss.id] = append(s.runs[ss.id], tr)
	s.fake.PutRun(r)
}

// advanceAll moves every run whose next step is due; it reports whether a
// run is still not final.
func (s *soak) advanceAll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	pending := false
	for _, runs := range s.runs {
		for _, tr := range runs {
			if tr.final {
				continue
			}
			changed := false
			for tr.next < len(tr.plan) && !tr.plan[tr.next].at.After(now) {
				st := tr.plan[tr.next]
				tr.run.Status = st.status
				if st.status == feishu.StatusInProgress && tr.run.StartedAt.IsZero() {
					tr.run.StartedAt = st.at
				}
				if st.status.Final() {
					tr.run.EndedAt = st.at
					tr.final = true
					if st.status == feishu.StatusFailed {
						tr.run.Error = &feishu.RunError{Code: errorCodes[s.rng.IntN(len(errorCodes))], Message: "failed in the soak"}
					}
				}
				tr.next++
				changed = true
			}
			if changed {
				s.fake.PutRun(tr.run)
			}
			pending = pending || !tr.final
		}
	}
	return pending
}

// chaos switches a random fault on every 2–6 s.
func (s *soak) chaos(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2*time.Second + time.Duration(s.rng.Float64()*float64(4*time.Second))):
		}
		s.mu.Lock()
		sc := feishufake.Scope{}
		switch s.rng.IntN(3) {
		case 0:
			sc.AppID = []string{"cli_soak_alpha", "cli_soak_beta"}[s.rng.IntN(2)]
		case 1:
			sc.SessionID = s.sessions[s.rng.IntN(len(s.sessions))].id
		}
		times := 1 + s.rng.IntN(5)
		var fl feishufake.Fault
		name := ""
		switch s.rng.IntN(9) {
		case 0:
			fl, name = feishufake.Fault{Kind: feishufake.RateLimit429, Times: times, ResetSeconds: 1 + s.rng.IntN(2)}, "HTTP 429"
		case 1:
			fl, name = feishufake.Fault{Kind: feishufake.RateLimit400, Times: times, ResetSeconds: 1}, "HTTP 400 + 99991400"
		case 2:
			fl, name = feishufake.Fault{Kind: feishufake.ServerError, Times: times}, "HTTP 500"
		case 3:
			fl, name = feishufake.Fault{Kind: feishufake.InvalidToken, Times: 1 + s.rng.IntN(2)}, "invalid token"
		case 4:
			s.fake.ExpireTokens()
			name = "tokens expired"
		case 5:
			fl, name = feishufake.Fault{Kind: feishufake.TokenEndpointFailure, Times: 1 + s.rng.IntN(2)}, "token endpoint failure"
			sc = feishufake.Scope{Endpoint: feishu.EndpointTenantToken}
		case 6:
			// A text 404 on one session for a while.
			id := s.sessions[s.rng.IntN(len(s.sessions))].id
			sc = feishufake.Scope{SessionID: id}
			fl, name = feishufake.Fault{Kind: feishufake.NotFoundText}, "text 404 for 20 s"
			time.AfterFunc(20*time.Second, func() { s.fake.ClearFault(sc) })
		case 7, 8:
			// Slow answers, some beyond the scrape's deadline.
			fl = feishufake.Fault{Kind: feishufake.Slow, Times: times, Delay: time.Duration(500+s.rng.IntN(11500)) * time.Millisecond}
			name = "slow answer"
		}
		if fl.Kind != 0 {
			s.fake.SetFault(sc, fl)
		}
		s.faults[name]++
		s.events = append(s.events, fmt.Sprintf("%6.1fs %s on %+v", time.Since(s.begin).Seconds(), name, sc))
		s.mu.Unlock()
	}
}

// scrapeLoop scrapes an exporter every 1–8 s with a deadline of 4–10 s, a
// quarter of the time as two concurrent scrapes (an HA pair of Prometheus).
func (s *soak) scrapeLoop(ctx context.Context, x **exporter) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second + time.Duration(rng.Float64()*float64(7*time.Second))):
		}
		timeout := 4 + rng.IntN(7)
		s.mu.Lock()
		cur := *x
		s.mu.Unlock()
		n := 1
		if rng.IntN(4) == 0 {
			n = 2
			s.pairs.Add(1)
		}
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.scrapes.Add(1)
				got, err := cur.scrape(timeout)
				if err != nil {
					s.scrapeErrors.Add(1)
					return
				}
				n := 0.0
				for k, v := range got {
					if strings.HasPrefix(k, "aily_sessions_overdue{") {
						n += v
					}
				}
				if old, ok := s.overdue.Load(cur.name); !ok || old.(float64) < n {
					s.overdue.Store(cur.name, n)
				}
			}()
		}
		wg.Wait()
	}
}

// truth returns the value every counted series must have: each run the soak
// created, once, by its final status, error code and timings.
func (s *soak) truth() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]float64{}
	for _, ss := range s.sessions {
		series := func(name string, kv ...string) string {
			ls := model.LabelSet{"app": model.LabelValue(ss.app), "session_id": model.LabelValue(ss.id)}
			for i := 0; i+1 < len(kv); i += 2 {
				ls[model.LabelName(kv[i])] = model.LabelValue(kv[i+1])
			}
			return name + ls.String()
		}
		for _, st := range feishu.FinalStatuses() {
			want[series("aily_runs_finished_total", "status", string(st))] += 0
		}
		for _, tr := range s.runs[ss.id] {
			r := tr.run
			want[series("aily_runs_created_total")]++
			want[series("aily_run_queue_seconds_count")]++
			want[series("aily_runs_finished_total", "status", string(r.Status))]++
			want[series("aily_run_duration_seconds_count", "status", string(r.Status))]++
			if r.Status == feishu.StatusFailed {
				want[series("aily_run_failures_total", "error_code", r.Error.Code)]++
			}
		}
	}
	return want
}

func (s *soak) report() {
	s.mu.Lock()
	defer s.mu.Unlock()
	created, finished := 0, 0
	for _, runs := range s.runs {
		created += len(runs)
		for _, tr := range runs {
			if tr.final {
				finished++
			}
		}
	}
	var kinds []string
	for k, v := range s.faults {
		kinds = append(kinds, fmt.Sprintf("%d × %s", v, k))
	}
	sort.Strings(kinds)
	s.t.Logf("soak: %d sessions, %d runs created, %d finished, %d vanished from the listing, %d list and %d get-run requests",
		len(s.sessions), created, finished, s.fake.Vanished(), s.fake.Requests("list_runs"), s.fake.Requests("get_run"))
	s.t.Logf("soak: faults: %s", strings.Join(kinds, ", "))
	s.t.Logf("soak: %d scrapes (%d concurrent pairs), %d failed or cut short", s.scrapes.Load(), s.pairs.Load(), s.scrapeErrors.Load())
	s.overdue.Range(func(k, v any) bool {
		s.t.Logf("soak: exporter %s: at most %v sessions overdue in a scrape (the budget held them back)", k, v)
		return true
	})
	dir, err := os.MkdirTemp("", "aily-soak-logs-")
	if err == nil {
		for name, l := range s.logs {
			_ = os.WriteFile(filepath.Join(dir, name+".log"), []byte(l.String()), 0o600)
		}
		s.t.Logf("soak: the exporters' logs (debug) are in %s", dir)
	}
}

// explain logs, for each exporter and each run it did not count exactly
// once as created and as finished, the run's life and every listing of its
// session the exporter was answered while the run lived and a while after
// (from the exporter's own front), then the faults of that time.
func (s *soak) explain(a, b *exporter, _ map[string]float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range []*exporter{a, b} {
		created, finished := countedRuns(s.logs[x.name].String())
		tp := s.taps[x.name]
		shown := 0
		for _, ss := range s.sessions {
			for _, tr := range s.runs[ss.id] {
				r := tr.run
				if created[r.ID] == 1 && finished[r.ID] == 1 {
					continue
				}
				shown++
				if shown > 10 {
					continue
				}
				at := func(t time.Time) float64 { return t.Sub(s.begin).Seconds() }
				s.t.Logf("exporter %s: %s of %s (listed %s) counted created ×%d, finished ×%d; created %.1fs started %.1fs ended %.1fs %s",
					x.name, r.ID, ss.id, ss.order, created[r.ID], finished[r.ID], at(r.CreatedAt), at(r.StartedAt), at(r.EndedAt), r.Status)
				from, to := at(r.CreatedAt)-10, at(r.EndedAt)+150
				for _, c := range tp.calls(ss.id, from, to) {
					mark := "  "
					if c.has(r.ID) {
						mark = "=>"
					}
					s.t.Logf("  %s %s", mark, c.describe(r.ID))
				}
				for _, e := range s.events {
					var t float64
					if _, err := fmt.Sscanf(strings.TrimSpace(e), "%fs", &t); err == nil && t >= from && t <= to &&
						(strings.Contains(e, ss.id) || !strings.Contains(e, "SessionID:session")) {
						s.t.Logf("     fault %s", e)
					}
				}
			}
		}
		if shown > 10 {
			s.t.Logf("exporter %s: %d more runs not counted exactly once", x.name, shown-10)
		}
	}
}

// countedRuns reads the exporter's debug lines "Counted runs" and returns
// how often each run was counted as created and as finished.
func countedRuns(logs string) (created, finished map[string]int) {
	created, finished = map[string]int{}, map[string]int{}
	field := func(l, name string) []string {
		i := strings.Index(l, " "+name+"=")
		if i < 0 {
			return nil
		}
		v := l[i+len(name)+2:]
		if j := strings.IndexByte(v, ' '); j >= 0 {
			v = v[:j]
		}
		if v == "" {
			return nil
		}
		return strings.Split(v, ",")
	}
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, `msg="Counted runs"`) {
			continue
		}
		for _, id := range field(l, "created") {
			created[id]++
		}
		for _, id := range field(l, "finished") {
			finished[id]++
		}
	}
	return created, finished
}

// tap passes an exporter's requests to the fake and keeps what each
// listing and get run answered it, by session.
type tap struct {
	s    *soak
	next http.Handler

	mu   sync.Mutex
	byID map[string][]*call // session ID → its calls, in order
}

// call is one list-runs or get-run request and what it answered.
type call struct {
	at, took  float64 // seconds since the soak began
	path, tok string
	status    int // HTTP
	code      int
	runs      []shownRun
	next      string
	more      bool
	cut       bool // the exporter went away before the answer
}

type shownRun struct{ id, status string }

func (c *call) has(id string) bool {
	for _, r := range c.runs {
		if r.id == id {
			return true
		}
	}
	return false
}

func (c *call) describe(id string) string {
	kind := "list"
	if !strings.HasSuffix(c.path, "/runs") {
		kind = "get "
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%7.1fs +%.1fs %s tok=%q → HTTP %d code %d", c.at, c.took, kind, c.tok, c.status, c.code)
	if c.cut {
		b.WriteString(" (cut off)")
	}
	if len(c.runs) > 0 {
		fmt.Fprintf(&b, " %d runs %s..%s next=%q more=%v", len(c.runs), c.runs[0].id, c.runs[len(c.runs)-1].id, c.next, c.more)
	}
	for i, r := range c.runs {
		if r.id == id {
			fmt.Fprintf(&b, " [#%d %s]", i, r.status)
		}
	}
	return b.String()
}

func (tp *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const prefix = "/open-apis/aily/v1/sessions/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		tp.next.ServeHTTP(w, r)
		return
	}
	sessionID, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, prefix), "/")
	tp.s.mu.Lock()
	begin := tp.s.begin
	tp.s.mu.Unlock()
	start := time.Now()
	tw := &teeWriter{ResponseWriter: w, status: http.StatusOK}
	tp.next.ServeHTTP(tw, r)
	c := &call{at: start.Sub(begin).Seconds(), took: time.Since(start).Seconds(), path: r.URL.Path,
		tok: r.URL.Query().Get("page_token"), status: tw.status, cut: r.Context().Err() != nil}
	var env struct {
		Code int `json:"code"`
		Data struct {
			Runs      []struct{ ID, Status string } `json:"runs"`
			Run       *struct{ ID, Status string }  `json:"run"`
			PageToken string                        `json:"page_token"`
			HasMore   bool                          `json:"has_more"`
		} `json:"data"`
	}
	if json.Unmarshal(tw.body.Bytes(), &env) == nil {
		c.code, c.next, c.more = env.Code, env.Data.PageToken, env.Data.HasMore
		for _, x := range env.Data.Runs {
			c.runs = append(c.runs, shownRun{x.ID, x.Status})
		}
		if env.Data.Run != nil {
			c.runs = append(c.runs, shownRun{env.Data.Run.ID, env.Data.Run.Status})
		}
	}
	tp.mu.Lock()
	if tp.byID == nil {
		tp.byID = map[string][]*call{}
	}
	tp.byID[sessionID] = append(tp.byID[sessionID], c)
	tp.mu.Unlock()
}

// calls returns the session's calls that began between from and to.
func (tp *tap) calls(sessionID string, from, to float64) []*call {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []*call
	for _, c := range tp.byID[sessionID] {
		if c.at >= from && c.at <= to {
			out = append(out, c)
		}
	}
	return out
}

// teeWriter keeps a copy of an answer.
type teeWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (t *teeWriter) WriteHeader(code int) {
	t.status = code
	t.ResponseWriter.WriteHeader(code)
}

// compare checks every series of the truth, and every counted series the
// exporter serves for the soak's sessions, and returns the mismatches.
func compare(t *testing.T, name string, want, got map[string]float64) int {
	t.Helper()
	bad := 0
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok && strings.Contains(k, "session_id=") && counted(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("exporter %s: %s = %v, truth %v", name, k, got[k], want[k])
			bad++
		}
	}
	return bad
}

func counted(k string) bool {
	for _, p := range []string{"aily_runs_created_total", "aily_run_queue_seconds_count", "aily_runs_finished_total",
		"aily_run_duration_seconds_count", "aily_run_failures_total"} {
		if strings.HasPrefix(k, p+"{") {
			return true
		}
	}
	return false
}

// exporter is one exporter process.
type exporter struct {
	name string
	*testkit.Process
	logs *testkit.LogBuffer
}

func (s *soak) start(name string) *exporter {
	s.t.Helper()
	logs := s.logs[name]
	return &exporter{name: name, logs: logs, Process: testkit.StartExporter(s.t, s.bin, logs,
		"--config.file="+filepath.Join(s.dir, "aily-"+name+".yml"),
		"--storage.path="+filepath.Join(s.dir, "data-"+name),
		"--poll.idle-interval=20s",
		fmt.Sprintf("--poll.daily-budget=%d", dailyBudget),
		fmt.Sprintf("--feishu.page-size=%d", pageSize),
		"--log.level=debug")}
}

// restart stops an exporter with SIGTERM (it saves its state) and starts it
// again on the same storage.
func (s *soak) restart(x **exporter) {
	old := *x
	_ = old.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-old.Done:
		old.Done <- nil
	case <-time.After(30 * time.Second):
		s.t.Fatalf("exporter %s did not stop on SIGTERM:\n%s", old.name, old.logTail())
	}
	nx := s.start(old.name)
	s.mu.Lock()
	*x = nx
	s.mu.Unlock()
}

// scrape gets /metrics with Prometheus' timeout header and returns every
// sample by series.
func (x *exporter) scrape(timeout int) (map[string]float64, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+x.Addr+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.Itoa(timeout))
	c := &http.Client{Timeout: time.Duration(timeout+5) * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return testkit.Samples(resp.Body)
}

func (x *exporter) logTail() string {
	s := x.logs.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

func buildExporter(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "aily_exporter")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
