package watch

import (
	"context"
	"hash/fnv"
	"sync"
	"time"
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
// listing stands and when it is due.
type Session struct {
	app *app
	id  string

	mu      sync.Mutex // guards the fields below; never held during a request
	removed bool       // no longer configured: count nothing more
	polling chan struct{}
	// The tracker and cursor belong to the poll under way, if any; between
	// polls to whoever holds mu.
	tracker Tracker
	cursor  cursor

	added       time.Time // when the session was first configured: due at once
	lastPoll    time.Time // start of the most recent poll
	lastSuccess time.Time // start of the most recent successful poll (baseline complete)
	lastNewRun  time.Time // when a poll last saw a run new after the baseline
	lastCreated time.Time // created_at of the newest run seen
	took        time.Duration
	failures    int   // failed polls in a row
	err         error // of the most recent poll
	polled      bool  // a poll has finished
	view        *State
	// saved is the session's record as it was when the poll under way
	// began, what a save writes while the poll holds the tracker; nil
	// between polls, when the record is made from the tracker itself, so
	// that an idle session does not carry a copy of its state.
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
}

// ID returns the session's ID.
func (s *Session) ID() string { return s.id }

// App returns the name of the session's app.
func (s *Session) App() string { return s.app.name }

// due returns when the session is next due for a poll, and its class: 0 for
// sessions without a baseline or with runs in flight, polled first, 1 for
// the others. s.mu is held.
func (s *Session) due(o *Options, now time.Time) (time.Time, int) {
	class := 1
	if !s.baselined || s.inflight > 0 {
		class = 0
	}
	if s.lastPoll.IsZero() {
		return s.added, class
	}
	var every time.Duration
	switch {
	case s.failures > 0:
		every = backoff(o.MinInterval, o.IdleInterval, s.failures)
	case s.state(o, now) == Idle:
		every = o.IdleInterval
	default:
		every = o.MinInterval
	}
	return s.lastPoll.Add(max(every, o.MinInterval)), class
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
	Runs *State
	// Tracked is how many runs the session remembers.
	Tracked int
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
