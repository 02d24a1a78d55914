// Package watch keeps watch over Aily sessions within the Feishu API's
// budget: which sessions are due for a poll (the polling policy in
// docs/polling.md), how a poll reads only what changed since the last one
// (incremental listing, in either listing order), which runs to count so
// that each is counted exactly once, and the counts themselves. Each session
// owns its tracker, listing position and counts, saved and restored as one
// unit (State). It knows nothing about Prometheus metrics; the collector
// package turns snapshots of what it holds into metrics.
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
)

// Options configure a Watcher. A zero value means "none" where none is a
// setting (MinInterval, RateLimit) and takes the default given where it is
// not; the command line's defaults are in docs/configuration.md.
type Options struct {
	// MinInterval: a session polled less than this ago is not polled again,
	// whoever scrapes (HA Prometheus pairs); it is also how often a session
	// with runs in flight, or a new run within IdleAfter, is due. 0 (or
	// negative) means none: a due session is polled at every scrape.
	MinInterval time.Duration
	// IdleAfter: a session with no run in flight and no new run for this
	// long is idle. Default 10m.
	IdleAfter time.Duration
	// IdleInterval is how often an idle session is polled, and the cap of a
	// failing session's back-off. Default 5m.
	IdleInterval time.Duration
	// FullInterval is how often a session is listed in full, as a safety
	// net for incremental listing. Default 6h.
	FullInterval time.Duration
	// RateLimit is each app's request budget, in requests per second of the
	// scrape's time; 0 means no budget but the deadline.
	RateLimit float64
	// Concurrency is how many sessions are polled at once; default 4.
	Concurrency int
	// Timeout bounds a Poll whose context has no deadline; default 10s.
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger is told when a session starts failing, fails differently or
	// recovers (warn and info), and of every failure at debug level.
	Logger log.Logger
	// DurationBuckets are the classic buckets of the run duration and queue
	// histograms, in seconds; default histogram.DefaultBuckets().
	DurationBuckets []float64
	// Saver, when set, is given the state by SaveChanged and Save.
	Saver Saver
}

// Defaults of Options.
const (
	defaultIdleAfter    = 10 * time.Minute
	defaultIdleInterval = 5 * time.Minute
	defaultFullInterval = 6 * time.Hour
	DefaultConcurrency  = 4
	defaultTimeout      = 10 * time.Second
)

// App is one configured Feishu app: its name (the app label), its API
// client, the sessions to watch with it, and how its runs are counted.
type App struct {
	Name     string
	API      API
	Sessions []string
	// PerSession false sums the app's counts over its sessions (its run
	// metrics have no session_id label: many sessions, few series).
	PerSession bool
	// Identity names where the app's runs come from (its credentials' app,
	// the API's address); saved state is restored only under the same one.
	Identity string
	// DailyBudget is the list and get-run requests the app may make a day
	// on average; 0 means no average cap (only Options.RateLimit).
	DailyBudget float64
	// MetadataLabels are top-level keys of the runs' metadata JSON whose
	// values label the app's run counters and histograms (metadata.go);
	// MetadataLabelLimit is how many distinct values of each have series
	// of their own, DefaultMetadataLabelLimit when 0.
	MetadataLabels     []string
	MetadataLabelLimit int
}

// Watcher watches the configured sessions. It is safe for concurrent use.
type Watcher struct {
	opts Options

	mu       sync.Mutex // guards the fields below
	apps     map[string]*app
	sessions []*Session // sorted by app, then ID
	overdue  map[string]int
	daily    map[string]*dailyBudget // by app
	// restored are the sessions to carry on from, until SetApps.
	restored map[SessionKey]*restoredSession

	// countMu guards the counts of every session and app, their hold
	// marks (hold.go), the apps' error codes and failed runs, and failLog.
	// It is taken after a session's lock, never before.
	countMu sync.Mutex
	failLog failureLog

	// commitMu is held for reading while a poll records its outcome, and
	// for writing by a save, so that a save sees every poll whole or not
	// at all, with the counts it added.
	commitMu sync.RWMutex
	commits  atomic.Uint64 // polls recorded so far
	counted  atomic.Uint64 // of those, polls that counted something
	releases atomic.Uint64 // releases of held counts (Release)
	saving   saving

	// observed, when set, is told what each poll counted (tests).
	observed func(*Session, *Observation)
}

