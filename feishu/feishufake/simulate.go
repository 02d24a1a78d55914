package feishufake

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// Defaults of SimulatorOptions and the simulator's shape. Times are
// simulated: at Speed s they pass s times faster.
const (
	DefaultBurstEvery = 10 * time.Minute

	// keepFinalRuns is how many final runs each session keeps listed; older
	// ones are deleted so a long demo stays small.
	keepFinalRuns = 200
	// meanArrival is the mean time between two new runs across all sessions.
	meanArrival = 2500 * time.Millisecond
	// warmup is the history simulated before the first Step, so the demo's
	// sessions start with runs already listed (and the Aily app known).
	warmup = 15 * time.Minute
	// maxCatchUp bounds the arrivals simulated after the clock jumps (a
	// suspended laptop), so a long gap does not create a flood of runs.
	maxCatchUp = time.Hour
	// A failure burst lasts from burstMinLength to burstMinLength+burstMaxExtra.
	burstMinLength = 60 * time.Second
	burstMaxExtra  = 30 * time.Second
	// burstTraffic multiplies the arrivals of the bursting sessions, as
	// users retry what fails.
	burstTraffic = 4
	// burstRetryEvery: during a burst, each bursting session also gets a run
	// this often (its users retrying), on top of its share of the arrivals.
	// A quiet session picked for a burst would otherwise fail only two or
	// three runs, too few to be told from noise: with it every burst fails at
	// least about ten runs, as a real outage does.
	burstRetryEvery = 5 * time.Second
	// openingFailureRuns of the first runs created after the first Step fail.
	// At about 1.5 failures a minute a newcomer could otherwise wait minutes
	// for the first failure to be counted (the warm-up's failures ended before
	// the exporter watched), and aily_run_failures_total would be missing from
	// the first scrapes. Two failures are far below what the spike alert needs.
	openingFailureRuns = 2
	// expireAfter is how long a run waits in REQUIRES_MESSAGE before it
	// expires when no message comes.
	expireAfter = 3 * time.Minute
)

// Outcome probabilities of a run outside a burst (the rest complete).
const (
	pFailed      = 0.04
	pCancelled   = 0.015
	pNeedMessage = 0.10 // pauses in REQUIRES_MESSAGE once
	pNoMessage   = 0.12 // of those, no message comes: EXPIRED
	pBurstFailed = 0.85 // in a bursting session during the burst
)

// runFailure is an error a failed run carries, with its weight among
// ordinary failures.
type runFailure struct {
	feishu.RunError
	weight float64
}

// demoFailures returns the error codes of the demo (a function, not a
// variable, so that no package state can be changed). Only sp_ec_sm_900101 ("the skill
// does not exist or was deleted") is documented (list-runs.md); the others
// are invented in the same style: model timeout, model rate limit, plugin
// call failure, knowledge-base retrieval failure, workflow node error.
func demoFailures() [6]runFailure {
	return [...]runFailure{
		{feishu.RunError{Code: "sp_ec_sm_900101", Message: "技能不存在或已删除"}, 2},
		{feishu.RunError{Code: "sp_ec_llm_500301", Message: "大模型调用超时"}, 4},
		{feishu.RunError{Code: "sp_ec_llm_429001", Message: "大模型调用频率超限"}, 2},
		{feishu.RunError{Code: "sp_ec_plg_700203", Message: "插件调用失败"}, 3},
		{feishu.RunError{Code: "sp_ec_kb_800104", Message: "知识库检索失败"}, 1},
		{feishu.RunError{Code: "sp_ec_wf_600110", Message: "工作流节点执行异常"}, 2},
	}
}

// simAppShape is a demo app's name and how many sessions it has.
type simAppShape struct {
	name     string
	sessions int
}

// demoApps returns the demo's apps.
func demoApps() [3]simAppShape {
	return [...]simAppShape{{"helpdesk", 4}, {"sales-assistant", 3}, {"code-review", 3}}
}

// idAlphabet is the alphabet of Aily IDs: digits and lower-case letters
// without i, l and o.
const idAlphabet = "0123456789abcdefghjkmnpqrstuvwxyz"

// SimulatorOptions configure a Simulator. The zero value is usable.
type SimulatorOptions struct {
	// Speed multiplies the pace: arrivals, queue times, durations and the
	// burst schedule. Default 1.
	Speed float64
	// BurstEvery is the (simulated) time between failure bursts; default
	// 10m; negative: no bursts except those Burst starts.
	BurstEvery time.Duration
	// Seed makes the simulation repeatable: the same Seed and the same Step
	// times give the same runs.
	Seed int64
	// Now is the clock Run reads; default time.Now.
	Now func() time.Time
}

