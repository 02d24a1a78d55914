package watch

import (
	"context"
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// SessionState is a session's polling state, as aily_sessions reports it.
type SessionState string

// The polling states of a session.
const (
	// Pending: its baseline (the first full listing) has not completed.
	Pending SessionState = "pending"
	// Active: a run in flight, or a new run within Options.IdleAfter.
	Active SessionState = "active"
	// Idle: neither; polled every Options.IdleInterval.
	Idle SessionState = "idle"
	// Failing: its most recent poll failed.
	Failing SessionState = "failing"
)

// SessionStates returns every state, in the order they are reported.
func SessionStates() []SessionState { return []SessionState{Pending, Active, Idle, Failing} }

// Session is a watched session: its runs' exactly-once state, where its
// listing stands, when it is due, and what it counted.
type Session struct {
	app *app
	id  string

	mu      sync.Mutex // guards the fields below; never held during a request
	removed bool       // no longer configured: count nothing more
	polling chan struct{}
	// The tracker and cursor belong to the poll under way, if any; between
	// polls to whoever holds mu.
	tracker tracker
	cursor  cursor

	added       time.Time // when the session was first configured: due at once
	lastPoll    time.Time // start of the most recent poll
	lastSuccess time.Time // start of the most recent successful poll (baseline complete)
	lastNewRun  time.Time // when a poll last saw a run new after the baseline
	lastCreated time.Time // created_at of the newest run seen
	took        time.Duration
	// activity is the session's recent change rate (per second) as of
	// activitySince, which the freshness policy reads (pollValue).
	activity      float64
	activitySince time.Time
	failures      int   // failed polls in a row
	err           error // of the most recent poll
	polled        bool  // a poll has finished
	view          *CurrentRuns
	// saved is the session's record (but its counts) as it was when the
	// poll under way began, what a save writes while the poll holds the
	// tracker; nil between polls, when the record is made from the tracker
	// itself, so that an idle session does not carry a copy of its state.
	saved *Record
	// pollCtx is the context of the poll under way; cutBy that of the
	// last poll a deadline cut off, until a poll ends otherwise.
	pollCtx, cutBy context.Context
	// pollDeadline is the deadline of the poll under way: past it, the poll
	// is reported cut off even if the API has not let go of it yet.
	pollDeadline time.Time

	// What the tracker said when the last poll ended, so that the schedule
	// and scrapes can read it while a poll holds the tracker.
	baselined bool
	inflight  int
	tracked   int

	// Guarded by Watcher.countMu, not mu:
	//
	// counts are the session's counts when its app has per_session: true;
	// nil until it counts something. unready is how its known series have
	// been served while they wait for their first increment, when it was
	// added to an app already watched (hold.go); nil once they are ready.
	// finishedHere counts, when its app's counts are summed, the runs it
	// saw finish since the exporter started, for the status page.
	counts       *counts
	unready      *servedMark
	finishedHere feishu.ByFinal[float64]
}

// ID returns the session's ID.
func (s *Session) ID() string { return s.id }

// App returns the name of the session's app.
func (s *Session) App() string { return s.app.name }

// rank tells whether the session may be polled now and where it stands in
// line: its class and, within the class, its key (highest first). s.mu is
// held.
//
// activeEvery is how often a session with runs in flight is polled: every
// Options.MinInterval while the budget allows it, longer when the app's
// budget is too small for that (planAhead), so that sessions with runs in
// flight cannot starve the others.
func (s *Session) rank(o *Options, now time.Time, activeEvery time.Duration) (class int, key float64, ok bool) {
	if s.lastPoll.IsZero() {
		// Never polled: first in line, longest waiting first.
		return classNew, now.Sub(s.added).Seconds(), true
	}
	every := o.MinInterval
	if s.failures > 0 && !feishu.IsCredential(s.err) {
		// A session whose app's credential fails is not backed off on its
		// own: the app's token is (feishu), and a poll meanwhile fails at
		// once without a request, so that the first poll after a renewal
		// that works comes at once, not a session back-off later, while
		// runs may end and leave the listing.
		every = max(backoff(o.MinInterval, o.IdleInterval, s.failures), o.MinInterval)
	}
	stale := now.Sub(s.lastPoll)
	if stale < every {
		return 0, 0, false
	}
	switch {
	case !s.baselined:
		return classActive, stale.Seconds(), true
	case s.inflight > 0 && stale >= activeEvery:
		return classActive, stale.Seconds(), true
	case stale >= o.IdleInterval:
		return classStale, stale.Seconds(), true
	}
	return classRest, s.pollValue(o, now, stale), true
}

// quietRate is the change rate assumed of a session with no activity seen:
// about one change a day, so that its poll's value still grows with
// staleness.
const quietRate = 1.0 / (24 * 60 * 60)

// pollValue is the expected value of polling the session now: the
// likelihood that it changed since its last poll, from its recent activity
// (a Poisson rate), times how stale it is. s.mu is held.
func (s *Session) pollValue(o *Options, now time.Time, stale time.Duration) float64 {
	rate := s.activityAt(o, now) + quietRate
	st := stale.Seconds()
	return -math.Expm1(-rate*st) * st
}

// activityAt returns the session's recent change rate, per second, decayed
// to now with the time constant Options.IdleAfter. s.mu is held.
func (s *Session) activityAt(o *Options, now time.Time) float64 {
	if s.activity == 0 {
		return 0
	}
	return s.activity * math.Exp(-now.Sub(s.activitySince).Seconds()/o.IdleAfter.Seconds())
}

// noteActivity adds a poll's changes (runs created, started, finished) to
// the session's change rate. s.mu is held.
func (s *Session) noteActivity(o *Options, at time.Time, changes int) {
	s.activity = s.activityAt(o, at) + float64(changes)/o.IdleAfter.Seconds()
	s.activitySince = at
}

// backoff is the wait after n failed polls in a row: the min interval,
// doubled for each failure after the first, at most the idle interval.
func backoff(minInterval, idleInterval time.Duration, n int) time.Duration {
	d := max(minInterval, time.Second)
	for i := 1; i < n && d < idleInterval; i++ {
		d *= 2
	}
	return min(d, max(idleInterval, minInterval))
}

// state returns the session's polling state. s.mu is held.
func (s *Session) state(o *Options, now time.Time) SessionState {
	switch {
	case s.failures > 0:
		return Failing
	case !s.baselined:
		return Pending
	case s.inflight > 0:
		return Active
	case now.Sub(s.lastNewRun) < o.IdleAfter, now.Sub(s.lastCreated) < o.IdleAfter:
		// A new run seen lately, or a run created lately (by the API's
		// clock) even if the baseline is what saw it.
		return Active
	}
	return Idle
}

// fullListingOffset spreads the safety-net full listings of sessions
// baselined together over the full interval, by the session's ID.
func fullListingOffset(app, id string, every time.Duration) time.Duration {
	if every <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(app))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	return time.Duration(h.Sum64() % uint64(every))
}