// app is what the watcher keeps of a configured app.
type app struct {
	name   string
	api    API // guarded by Watcher.mu
	health appHealth

	// Guarded by Watcher.countMu:
	identity   string
	perSession bool
	codes      map[string]struct{} // error codes with their own series, at most maxFailureCodes
	total      counts              // the app's counts when !perSession
	// labels are its metadata labels and their admitted values; nil when
	// it has none. Set under Watcher.mu too, which ServeApps reads it by.
	labels *metadataLabels
	// unready is how a new app's known series (of its sessions, or its
	// sums) have been served while they are not ready for their first
	// increment; nil once they are (hold.go).
	unready *servedMark
	failed  failedRing // its most recent failed runs
}

// New returns a Watcher that watches no session until SetApps.
func New(opts Options) *Watcher {
	opts.MinInterval = max(opts.MinInterval, 0)
	if opts.IdleAfter <= 0 {
		opts.IdleAfter = defaultIdleAfter
	}
	if opts.IdleInterval <= 0 {
		opts.IdleInterval = defaultIdleInterval
	}
	if opts.FullInterval <= 0 {
		opts.FullInterval = defaultFullInterval
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if len(opts.DurationBuckets) == 0 {
		opts.DurationBuckets = histogram.DefaultBuckets()
	}
	w := &Watcher{opts: opts, apps: map[string]*app{}, overdue: map[string]int{}, daily: map[string]*dailyBudget{}}
	w.failLog.logger = opts.Logger
	return w
}

// Now returns the time by the watcher's clock.
func (w *Watcher) Now() time.Time { return w.opts.Now() }

// Timeout returns how long a Poll whose context has no deadline may take.
func (w *Watcher) Timeout() time.Duration { return w.opts.Timeout }

// DurationBuckets returns the classic buckets of the run histograms.
func (w *Watcher) DurationBuckets() []float64 { return w.opts.DurationBuckets }

// SetApps sets the apps and sessions to watch, at start and on every reload.
// A session configured for the first time is due at once, and its watch
// begins now. Sessions that stay keep their state and counts; the sessions
// that go lose them, and are marked so that no poll still running counts
// anything more for them. An app whose per_session changes starts its counts
// afresh, under the new labels.
//
// The known series of what is new (an app, or a session added to an app
// with per_session: true) are not ready for a first increment: what is
// counted for them is held until scrapes have served them at zero (hold.go).
func (w *Watcher) SetApps(apps []App) {
	now := w.opts.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	// countMu is taken after a session's lock, never before: the sessions
	// that go are marked once it is released.
	w.countMu.Lock()
	countLocked := true
	defer func() {
		if countLocked {
			w.countMu.Unlock()
		}
	}()

	old := make(map[SessionKey]*Session, len(w.sessions))
	for _, s := range w.sessions {
		old[SessionKey{s.app.name, s.id}] = s
	}
	mark := &servedMark{}
	newApps := make(map[string]*app, len(apps))
	kept := make(map[SessionKey]bool)
	var sessions []*Session
	for _, a := range apps {
		ap := w.apps[a.Name]
		// The sessions new to an app that stays per session wait on their
		// own; those of a new app wait with it.
		markNew := a.PerSession && ap != nil && ap.perSession
		switch {
		case ap == nil:
			ap = &app{name: a.Name}
			ap.resetCounts(a.PerSession, a.MetadataLabels, mark)
		case ap.perSession != a.PerSession || !slices.Equal(ap.labelKeys(), a.MetadataLabels):
			ap.resetCounts(a.PerSession, a.MetadataLabels, mark)
			for _, s := range w.sessions {
				if s.app == ap {
					s.counts, s.unready, s.finishedHere = nil, nil, feishu.ByFinal[float64]{}
				}
			}
		}
		ap.identity = a.Identity
		ap.api = a.API
		if ap.labels != nil {
			ap.labels.limit = cmp.Or(a.MetadataLabelLimit, defaultMetadataLabelLimit)
		}
		newApps[a.Name] = ap
		if d := w.daily[a.Name]; d != nil {
			d.set(a.DailyBudget, now)
		} else {
			w.daily[a.Name] = newDailyBudget(a.DailyBudget, now)
		}
		for _, id := range a.Sessions {
			k := SessionKey{a.Name, id}
			if kept[k] || id == "" {
				continue
			}
			kept[k] = true
			s := old[k]
			if s == nil {
				rs := w.restored[k]
				s = w.newSession(ap, id, rs, now)
				if markNew && (rs == nil || !rs.counted || rs.holding) {
					s.unready = mark
				}
			}
			sessions = append(sessions, s)
		}
	}

	for name := range w.overdue {
		if newApps[name] == nil {
			delete(w.overdue, name)
		}
	}
	for name := range w.daily {
		if newApps[name] == nil {
			delete(w.daily, name)
		}
	}
	w.failLog.forget(func(app string) bool { return newApps[app] != nil })
	slices.SortFunc(sessions, func(a, b *Session) int {
		return cmp.Or(cmp.Compare(a.app.name, b.app.name), cmp.Compare(a.id, b.id))
	})
	w.apps, w.sessions = newApps, sessions
	// Records of sessions no longer configured are dropped with them.
	w.restored = nil
	w.countMu.Unlock()
	countLocked = false
	for k, s := range old {
		if kept[k] {
			continue
		}
		s.mu.Lock()
		s.removed = true
		s.mu.Unlock()
	}
}

// resetCounts starts the app's counts afresh, its sessions' with them: it
// is new, or its per_session or metadata labels changed (its series change
// shape). Its known series wait for their first increment on mark. w.mu and
// w.countMu are held.
func (a *app) resetCounts(perSession bool, labels []string, mark *servedMark) {
	a.perSession = perSession
	a.labels = nil
	if len(labels) > 0 {
		a.labels = newMetadataLabels(labels, defaultMetadataLabelLimit)
	}
	a.codes = make(map[string]struct{})
	a.total = counts{}
	a.unready = mark
}

// labelKeys returns the app's metadata labels; nil when none.
func (a *app) labelKeys() []string {
	if a.labels == nil {
		return nil
	}
	return a.labels.keys
}

// newSession returns a session configured for the first time, or carrying
// on from its restored record rs. w.mu and w.countMu are held.
func (w *Watcher) newSession(ap *app, id string, rs *restoredSession, now time.Time) *Session {
	s := &Session{app: ap, id: id}
	if rs != nil {
		if rs.counted {
			s.counts = rs.counts
		}
		err := s.restore(rs.record)
		if err == nil {
			return s
		}
		level.Warn(w.opts.Logger).Log("msg", "Starting a session afresh: its saved state is unusable",
			"app", ap.name, "session_id", id, "err", err)
		s = &Session{app: ap, id: id, counts: s.counts}
	}
	s.added, s.tracker = now, tracker{watchStart: now}
	s.cursor.nextFull = now.Add(fullListingOffset(ap.name, id, w.opts.FullInterval))
	return s
}

// candidate is a session due for a poll.
type candidate struct {
	s     *Session
	api   API
	class int
	// key orders candidates within a class, highest first: how long
	// overdue, or the expected value of a poll (freshness policy).
	key float64
	// turn is the candidate's place among its app's candidates of its class
	// (0 first): a class is polled in turns over the apps.
	turn int
}

// Poll polls sessions in the order of the freshness policy (docs/polling.md,
// "Which sessions a scrape polls"): sessions never polled first, then those with a baseline
// under way or runs in flight, then those past the staleness target
// (Options.IdleInterval), most stale first, then the others by the expected
// value of a poll. It spends what each app's request budget allows: the
// scrape's share of the rate limit and of the daily budget, within ctx's
// deadline. It waits for the polls and for those other scrapes started. A
// session polled less than Options.MinInterval ago is not polled again.
// Polls run on after ctx is cancelled, for scrapes sharing them, but never
// past its deadline.
//
// It returns the sessions whose poll ctx's deadline cut off: the scrape
// reports them down. Their state is left as it was (what the poll counted
// is kept), so that one request's short deadline does not decide what other
// scrapers are served: they go on seeing the last state.
func (w *Watcher) Poll(ctx context.Context) (cutOff map[SessionKey]bool) {
	now := w.opts.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(w.opts.Timeout)
	}
	pctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)

	cands, waits := w.plan(now)
	budgets := w.budgets(cands, time.Until(deadline), now)
	overdue := &tally{n: make(map[string]int)}
	late := func(c candidate) {
		if c.class == classNew || c.class == classStale {
			overdue.add(c.s.app.name)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, w.opts.Concurrency)
	var started []*Session
start:
	for i, c := range cands {
		b := budgets[c.s.app.name]
		pb := b.startPoll()
		if pb == nil {
			late(c)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-pctx.Done():
			pb.refund()
			for _, c := range cands[i:] {
				late(c)
			}
			break start
		}
		done, ok := c.s.begin(pctx, deadline)
		if !ok {
			pb.refund()
			<-sem
			continue
		}
		started = append(started, c.s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var api API = budgetedAPI{API: c.api, b: pb}
			if c.api == nil {
				api = nil
			}
			switch w.pollSession(pctx, c.s, api, done) {
			case budgetCut, deadlineCut:
				late(c)
			}
		}()
	}

	all := make(chan struct{})
	go func() {
		wg.Wait()
		for _, ch := range waits {
			select {
			case <-ch:
			case <-pctx.Done():
			}
		}
		close(all)
	}()
	// Once every poll is done, what they did not spend goes back to the
	// daily budgets: at once when they are done by now, so that the next
	// scrape finds it there.
	finish := func() {
		cancel()
		for _, b := range budgets {
			b.settle(w.opts.Now())
		}
	}
	select {
	case <-all:
		finish()
	case <-ctx.Done():
		go func() { <-all; finish() }()
	}

	cutApps := make(map[*app]bool)
	for _, s := range started {
		s.mu.Lock()
		cut := s.cutBy == pctx || (s.polling != nil && s.pollCtx == pctx)
		s.mu.Unlock()
		if cut {
			if cutOff == nil {
				cutOff = make(map[SessionKey]bool)
			}
			cutOff[SessionKey{s.app.name, s.id}] = true
		}
		cutApps[s.app] = cutApps[s.app] || cut
	}
	// The cut-offs are logged as they happen (pollSession), their end here:
	// a scrape none of whose polls of the app was cut off.
	for a, cut := range cutApps {
		if !cut {
			a.health.notCut(log.With(w.opts.Logger, "app", a.name))
		}
	}

	overdue.mu.Lock()
	defer overdue.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, a := range w.apps {
		n := overdue.n[name]
		if a.health.credentialFails() {
			// Its sessions are failing, not over budget: what is wrong is
			// the credential, which the app's log line and token state say.
			n = 0
		}
		w.overdue[name] = n
	}
	return cutOff
}

