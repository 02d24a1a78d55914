package collector

import (
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// forgetAfter is how many consecutive successful listings a run must be
// absent from before the tracker forgets it. One absence is not enough: the
// API pages by offset, so a run created while a session is being paged shifts
// every later run one place down and a run at a page boundary can be skipped
// once (and another seen twice). Forgetting it then would make it look new when
// it shows up again. Three absences in a row no longer look like a shifting
// page but like a run the API stopped listing.
const forgetAfter = 3

// Tracker decides, for one session, which runs to count, so that each run is
// counted once however often it is listed. It is fed every successful listing
// of the session in order and holds no Prometheus types. It is not safe for
// concurrent use.
//
// The first listing is the baseline: runs already final then ended before the
// exporter watched and are not counted, unless they ended after the watch
// began. Runs not yet final are remembered and counted when they are first seen
// final; after that nothing about them is counted again.
type Tracker struct {
	watchStart time.Time
	// since is the moment before which events of a run seen for the first time
	// are taken to be history rather than news: the start of the watch, moved
	// later to the newest timestamp of any run forgotten so far, so that a
	// forgotten run that the API lists again is not counted a second time.
	since     time.Time
	baselined bool
	listings  uint64 // successful listings observed
	runs      map[string]trackedRun
}

// trackedRun is what the tracker remembers of a run between listings.
type trackedRun struct {
	lastListed uint64    // the listing (Tracker.listings) that last showed the run
	final      bool      // counted as finished, or judged to have finished before the watch
	started    bool      // queue time observed, or judged to have started before the watch
	latest     time.Time // the run's newest timestamp, to move Tracker.since when forgotten
}

// RunTiming is a run the tracker reports, with the time to observe for it.
type RunTiming struct {
	Run feishu.Run
	// Seconds is the duration to observe, never negative (clock skew counts
	// as 0). It is meaningful only when Timed is true.
	Seconds float64
	// Timed is false when a timestamp the duration needs is missing; the run
	// is then counted but left out of the histograms.
	Timed bool
}

// Observation is what one listing adds to a session's counters.
type Observation struct {
	// Finished are runs seen final for the first time: count each in
	// aily_runs_finished_total and observe ended_at − started_at.
	Finished []RunTiming
	// Started are runs seen started for the first time: observe
	// started_at − created_at.
	Started []RunTiming
	// Created are runs created since the session began to be watched.
	Created []feishu.Run
}

// NewTracker returns a tracker for a session whose watch began at watchStart:
// the moment the session was first configured.
func NewTracker(watchStart time.Time) *Tracker {
	return &Tracker{
		watchStart: watchStart,
		since:      watchStart,
		runs:       make(map[string]trackedRun),
	}
}

// WatchStart returns the moment the session began to be watched.
func (t *Tracker) WatchStart() time.Time { return t.watchStart }

// Len returns how many runs the tracker remembers.
func (t *Tracker) Len() int { return len(t.runs) }

// Observe takes one successful listing of the session, taken at now, and
// returns what it adds to the counters. Failed listings must not be passed in:
// a run's absence from one would be taken as the API no longer listing it.
func (t *Tracker) Observe(listing []feishu.Run, now time.Time) Observation {
	var obs Observation
	t.listings++
	baseline := !t.baselined
	t.baselined = true

	for i := range listing {
		r := &listing[i]
		if r.ID == "" {
			// Without an ID a run cannot be told apart from the others, so it
			// can be shown in aily_runs but never counted.
			continue
		}
		tr, known := t.runs[r.ID]
		if !known {
			tr = t.first(r, baseline, &obs)
		} else {
			t.again(r, &tr, &obs)
		}
		tr.lastListed = t.listings
		if l := latest(r); l.After(tr.latest) {
			tr.latest = l
		}
		t.runs[r.ID] = tr
	}

	for id, tr := range t.runs {
		if t.listings-tr.lastListed >= forgetAfter {
			delete(t.runs, id)
			// Capped at now: a run stamped in the future (a skewed API clock)
			// must not stop every later run from being counted.
			l := tr.latest
			if l.After(now) {
				l = now
			}
			if l.After(t.since) {
				t.since = l
			}
		}
	}
	return obs
}

// first judges a run the tracker has no memory of: seen at the baseline,
// created since the last listing, or listed again after being forgotten. Its
// events count only when they happened after t.since; an event whose time is
// unknown counts only after the baseline, where the run is news.
func (t *Tracker) first(r *feishu.Run, baseline bool, obs *Observation) trackedRun {
	var tr trackedRun
	if t.after(r.CreatedAt, baseline) {
		obs.Created = append(obs.Created, *r)
	}
	if !r.StartedAt.IsZero() {
		tr.started = true
		if r.StartedAt.After(t.since) {
			obs.Started = append(obs.Started, queueTiming(r))
		}
	}
	if r.Status.Final() {
		tr.final = true
		tr.started = true // a final run is never observed starting later
		if t.after(endBound(r), baseline) {
			obs.Finished = append(obs.Finished, durationTiming(r))
		}
	}
	return tr
}

// again updates a run the tracker remembers: whatever it was not yet seen
// doing, it is seen doing now, so it counts whatever its timestamps say.
func (t *Tracker) again(r *feishu.Run, tr *trackedRun, obs *Observation) {
	if tr.final {
		// The first final status wins: a run listed again (a shifted page, a
		// duplicate in one listing) or changing from one final status to
		// another is not counted again.
		return
	}
	if !tr.started && !r.StartedAt.IsZero() {
		tr.started = true
		obs.Started = append(obs.Started, queueTiming(r))
	}
	if r.Status.Final() {
		tr.final = true
		tr.started = true
		obs.Finished = append(obs.Finished, durationTiming(r))
	}
}

// after reports whether an event at ts of a run seen for the first time
// happened after t.since. An unknown time (zero) counts as after unless this
// is the baseline, where runs are history unless shown otherwise.
func (t *Tracker) after(ts time.Time, baseline bool) bool {
	if ts.IsZero() {
		return !baseline
	}
	return ts.After(t.since)
}

// endBound returns the latest time a final run is known to have ended at or
// after: ended_at, else started_at, else created_at (zero if none is known).
// A lower bound after t.since proves the run ended after it; one before proves
// nothing, and the run is then not counted, which is the safe side for a
// counter that must never jump.
func endBound(r *feishu.Run) time.Time {
	switch {
	case !r.EndedAt.IsZero():
		return r.EndedAt
	case !r.StartedAt.IsZero():
		return r.StartedAt
	}
	return r.CreatedAt
}

// latest returns the newest timestamp a run carries.
func latest(r *feishu.Run) time.Time {
	l := r.CreatedAt
	if r.StartedAt.After(l) {
		l = r.StartedAt
	}
	if r.EndedAt.After(l) {
		l = r.EndedAt
	}
	return l
}

func durationTiming(r *feishu.Run) RunTiming {
	return timing(*r, r.StartedAt, r.EndedAt)
}

func queueTiming(r *feishu.Run) RunTiming {
	return timing(*r, r.CreatedAt, r.StartedAt)
}

// timing measures from..to; a missing end leaves the run untimed and a
// negative span (clocks that disagree) counts as 0.
func timing(r feishu.Run, from, to time.Time) RunTiming {
	if from.IsZero() || to.IsZero() {
		return RunTiming{Run: r}
	}
	s := to.Sub(from).Seconds()
	if s < 0 {
		s = 0
	}
	return RunTiming{Run: r, Seconds: s, Timed: true}
}