// SimApp is a Feishu app of the simulation: its name (the exporter's app
// label), the credentials registered on the fake, and its sessions.
type SimApp struct {
	Name      string
	AppID     string // credential app, cli_…
	AppSecret string
	Sessions  []string
}

// Simulator drives a Fake like a live Aily deployment for --demo: runs
// arriving across sessions, moving QUEUED → IN_PROGRESS (→ REQUIRES_MESSAGE
// → IN_PROGRESS) → a final status, a few percent failing, and now and then a
// burst of failures. It is safe for concurrent use.
type Simulator struct {
	fake       *Fake
	speed      float64
	burstEvery time.Duration
	now        func() time.Time
	apps       []SimApp

	mu          sync.Mutex
	rng         *rand.Rand
	sessions    []*simSession
	started     bool
	last        time.Time // the last Step's time
	nextArrival time.Time
	nextBurst   time.Time // zero: none scheduled
	burstFrom   time.Time
	burstUntil  time.Time
	burstSet    map[*simSession]bool
	burstError  feishu.RunError
	burstNow    bool      // Burst was called; the next Step starts one
	nextRetry   time.Time // the next burstRetryEvery run of a burst
	// openingFailures is how many of the first runs created after the
	// warm-up still have to fail (see openingFailureRuns).
	openingFailures int
	startedAt       time.Time // the first Step's time
	runSeq          uint64
	entered         map[feishu.RunStatus]int // runs that entered each status
}

type simSession struct {
	id         string
	ailyAppID  string
	weight     float64
	live       []*simRun
	finalOrder []string // IDs of final runs, oldest first
}

// simRun is a run and its planned future: each step happens at its time.
type simRun struct {
	run       feishu.Run
	plan      []simStep
	next      int
	burstFail bool
}

type simStep struct {
	at     time.Time
	status feishu.RunStatus
	err    *feishu.RunError
}

// NewSimulator registers the simulation's apps and sessions on f. Nothing
// moves until Step or Run.
func NewSimulator(f *Fake, opts SimulatorOptions) *Simulator {
	s := &Simulator{
		fake:       f,
		speed:      opts.Speed,
		burstEvery: opts.BurstEvery,
		now:        opts.Now,
		rng:        rand.New(rand.NewPCG(uint64(opts.Seed), 0x6169_6c79)), // "aily"
		entered:    map[feishu.RunStatus]int{},
	}
	if s.speed <= 0 || math.IsNaN(s.speed) || math.IsInf(s.speed, 0) {
		s.speed = 1
	}
	if s.burstEvery == 0 {
		s.burstEvery = DefaultBurstEvery
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, a := range demoApps() {
		app := SimApp{
			Name:      a.name,
			AppID:     "cli_a" + s.randomString("0123456789abcdef", 15),
			AppSecret: s.randomString("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 32),
		}
		ailyApp := "spring_" + s.randomString(idAlphabet, 10) + "__c"
		for range a.sessions {
			ss := &simSession{
				id:        "session_" + s.randomString(idAlphabet, 13),
				ailyAppID: ailyApp,
				// Some sessions are busy, some quiet.
				weight: 0.3 + 1.7*s.rng.Float64(),
			}
			s.sessions = append(s.sessions, ss)
			app.Sessions = append(app.Sessions, ss.id)
			f.AddSession(ss.id)
		}
		f.AddApp(app.AppID, app.AppSecret)
		s.apps = append(s.apps, app)
	}
	return s
}

// Apps returns the simulated apps with their credentials and sessions.
func (s *Simulator) Apps() []SimApp {
	apps := make([]SimApp, len(s.apps))
	for i, a := range s.apps {
		a.Sessions = append([]string(nil), a.Sessions...)
		apps[i] = a
	}
	return apps
}

// Run steps the simulation on a real ticker until ctx is done.
func (s *Simulator) Run(ctx context.Context) {
	// Tick often enough that, even sped up, statuses change in small steps;
	// but never more than 100 times a second.
	tick := max(time.Duration(float64(250*time.Millisecond)/s.speed), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	s.Step(s.now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Step(s.now())
		}
	}
}

// Burst starts a burst of failures at the next Step: for 60 to 90 s most
// runs of one or two sessions fail with the same error.
func (s *Simulator) Burst() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.burstNow = true
}

// ControlHandler serves POST /simulator/burst, which calls Burst.
func (s *Simulator) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /simulator/burst", func(w http.ResponseWriter, _ *http.Request) {
		s.Burst()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "failure burst starting\n")
	})
	return mux
}

// Handler serves the fake API and, under /simulator/, ControlHandler: one
// listener for the demo.
func (s *Simulator) Handler() http.Handler {
	control := s.ControlHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/simulator/") {
			control.ServeHTTP(w, r)
			return
		}
		s.fake.ServeHTTP(w, r)
	})
}