// Snapshot is what a session shows at a scrape.
type Snapshot struct {
	App, ID string
	State   SessionState
	// Polled is false until a poll finished; Up, Err and PollDuration are
	// those of the most recent one.
	Polled       bool
	Up           bool
	Err          error
	PollDuration time.Duration
	// LastSuccess is when the last successful poll began; zero before the
	// baseline completes.
	LastSuccess time.Time
	// Runs is the session's current runs as of its last successful poll;
	// nil while its baseline is incomplete or its most recent poll failed.
	Runs *CurrentRuns
	// Tracked is how many runs the session remembers.
	Tracked int
	// Counts are the session's counts, when its app has per_session: true
	// and a scrape serves them (ServeSnapshots); nil otherwise.
	Counts *CountsView
}

// snapshot returns what the session shows now.
func (s *Session) snapshot(o *Options, now time.Time) Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{
		App: s.app.name, ID: s.id,
		Polled: s.polled, Up: s.polled && s.err == nil, Err: s.err, PollDuration: s.took,
		LastSuccess: s.lastSuccess, State: s.state(o, now), Tracked: s.tracked,
	}
	// Deadlines are wall-clock time, whatever Options.Now says.
	if s.polling != nil && !s.pollDeadline.IsZero() && !time.Now().Before(s.pollDeadline) {
		snap.Polled, snap.Up, snap.Err, snap.State = true, false, errCutOff, Failing
	}
	if snap.Up {
		snap.Runs = s.view
	}
	return snap
}