// SessionKey names a session: its app and ID.
type SessionKey struct{ App, ID string }

// tally counts per app, safely for concurrent polls.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *tally) add(app string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n[app]++
}

// The classes of candidates, polled in this order.
const (
	classNew    = iota // never polled
	classActive        // baseline under way, or runs in flight
	classStale         // past the staleness target
	classRest          // by the expected value of a poll
)

// plan returns the sessions that may be polled now, in the order to poll
// them, and the polls other scrapes have under way.
func (w *Watcher) plan(now time.Time) ([]candidate, []chan struct{}) {
	w.mu.Lock()
	sessions := w.sessions
	w.mu.Unlock()

	activeEvery := w.activeEvery(sessions)
	var cands []candidate
	var waits []chan struct{}
	for _, s := range sessions {
		s.mu.Lock()
		switch {
		case s.polling != nil:
			waits = append(waits, s.polling)
		case s.removed:
		default:
			if class, key, ok := s.rank(&w.opts, now, activeEvery[s.app]); ok {
				cands = append(cands, candidate{s: s, class: class, key: key})
			}
		}
		s.mu.Unlock()
	}
	w.mu.Lock()
	for i := range cands {
		cands[i].api = cands[i].s.app.api
	}
	w.mu.Unlock()
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.class, b.class), cmp.Compare(b.key, a.key),
			cmp.Compare(a.s.app.name, b.s.app.name), cmp.Compare(a.s.id, b.s.id))
	})
	// Within a class the apps take turns: each app's first candidate, then
	// each one's second, and so on. Each app has a rate limit of its own,
	// and --feishu.concurrency polls at once for the whole process: in one
	// app's order they would all wait on that app's limit while the other
	// apps' limits go unused.
	type classApp struct {
		class int
		app   *app
	}
	turns := make(map[classApp]int)
	for i := range cands {
		k := classApp{cands[i].class, cands[i].s.app}
		cands[i].turn = turns[k]
		turns[k]++
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.class, b.class), cmp.Compare(a.turn, b.turn))
	})
	return cands, waits
}

