package watch

import (
	"cmp"
	"slices"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// settleWindow is how long before the newest run seen a run may still turn up
// for the first time: runs created within the same few moments can become
// visible in the listing in another order than their created_at says, and
// runs created in the same millisecond are ordered by nothing at all. Runs
// this close to the newest one are remembered by ID; older ones are known by
// their created_at alone, which is what keeps memory independent of history.
const settleWindow = time.Minute

// forgetAfter is how many complete listings a run in flight may be missing
// from before it is forgotten: one absence can be a page that shifted while
// it was read, two in a row mean the API stopped listing it.
const forgetAfter = 2

// tracker decides, for one session, which runs to count, so that each run is
// counted once however often and in whatever order it is seen. It holds no
// Prometheus types and is not safe for concurrent use.
//
// Its memory is bounded by what is in flight, not by history: it remembers
// the runs not yet final, the final runs created within settleWindow of the
// newest run seen (the watermark), and while a full listing is under way the
// runs that finished during it. Any other run older than the watermark was
// seen before and needs no memory: it is history.
//
// The first full listing is the baseline: runs already final then ended
// before the exporter watched and are not counted, unless they ended after
// the watch began. Runs not yet final are remembered and counted when they
// are first seen final; nothing about a run is counted twice.
type tracker struct {
	watchStart time.Time
	// baselined reports whether the first full listing has completed.
	baselined bool

	// newest is the watermark: the newest created_at seen by a listing that
	// reached the runs known before it; runs not in flight older than it by
	// settleWindow are history, known without being remembered. seenNewest is
	// the newest seen at all; it becomes the watermark when such a listing
	// completes (advance).
	newest, seenNewest time.Time
	// prunedAt is seenNewest when recent was last pruned during the baseline.
	prunedAt time.Time

	inflight map[string]*inflightRun
	// recent holds the final runs created at or after newest−settleWindow,
	// by ID, with their created_at.
	recent idSet
	// countedAtBaseline holds, while the baseline is being listed, the runs
	// it counted (those that ended after the watch began), so that a page
	// shifting under a long baseline cannot count one twice.
	countedAtBaseline map[string]struct{}
	// undated holds the runs seen without a created_at, which the watermark
	// cannot place: a malformed field, so they should stay few.
	undated map[string]struct{}

	// finals are the final runs the API lists, by status (in the order of
	// feishu.FinalStatuses), as of the last complete listing plus what
	// finished since.
	finals feishu.ByFinal[int]
	sweep  *sweepTally // non-nil while a full listing is under way

	pass        uint64 // the current listing pass (beginPass)
	newRuns     int64  // runs first seen after the baseline, to estimate list positions
	lastCreated time.Time
	appIDs      []string
}

// inflightRun is what the tracker keeps of a run not yet final.
type inflightRun struct {
	created time.Time
	status  feishu.RunStatus
	started bool // queue time observed, or judged to have started before the watch
	missed  uint8
	// seenPass is the pass (tracker.pass) that last saw the run.
	seenPass uint64
	// inSweep: the run was in flight when the current full listing began,
	// so that listing must see it; seenBySweep: it did.
	inSweep, seenBySweep bool
	// pos is the run's position in the listing when last seen (0 = first),
	// and newRunsAtPos tracker.newRuns at that moment.
	pos, newRunsAtPos int64
	// metadata is the run's metadata as first seen (keptMetadata): its
	// start and end are reported with it, so that they are counted under
	// the metadata labels its creation was.
	metadata string
}

// sweepTally counts a full listing spread over one or more polls.
type sweepTally struct {
	finals feishu.ByFinal[int]
	// finished are the runs the tracker saw finish while the listing was
	// under way: counted apart, so that the listing seeing one of them final
	// does not count it a second time.
	finished map[string]feishu.RunStatus
}

// runTiming is a run the tracker reports, with the time to observe for it.
type runTiming struct {
	Run feishu.Run
	// Seconds is the duration to observe, never negative (clock skew counts
	// as 0). It is meaningful only when Timed is true.
	Seconds float64
	// Timed is false when a timestamp the duration needs is missing; the run
	// is then counted but left out of the histograms.
	Timed bool
}

// Observation is what sightings add to a session's counters.
type Observation struct {
	// Finished are runs seen final for the first time: count each in
	// aily_runs_finished_total and observe ended_at − started_at.
	Finished []runTiming
	// Started are runs seen started for the first time: observe
	// started_at − created_at.
	Started []runTiming
	// Created are runs created since the session began to be watched.
	Created []feishu.Run
}

// empty reports whether the observation counts nothing.
func (o *Observation) empty() bool {
	return len(o.Finished) == 0 && len(o.Started) == 0 && len(o.Created) == 0
}

// newTracker returns a tracker for a session whose watch began at watchStart.
func newTracker(watchStart time.Time) *tracker {
	return &tracker{watchStart: watchStart}
}

// len returns how many runs the tracker remembers.
func (t *tracker) len() int {
	return len(t.inflight) + t.recent.len() + len(t.countedAtBaseline) + len(t.undated)
}

// inFlight returns how many runs are not yet final.
func (t *tracker) inFlight() int { return len(t.inflight) }

// see takes one sighting of a run, from any listing or a get-run, and adds to
// obs what it counts. inSweep says the sighting is part of a full listing
// (between startSweep and endSweep), which tallies it for aily_runs.
func (t *tracker) see(r *feishu.Run, inSweep bool, obs *Observation) {
	if r.ID == "" {
		// Without an ID a run cannot be told apart from the others: it is
		// never counted.
		return
	}
	if r.CreatedAt.After(t.seenNewest) {
		t.seenNewest = r.CreatedAt
		if !t.baselined && t.seenNewest.Sub(t.prunedAt) > settleWindow {
			// A baseline listed oldest first sees every run as the newest
			// so far: prune as it goes, or it would remember them all.
			t.prune()
			t.prunedAt = t.seenNewest
		}
	}
	if r.CreatedAt.After(t.lastCreated) {
		t.lastCreated = r.CreatedAt
	}
	if r.AppID != "" && !slices.Contains(t.appIDs, r.AppID) {
		// A new slice, never changed after: State hands it out.
		ids := append(slices.Clone(t.appIDs), r.AppID)
		slices.Sort(ids)
		t.appIDs = ids
	}

	switch ir, ok := t.inflight[r.ID]; {
	case ok:
		ir.seenPass = t.pass
		if inSweep {
			ir.seenBySweep = true
		}
		t.again(r, ir, obs)
	case t.isKnownFinal(r):
	case r.CreatedAt.IsZero():
		// Without created_at the watermark cannot place the run: it is
		// remembered by ID instead.
		if _, seen := t.undated[r.ID]; seen {
			return
		}
		if t.undated == nil {
			t.undated = make(map[string]struct{})
		}
		t.undated[r.ID] = struct{}{}
		if t.baselined {
			t.newRuns++
		}
		t.first(r, !t.baselined, obs)
	case !t.baselined:
		t.first(r, true, obs)
	case r.CreatedAt.Before(t.newest.Add(-settleWindow)) && r.Status.Final():
		// Older than the watermark and final: seen before, and settled then.
	case r.CreatedAt.Before(t.newest.Add(-settleWindow)):
		// In flight, older than the watermark, and not known: a listing
		// that could not be checked passed it by. It is followed to its
		// end like a new run.
		t.newRuns++
		t.first(r, false, obs)
	default:
		t.newRuns++
		t.first(r, false, obs)
	}

	if inSweep && t.sweep != nil && r.Status.Final() {
		if _, ok := t.sweep.finished[r.ID]; !ok {
			t.sweep.finals[finalIndex(r.Status)]++
		}
	}
}

// isKnownFinal reports whether r is a final run the tracker remembers.
func (t *tracker) isKnownFinal(r *feishu.Run) bool {
	if t.recent.has(r.ID) {
		return true
	}
	_, ok := t.countedAtBaseline[r.ID]
	return ok
}

// first judges a run seen for the first time. Its events count only when they
// happened after the watch began; an event whose time is unknown counts only
// after the baseline, where the run is news.
func (t *tracker) first(r *feishu.Run, baseline bool, obs *Observation) {
	if t.after(r.CreatedAt, baseline) {
		obs.Created = append(obs.Created, *r)
	}
	started := !r.StartedAt.IsZero()
	if started && r.StartedAt.After(t.watchStart) {
		obs.Started = append(obs.Started, queueTiming(r))
	}
	if !r.Status.Final() {
		if t.inflight == nil {
			t.inflight = make(map[string]*inflightRun)
		}
		t.inflight[r.ID] = &inflightRun{created: r.CreatedAt, status: r.Status, started: started, seenPass: t.pass,
			metadata: keptMetadata(r.Metadata)}
		return
	}
	counted := t.after(endBound(r), baseline)
	if counted {
		obs.Finished = append(obs.Finished, durationTiming(r))
	}
	if baseline {
		if counted {
			if t.countedAtBaseline == nil {
				t.countedAtBaseline = make(map[string]struct{})
			}
			t.countedAtBaseline[r.ID] = struct{}{}
		}
	} else {
		t.finished(r)
	}
	t.remember(r)
}

// again updates a run in flight that is seen again.
func (t *tracker) again(r *feishu.Run, ir *inflightRun, obs *Observation) {
	ir.missed = 0
	if !ir.started && !r.StartedAt.IsZero() {
		ir.started = true
		st := queueTiming(r)
		st.Run.Metadata = ir.metadata
		obs.Started = append(obs.Started, st)
	}
	if !r.Status.Final() {
		ir.status = r.Status
		return
	}
	f := durationTiming(r)
	f.Run.Metadata = ir.metadata
	obs.Finished = append(obs.Finished, f)
	delete(t.inflight, r.ID)
	if t.baselined {
		t.finished(r)
	} else if t.sweep != nil {
		t.sweep.finished[r.ID] = r.Status
	}
	t.remember(r)
}

// finished notes a run seen final for the first time after the baseline.
func (t *tracker) finished(r *feishu.Run) {
	t.finals[finalIndex(r.Status)]++
	if t.sweep != nil {
		t.sweep.finished[r.ID] = r.Status
	}
}

// remember keeps a final run's ID while it is close enough to the watermark
// to be seen again as if it were new.
func (t *tracker) remember(r *feishu.Run) {
	if r.CreatedAt.IsZero() || r.CreatedAt.Before(t.pruneHorizon()) {
		return
	}
	t.recent.add(r.ID, r.CreatedAt)
}

// pruneHorizon is the oldest created_at of the runs remembered by ID: settleWindow
// before the watermark, or before the newest run seen while the baseline is
// being listed.
func (t *tracker) pruneHorizon() time.Time {
	if !t.baselined {
		return t.seenNewest.Add(-settleWindow)
	}
	return t.newest.Add(-settleWindow)
}

// horizon returns, after the baseline, the created_at before which a run not
// remembered is history; zero before it.
func (t *tracker) horizon() time.Time {
	if !t.baselined {
		return time.Time{}
	}
	return t.pruneHorizon()
}

// advance moves the watermark to the newest run seen, but not past now: a
// run stamped in the future (an API clock ahead of ours) must not make every
// run created until then look like history. Call it only after a listing has
// read every run created since the watermark: runs older than it are from
// then on taken as seen.
func (t *tracker) advance(now time.Time) {
	if !t.baselined {
		return
	}
	t.moveWatermark(now)
}

func (t *tracker) moveWatermark(now time.Time) {
	n := t.seenNewest
	if n.After(now) {
		n = now
	}
	if n.After(t.newest) {
		t.newest = n
	}
	t.prune()
}

// prune forgets the remembered final runs that fell behind the horizon.
func (t *tracker) prune() {
	t.recent.pruneBefore(t.pruneHorizon())
}

// sweeping reports whether a full listing is under way.
func (t *tracker) sweeping() bool { return t.sweep != nil }

// startSweep begins a full listing. The runs in flight now must all be seen
// by it, or are counted missing when it completes.
func (t *tracker) startSweep() {
	t.sweep = &sweepTally{finished: make(map[string]feishu.RunStatus)}
	for _, ir := range t.inflight {
		ir.inSweep, ir.seenBySweep = true, false
	}
}

// abandonSweep drops a full listing that cannot be completed (its page token
// stopped working); what it saw was counted, its tally is dropped.
func (t *tracker) abandonSweep() {
	t.sweep = nil
	for _, ir := range t.inflight {
		ir.inSweep = false
	}
}

// endSweep completes a full listing: aily_runs' final statuses become what it
// listed plus what finished while it ran, runs in flight it did not see are
// counted missing (and forgotten after forgetAfter listings), and the first
// one is the baseline.
func (t *tracker) endSweep(now time.Time) { t.closeSweep(now, true) }

// endUncheckedSweep completes a full listing one of whose page boundaries
// could not be checked, so that a run may have slipped between two pages:
// as endSweep, but the watermark stays where it was (unless this is the
// baseline, which has none), so that such a run still counts when a later
// listing shows it.
func (t *tracker) endUncheckedSweep(now time.Time) { t.closeSweep(now, !t.baselined) }

func (t *tracker) closeSweep(now time.Time, advance bool) {
	s := t.sweep
	if s == nil {
		return
	}
	t.sweep = nil
	finals := s.finals
	for _, st := range s.finished {
		finals[finalIndex(st)]++
	}
	t.finals = finals
	for id, ir := range t.inflight {
		if !ir.inSweep {
			continue
		}
		ir.inSweep = false
		if ir.seenBySweep {
			continue
		}
		ir.missed++
		if ir.missed >= forgetAfter {
			delete(t.inflight, id)
		}
	}
	if !t.baselined {
		t.baselined = true
		t.countedAtBaseline = nil
	}
	if advance {
		t.moveWatermark(now)
	}
}

// aboutToBeForgotten returns the runs in flight that the listing under way
// has not shown (the full listing when sweep, else the current pass) and
// that its completion would forget, sorted.
func (t *tracker) aboutToBeForgotten(sweep bool) []string {
	var ids []string
	for id, ir := range t.inflight {
		missing := ir.seenPass != t.pass
		if sweep {
			missing = ir.inSweep && !ir.seenBySweep
		}
		if missing && ir.missed+1 >= forgetAfter {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// setPosition records where a run in flight stands in the listing.
func (t *tracker) setPosition(id string, pos int64) {
	if ir, ok := t.inflight[id]; ok {
		ir.pos, ir.newRunsAtPos = pos, t.newRuns
	}
}

// position estimates where a run in flight stands in the listing now: where
// it was last seen, pushed down by the runs created since when the listing
// is newest first.
func (t *tracker) position(id string, newestFirst bool) int64 {
	ir, ok := t.inflight[id]
	if !ok {
		return 0
	}
	if newestFirst {
		return ir.pos + t.newRuns - ir.newRunsAtPos
	}
	return ir.pos
}

// beginPass starts a listing pass; unseen then tells which runs in flight
// it has not seen yet.
func (t *tracker) beginPass() { t.pass++ }

// endCompletePass ends a pass that read every page: the runs in flight it did
// not see count as missing, and are forgotten after forgetAfter listings
// without them, as after a full listing.
func (t *tracker) endCompletePass() {
	for id, ir := range t.inflight {
		if ir.seenPass == t.pass {
			continue
		}
		ir.missed++
		if ir.missed >= forgetAfter {
			delete(t.inflight, id)
		}
	}
}

// unseen returns the runs in flight the current pass has not seen, oldest
// first.
func (t *tracker) unseen() []string {
	var ids []string
	for id, ir := range t.inflight {
		if ir.seenPass != t.pass {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if c := t.inflight[a].created.Compare(t.inflight[b].created); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return ids
}

// CurrentRuns are a session's current runs as the tracker knows them.
type CurrentRuns struct {
	// Final counts the final runs the API lists, in the order of
	// feishu.FinalStatuses(), as of the last complete listing plus what
	// finished since.
	Final feishu.ByFinal[int]
	// InFlight counts the runs not final by status, exactly; nil when none.
	InFlight map[feishu.RunStatus]int
	// Oldest is the created_at of the oldest run in each status in flight;
	// nil when none.
	Oldest      map[feishu.RunStatus]time.Time
	LastCreated time.Time
	AppIDs      []string // not to be changed: shared with the tracker
}

// Runs returns the runs in each status, final or not.
func (s *CurrentRuns) Runs() map[feishu.RunStatus]int {
	m := make(map[feishu.RunStatus]int, len(s.Final)+len(s.InFlight))
	for i, st := range feishu.FinalStatuses() {
		m[st] = s.Final[i]
	}
	for st, n := range s.InFlight {
		m[st] += n
	}
	return m
}

// current returns the session's current runs.
func (t *tracker) current() CurrentRuns {
	s := CurrentRuns{Final: t.finals, LastCreated: t.lastCreated, AppIDs: t.appIDs}
	for _, ir := range t.inflight {
		if s.InFlight == nil {
			s.InFlight = make(map[feishu.RunStatus]int, 3)
			s.Oldest = make(map[feishu.RunStatus]time.Time, 3)
		}
		st := ir.status
		if st == "" {
			st = unknownStatus
		}
		s.InFlight[st]++
		if ir.created.IsZero() {
			continue
		}
		if o, ok := s.Oldest[st]; !ok || ir.created.Before(o) {
			s.Oldest[st] = ir.created
		}
	}
	return s
}

// finalIndex returns the index of a final status; the tracker counts only
// runs whose status is final.
func finalIndex(st feishu.RunStatus) feishu.FinalIndex {
	i, _ := feishu.FinalIndexOf(st)
	return i
}

// unknownStatus labels runs listed with no status at all.
const unknownStatus feishu.RunStatus = "unknown"

// after reports whether an event at ts of a run seen for the first time
// happened after the watch began. An unknown time (zero) counts as after
// unless this is the baseline, where runs are history unless shown otherwise.
func (t *tracker) after(ts time.Time, baseline bool) bool {
	if ts.IsZero() {
		return !baseline
	}
	return ts.After(t.watchStart)
}

// endBound returns the latest time a final run is known to have ended at or
// after: ended_at, else started_at, else created_at (zero if none is known).
// A lower bound after the watch start proves the run ended after it; one
// before proves nothing, and the run is then not counted, which is the safe
// side for a counter that must never jump.
func endBound(r *feishu.Run) time.Time {
	switch {
	case !r.EndedAt.IsZero():
		return r.EndedAt
	case !r.StartedAt.IsZero():
		return r.StartedAt
	}
	return r.CreatedAt
}

func durationTiming(r *feishu.Run) runTiming { return timing(*r, r.StartedAt, r.EndedAt) }

func queueTiming(r *feishu.Run) runTiming { return timing(*r, r.CreatedAt, r.StartedAt) }

// timing measures from..to; a missing end leaves the run untimed and a
// negative span (clocks that disagree) counts as 0.
func timing(r feishu.Run, from, to time.Time) runTiming {
	if from.IsZero() || to.IsZero() {
		return runTiming{Run: r}
	}
	s := to.Sub(from).Seconds()
	if s < 0 {
		s = 0
	}
	return runTiming{Run: r, Seconds: s, Timed: true}
}

// idSet is a set of run IDs with their created_at. Most sessions remember
// none or a few runs, for which a short slice costs far less than a map; a
// busy session switches to a map.
type idSet struct {
	small []idAt
	big   map[string]int64
}

type idAt struct {
	id      string
	created int64 // Unix nanoseconds
}

// smallSet is how many IDs the slice holds before the set becomes a map.
const smallSet = 16

func (s *idSet) len() int { return len(s.small) + len(s.big) }

// each calls fn with every ID and its created_at in Unix nanoseconds.
func (s *idSet) each(fn func(id string, created int64)) {
	for _, e := range s.small {
		fn(e.id, e.created)
	}
	for id, c := range s.big {
		fn(id, c)
	}
}

func (s *idSet) has(id string) bool {
	if s.big != nil {
		_, ok := s.big[id]
		return ok
	}
	for i := range s.small {
		if s.small[i].id == id {
			return true
		}
	}
	return false
}

func (s *idSet) add(id string, created time.Time) {
	if s.has(id) {
		return
	}
	c := created.UnixNano()
	if s.big == nil && len(s.small) < smallSet {
		s.small = append(s.small, idAt{id, c})
		return
	}
	if s.big == nil {
		s.big = make(map[string]int64, 2*smallSet)
		for _, e := range s.small {
			s.big[e.id] = e.created
		}
		s.small = nil
	}
	s.big[id] = c
}

// pruneBefore forgets the IDs created before h.
func (s *idSet) pruneBefore(h time.Time) {
	cut := h.UnixNano()
	if s.big != nil {
		for id, c := range s.big {
			if c < cut {
				delete(s.big, id)
			}
		}
		if len(s.big) <= smallSet/2 {
			small := make([]idAt, 0, len(s.big))
			for id, c := range s.big {
				small = append(small, idAt{id, c})
			}
			s.small, s.big = small, nil
		}
		return
	}
	s.small = slices.DeleteFunc(s.small, func(e idAt) bool { return e.created < cut })
	if len(s.small) == 0 {
		s.small = nil
	}
}