// Step advances the simulation to now: runs arrive, move and finish as
// planned, and the fake is updated. A now before the last Step's is ignored.
// The first Step also simulates some history, so sessions start with runs.
func (s *Simulator) Step(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		s.startedAt = now
		s.openingFailures = openingFailureRuns
		s.last = now.Add(-s.scale(warmup))
		s.nextArrival = s.last
		if s.burstEvery > 0 {
			s.nextBurst = now.Add(s.scale(s.burstEvery))
		}
	}
	if now.Before(s.last) {
		return
	}
	if s.burstNow {
		s.burstNow = false
		s.startBurst(now)
	}
	if !s.nextBurst.IsZero() && !now.Before(s.nextBurst) {
		s.startBurst(s.nextBurst)
	}
	if floor := now.Add(-s.scale(maxCatchUp)); s.nextArrival.Before(floor) {
		s.nextArrival = floor
	}
	for !s.nextArrival.After(now) {
		s.arrive(s.nextArrival)
		s.nextArrival = s.nextArrival.Add(s.scale(time.Duration(s.rng.ExpFloat64() * float64(meanArrival))))
	}
	for s.nextRetry.Before(s.burstUntil) && !s.nextRetry.After(now) {
		// s.sessions, not the burstSet map, for a deterministic order.
		for _, ss := range s.sessions {
			if s.burstSet[ss] {
				s.create(ss, s.nextRetry)
			}
		}
		s.nextRetry = s.nextRetry.Add(s.scale(burstRetryEvery))
	}
	for _, ss := range s.sessions {
		s.advance(ss, now)
	}
	s.last = now
}

// scale turns a simulated duration into clock time.
func (s *Simulator) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) / s.speed)
}

func (s *Simulator) startBurst(at time.Time) {
	s.burstFrom = at
	s.burstUntil = at.Add(s.scale(burstMinLength + time.Duration(s.rng.Int64N(int64(burstMaxExtra)))))
	s.nextRetry = at
	s.burstSet = map[*simSession]bool{}
	for range 1 + s.rng.IntN(2) {
		s.burstSet[s.sessions[s.rng.IntN(len(s.sessions))]] = true
	}
	// One cause per burst, as when a model or plugin behind the agent is down.
	failures := demoFailures()
	s.burstError = failures[1+s.rng.IntN(len(failures)-1)].RunError
	if s.burstEvery > 0 {
		s.nextBurst = at.Add(s.scale(s.burstEvery))
	}
}

func (s *Simulator) inBurst(ss *simSession, t time.Time) bool {
	return s.burstSet[ss] && !t.Before(s.burstFrom) && t.Before(s.burstUntil)
}

// arrive creates a run at t in a session picked by traffic weight.
func (s *Simulator) arrive(t time.Time) {
	total := 0.0
	for _, ss := range s.sessions {
		total += s.sessionWeight(ss, t)
	}
	pick := s.rng.Float64() * total
	ss := s.sessions[len(s.sessions)-1]
	for _, c := range s.sessions {
		if pick -= s.sessionWeight(c, t); pick < 0 {
			ss = c
			break
		}
	}
	s.create(ss, t)
}

// create creates a run in ss at t and plans its future.
func (s *Simulator) create(ss *simSession, t time.Time) {
	s.runSeq++
	r := &simRun{run: feishu.Run{
		ID:        fmt.Sprintf("run_%s%s", s.randomString(idAlphabet, 6), base33(s.runSeq)),
		AppID:     ss.ailyAppID,
		SessionID: ss.id,
		Status:    feishu.StatusQueued,
		CreatedAt: t,
		Metadata:  fmt.Sprintf(`{"channel":"im","biz_user_id":"ou_%s"}`, s.randomString("0123456789abcdef", 12)),
	}}
	r.plan, r.burstFail = s.plan(ss, t)
	s.entered[feishu.StatusQueued]++
	ss.live = append(ss.live, r)
	s.fake.PutRun(r.run)
}

func (s *Simulator) sessionWeight(ss *simSession, t time.Time) float64 {
	if s.inBurst(ss, t) {
		return ss.weight * burstTraffic
	}
	return ss.weight
}