// activeShare bounds how often a session with runs in flight is polled when
// the budget is tight: at most activeShare times per round robin over the
// app's sessions (its sessions ÷ its average rate), so that sessions with
// runs in flight, polled every Options.MinInterval while the budget allows,
// cannot starve the others. 2 keeps the freshness benchmark's p99 within
// 1.5 × the round-robin bound (docs/performance.md, "Freshness within the
// daily budget").
const activeShare = 2

// activeEvery returns, per app, how often a session with runs in flight is
// polled: Options.MinInterval, or 1/activeShare of the time a round robin
// over the app's sessions takes at its average rate (the daily budget's, or
// the rate limit's), whichever is longer.
func (w *Watcher) activeEvery(sessions []*Session) map[*app]time.Duration {
	count := make(map[*app]int)
	for _, s := range sessions {
		count[s.app]++
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[*app]time.Duration, len(count))
	for a, n := range count {
		rate := w.opts.RateLimit
		if d := w.daily[a.name]; d != nil && d.perDay > 0 {
			if r := d.perDay / (24 * time.Hour).Seconds(); rate <= 0 || r < rate {
				rate = r
			}
		}
		every := w.opts.MinInterval
		if rate > 0 {
			every = max(every, time.Duration(float64(n)/rate/activeShare*float64(time.Second)))
		}
		out[a] = every
	}
	return out
}

// budgets returns each app's request budget for a scrape with left to go:
// what the rate limit lets through by the deadline, within what the daily
// budget has to spend now.
func (w *Watcher) budgets(cands []candidate, left time.Duration, now time.Time) map[string]*budget {
	due := make(map[string]int)
	for _, c := range cands {
		due[c.s.app.name]++
	}
	w.mu.Lock()
	daily := make(map[string]*dailyBudget, len(due))
	for name := range due {
		daily[name] = w.daily[name]
	}
	w.mu.Unlock()
	budgets := make(map[string]*budget, len(due))
	for name, n := range due {
		b := &budget{unlimited: w.opts.RateLimit <= 0}
		if !b.unlimited {
			// What the client-side limiter lets through by the deadline: a
			// full burst (as many as the rate, refilled between scrapes),
			// then the rate.
			b.left = max(int(w.opts.RateLimit*(left.Seconds()+1)), 1)
		}
		if d := daily[name]; d != nil {
			want := b.left
			if b.unlimited {
				want = math.MaxInt32
			}
			if got, unlimited := d.reserve(want, now); !unlimited {
				b.unlimited, b.left, b.reserved = false, got, got
			}
			b.daily = d
		}
		// One poll may spend at most half of it while others wait, so
		// that a long baseline cannot take every request of a scrape.
		b.perPoll = b.left
		if n > 1 {
			b.perPoll = max(b.left/2, 1)
		}
		budgets[name] = b
	}
	return budgets
}