// plan decides a new run's future. Durations are log-normal: queue times of
// a second or a few, run times from seconds to minutes.
func (s *Simulator) plan(ss *simSession, created time.Time) ([]simStep, bool) {
	at := created.Add(s.scale(s.logNormal(1200*time.Millisecond, 0.7, 30*time.Second)))
	steps := []simStep{}
	roll := s.rng.Float64()
	if s.inBurst(ss, created) {
		if roll < pBurstFailed {
			e := s.burstError
			steps = append(steps, simStep{at: at, status: feishu.StatusInProgress})
			end := at.Add(s.scale(s.logNormal(4*time.Second, 0.6, time.Minute)))
			return append(steps, simStep{at: end, status: feishu.StatusFailed, err: &e}), true
		}
		roll = s.rng.Float64()
	}
	switch {
	case roll < pCancelled/3:
		// Cancelled while still queued: it never started.
		return append(steps, simStep{at: at, status: feishu.StatusCancelled}), false
	case roll < pCancelled:
		steps = append(steps, simStep{at: at, status: feishu.StatusInProgress})
		end := at.Add(s.scale(s.logNormal(15*time.Second, 0.8, 5*time.Minute)))
		return append(steps, simStep{at: end, status: feishu.StatusCancelled}), false
	case s.openingFailures > 0 && !created.Before(s.startedAt):
		s.openingFailures--
		steps = append(steps, simStep{at: at, status: feishu.StatusInProgress})
		end := at.Add(s.scale(s.logNormal(3*time.Second, 0.5, 10*time.Second)))
		e := s.pickFailure()
		return append(steps, simStep{at: end, status: feishu.StatusFailed, err: &e}), false
	case roll < pCancelled+pFailed:
		steps = append(steps, simStep{at: at, status: feishu.StatusInProgress})
		end := at.Add(s.scale(s.logNormal(6*time.Second, 0.9, 3*time.Minute)))
		e := s.pickFailure()
		return append(steps, simStep{at: end, status: feishu.StatusFailed, err: &e}), false
	}
	steps = append(steps, simStep{at: at, status: feishu.StatusInProgress})
	if s.rng.Float64() < pNeedMessage {
		at = at.Add(s.scale(s.logNormal(8*time.Second, 0.7, 2*time.Minute)))
		steps = append(steps, simStep{at: at, status: feishu.StatusRequiresMessage})
		if s.rng.Float64() < pNoMessage {
			return append(steps, simStep{at: at.Add(s.scale(expireAfter)), status: feishu.StatusExpired}), false
		}
		at = at.Add(s.scale(s.logNormal(25*time.Second, 0.8, expireAfter-time.Second)))
		steps = append(steps, simStep{at: at, status: feishu.StatusInProgress})
	}
	end := at.Add(s.scale(s.logNormal(20*time.Second, 1.0, 15*time.Minute)))
	return append(steps, simStep{at: end, status: feishu.StatusCompleted}), false
}

func (s *Simulator) pickFailure() feishu.RunError {
	failures := demoFailures()
	total := 0.0
	for _, f := range failures {
		total += f.weight
	}
	pick := s.rng.Float64() * total
	for _, f := range failures {
		if pick -= f.weight; pick < 0 {
			return f.RunError
		}
	}
	return failures[0].RunError
}

// logNormal draws a duration with the given median and shape, at least
// 100ms and at most limit.
func (s *Simulator) logNormal(median time.Duration, sigma float64, limit time.Duration) time.Duration {
	d := time.Duration(float64(median) * math.Exp(sigma*s.rng.NormFloat64()))
	return min(max(d, 100*time.Millisecond), limit)
}

// advance moves a session's live runs along their plans up to now and prunes
// its oldest final runs.
func (s *Simulator) advance(ss *simSession, now time.Time) {
	live := ss.live[:0]
	for _, r := range ss.live {
		changed := false
		for r.next < len(r.plan) && !r.plan[r.next].at.After(now) {
			st := r.plan[r.next]
			r.next++
			r.run.Status = st.status
			if st.status == feishu.StatusInProgress && r.run.StartedAt.IsZero() {
				r.run.StartedAt = st.at
			}
			if st.status.Final() {
				r.run.EndedAt = st.at
				r.run.Error = st.err
			}
			s.entered[st.status]++
			changed = true
		}
		if changed {
			s.fake.PutRun(r.run)
		}
		if r.run.Status.Final() {
			ss.finalOrder = append(ss.finalOrder, r.run.ID)
		} else {
			live = append(live, r)
		}
	}
	clear(ss.live[len(live):])
	ss.live = live
	if n := len(ss.finalOrder) - keepFinalRuns; n > 0 {
		for _, id := range ss.finalOrder[:n] {
			s.fake.DeleteRun(ss.id, id)
		}
		ss.finalOrder = append(ss.finalOrder[:0], ss.finalOrder[n:]...)
	}
}

func (s *Simulator) randomString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[s.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// base33 writes n in the ID alphabet, so run IDs are unique by construction.
func base33(n uint64) string {
	var b []byte
	for {
		b = append(b, idAlphabet[n%uint64(len(idAlphabet))])
		n /= uint64(len(idAlphabet))
		if n == 0 {
			break
		}
	}
	return string(b)
}