// Budgets returns what each app's daily budget stands at.
func (w *Watcher) Budgets() map[string]BudgetStatus {
	now := w.opts.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]BudgetStatus, len(w.daily))
	for name, d := range w.daily {
		out[name] = d.status(now)
	}
	return out
}

// begin marks the session as being polled; false if it already is or was
// removed.
func (s *Session) begin(ctx context.Context, deadline time.Time) (chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.polling != nil || s.removed {
		return nil, false
	}
	s.polling, s.pollCtx, s.pollDeadline = make(chan struct{}), ctx, deadline
	// What a save writes while this poll holds the tracker: the session as
	// it was before, consistent with the counters, to which the poll adds
	// only when it ends.
	s.saved = s.record()
	return s.polling, true
}

// pollOutcome is how a poll ended.
type pollOutcome int

const (
	pollDone    pollOutcome = iota // done, successfully or not (the zero value)
	budgetCut                      // the request budget ran out: progress kept, still due
	deadlineCut                    // the scrape's deadline cut it: progress kept, still due
)

// errCutOff is the error of a poll still under way at its scrape's deadline.
var errCutOff = errors.New("poll cut off by the scrape deadline")

// pollSession polls one session and records the outcome.
func (w *Watcher) pollSession(ctx context.Context, s *Session, api API, done chan struct{}) (outcome pollOutcome) {
	outcome = pollDone
	start := w.opts.Now()
	p := &poll{ctx: ctx, api: api, id: s.id, t: &s.tracker, c: &s.cursor, now: start, full: w.opts.FullInterval}
	var err error
	if api == nil {
		err = fmt.Errorf("app %s has no API client", s.app.name)
	} else {
		err = p.run()
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, errBudget) {
		outcome = deadlineCut
		err = fmt.Errorf("%w: %w", errCutOff, err)
	}
	took := w.opts.Now().Sub(start)

	w.commitMu.RLock()
	defer w.commitMu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(done)
	defer w.commits.Add(1)
	s.polling, s.pollCtx = nil, nil
	if !s.removed && !p.obs.empty() {
		w.count(s, &p.obs, w.opts.Now())
		if w.observed != nil {
			w.observed(s, &p.obs)
		}
		w.counted.Add(1)
		level.Debug(w.opts.Logger).Log("msg", "Counted runs", "app", s.app.name, "session_id", s.id,
			"created", createdIDs(p.obs.Created), "started", timedIDs(p.obs.Started), "finished", timedIDs(p.obs.Finished))
	}
	t := &s.tracker
	s.baselined, s.inflight, s.tracked = t.baselined, t.inFlight(), t.len()
	if p.newRuns {
		s.lastNewRun = start
	}
	if changes := len(p.obs.Created) + len(p.obs.Started) + len(p.obs.Finished); changes > 0 && t.baselined {
		s.noteActivity(&w.opts, start, changes)
	}
	s.lastCreated = t.lastCreated
	s.saved = nil
	if outcome == deadlineCut {
		// Its state stays as it was, for other scrapers; the scrape whose
		// deadline it was reports it down.
		s.cutBy = ctx
		s.app.health.cut(log.With(w.opts.Logger, "app", s.app.name), err)
		level.Debug(w.opts.Logger).Log("msg", "A poll was cut off by the scrape deadline", "app", s.app.name,
			"session_id", s.id, "err", err)
		if t.baselined {
			w.setView(s)
		}
		return deadlineCut
	}
	if errors.Is(err, errBudget) {
		outcome = budgetCut
		if p.requests <= 1 {
			// Not reached after all: it stays due, and first in line.
			return budgetCut
		}
		err = nil // it read what the budget allowed and goes on next time
	}
	s.lastPoll, s.took = start, took
	w.logOutcome(s, err)
	s.polled, s.err, s.cutBy = true, err, nil
	if err != nil {
		s.failures++
		return outcome
	}
	s.failures = 0
	if t.baselined {
		if outcome != budgetCut {
			s.lastSuccess = start
		}
		w.setView(s)
	}
	return outcome
}

// setView makes the tracker's current runs what the session shows, and
// keeps the undocumented statuses among them (noteStatuses). s.mu is held.
func (w *Watcher) setView(s *Session) {
	st := s.tracker.current()
	s.view = &st
	if !s.removed {
		w.noteStatuses(s, st.InFlight)
	}
}

// createdIDs and timedIDs print the IDs of an observation's runs in a debug
// line (which runs were counted, for tracing a count back to the API's
// answers), and only when the line is logged.
type (
	createdIDs []feishu.Run
	timedIDs   []runTiming
)

func (c createdIDs) String() string {
	return joinIDs(len(c), func(i int) string { return c[i].ID })
}

func (t timedIDs) String() string {
	return joinIDs(len(t), func(i int) string { return t[i].Run.ID })
}

// maxLoggedIDs bounds the line of a poll that counted a long history (a
// baseline of runs that ended after the watch began).
const maxLoggedIDs = 1000

func joinIDs(n int, id func(int) string) string {
	b := make([]byte, 0, 16*min(n, maxLoggedIDs))
	for i := range min(n, maxLoggedIDs) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, id(i)...)
	}
	if n > maxLoggedIDs {
		b = fmt.Appendf(b, ",+%d", n-maxLoggedIDs)
	}
	return string(b)
}

// logOutcome logs a poll's outcome when it changes the session's health: a
// first failure, a different failure, a recovery. Repeats go to debug, so
// that a broken app does not flood the log. A failure every session of the
// app shares (appWide) is logged once for the app, and so is its end; the
// session's lines about it go to debug. s.mu is held.
func (w *Watcher) logOutcome(s *Session, err error) {
	al := log.With(w.opts.Logger, "app", s.app.name)
	l := log.With(al, "session_id", s.id)
	if appWide(err) {
		s.app.health.failed(al, err)
	} else {
		s.app.health.works(al)
	}
	changed := err != nil && (s.err == nil || errorKey(s.err) != errorKey(err))
	switch {
	case changed && !appWide(err):
		level.Warn(l).Log("msg", "Polling a session failed", "err", err)
	case changed:
		level.Debug(l).Log("msg", "Polling a session failed", "err", err)
	case err != nil:
		level.Debug(l).Log("msg", "Polling a session failed again", "failures", s.failures+1, "err", err)
	case s.err != nil && !appWide(s.err):
		level.Info(l).Log("msg", "Polling a session works again", "after_failures", s.failures)
	case s.err != nil:
		level.Debug(l).Log("msg", "Polling a session works again", "after_failures", s.failures)
	}
}

// EachSnapshot calls fn with what each configured session shows now, in
// order of app and ID. fn must not keep the snapshot.
func (w *Watcher) EachSnapshot(fn func(*Snapshot)) {
	w.eachSnapshot(func(_ *Session, snap *Snapshot) { fn(snap) })
}

// eachSnapshot calls fn with each configured session and what it shows now,
// in order of app and ID, all as of one instant.
func (w *Watcher) eachSnapshot(fn func(*Session, *Snapshot)) {
	w.mu.Lock()
	sessions := w.sessions
	w.mu.Unlock()
	now := w.opts.Now()
	for _, s := range sessions {
		snap := s.snapshot(&w.opts, now)
		fn(s, &snap)
	}
}

// Overdue returns, per app, the sessions the last Poll found due but could
// not reach.
func (w *Watcher) Overdue() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.overdue))
	for k, v := range w.overdue {
		out[k] = v
	}
	return out
}

// budget is an app's request budget for one scrape.
type budget struct {
	mu        sync.Mutex
	unlimited bool
	left      int
	perPoll   int
	spent     int
	// reserved is what was taken out of daily for this scrape.
	reserved int
	daily    *dailyBudget
}

// settle gives the daily budget what the scrape did not spend and records
// what it did.
func (b *budget) settle(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.daily != nil {
		b.daily.settle(b.reserved, b.spent, now)
		b.daily, b.reserved = nil, 0
	}
}

// startPoll returns the share of the budget one poll may spend, with its
// first request taken at once, so that polls started together cannot start
// more polls than the budget pays for; nil when the budget is spent.
func (b *budget) startPoll() *pollBudget {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unlimited {
		return &pollBudget{b: b, left: b.perPoll}
	}
	if b.left <= 0 {
		return nil
	}
	b.left--
	b.spent++
	return &pollBudget{b: b, left: b.perPoll - 1, prepaid: true}
}

type pollBudget struct {
	b       *budget
	left    int
	prepaid bool // the first request is paid for
}

// refund gives back the first request of a poll that did not start.
func (p *pollBudget) refund() {
	if !p.prepaid {
		return
	}
	p.prepaid = false
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	p.b.left++
	p.b.spent--
}

// take spends one request, or reports that the budget is spent. prepaid
// says that it was the poll's first request, paid for by startPoll.
func (p *pollBudget) take() (ok, prepaid bool) {
	if p.prepaid {
		p.prepaid = false
		return true, true
	}
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.unlimited {
		b.spent++
		return true, false
	}
	if b.left <= 0 || p.left <= 0 {
		return false, false
	}
	b.left--
	p.left--
	b.spent++
	return true, false
}

// untake gives back a request that take spent but that was not sent.
func (p *pollBudget) untake(prepaid bool) {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.spent--
	if b.unlimited {
		return
	}
	b.left++
	if !prepaid {
		p.left++
	}
}

// budgetedAPI is an API that stops at a request budget.
type budgetedAPI struct {
	API
	b *pollBudget
}

func (a budgetedAPI) ListRunsPage(ctx context.Context, sessionID, pageToken string) (feishu.RunsPage, error) {
	return withinBudget(a.b, func() (feishu.RunsPage, error) { return a.API.ListRunsPage(ctx, sessionID, pageToken) })
}

func (a budgetedAPI) GetRun(ctx context.Context, sessionID, runID string) (feishu.Run, error) {
	return withinBudget(a.b, func() (feishu.Run, error) { return a.API.GetRun(ctx, sessionID, runID) })
}

// withinBudget makes the request call if b has a request left, and gives the
// request back when it was not sent.
func withinBudget[T any](b *pollBudget, call func() (T, error)) (T, error) {
	ok, prepaid := b.take()
	if !ok {
		var none T
		return none, errBudget
	}
	v, err := call()
	if notSent(err) {
		b.untake(prepaid)
	}
	return v, err
}

// notSent reports whether err says that the request was not sent: the app's
// credential failed before it could be. Such a request costs no budget, so
// that an app whose credential fails has every session polled (and failing
// at once), none of them overdue.
func notSent(err error) bool {
	var ce *feishu.CredentialError
	return errors.As(err, &ce) && !ce.Refused
}
