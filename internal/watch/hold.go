package watch

import (
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
)

// Prometheus cannot see the first value of a series: increase() and rate()
// start from it. So no counter or histogram series is first shown above zero
// (docs/metrics.md, "First increments"):
//
//   - The known series of a session (runs finished by final status, runs
//     created, the duration histogram of each final status and the queue
//     histogram) are served, at zero, from the moment the session is
//     configured; the app's sums with per_session: false likewise.
//   - A series that appears later, the failures of an error code new to the
//     session, is served at zero first.
//   - Until a series has been served at zero in two scrapes, the first at
//     least holdFor ago, what is counted for it is held (counts.held), and
//     shown at the first scrape after that (Release). The known series of a session
//     configured before the last two scrapes are ready at once; a session
//     configured now, the baseline's counts included, waits.
//
// Two scrapes, not one, so that a second Prometheus of an HA pair (or a
// curl of /metrics) that happened to serve the zero does not keep the
// other from seeing it.
//
// Which series are ready is a fact about the counts, saved with them: the
// watcher keeps it, and a scrape tells it what it served (ServeSnapshots,
// ServeApps).

// servedMark is how series that wait for their first increment have been
// served so far: since when, and in how many scrapes. One mark may stand for
// many series served together (the known series of the sessions configured
// at one time).
type servedMark struct {
	first   time.Time // when a scrape first served them
	scrapes int       // distinct scrapes that served them, counted up to readyAfterScrapes
	last    uint64    // the number of the last of those scrapes
}

// readyAfterScrapes is how many scrapes must have served a series at zero
// before its first increment is shown.
const readyAfterScrapes = 2

// serve notes that the scrape numbered scrape served the series at now.
func (m *servedMark) serve(scrape uint64, now time.Time) {
	if m.scrapes > 0 && m.last == scrape {
		return
	}
	if m.scrapes == 0 {
		m.first = now
	}
	m.last = scrape
	m.scrapes = min(m.scrapes+1, readyAfterScrapes)
}

// ready reports whether the series may show their first increment at now.
func (m *servedMark) ready(now time.Time, hold time.Duration) bool {
	return m.scrapes >= readyAfterScrapes && now.Sub(m.first) >= hold
}

// holdFor is how long after a scrape first served a series at zero its
// first increment waits at least: Options.MinInterval, within which the
// scrapes of an HA pair share a poll.
func (w *Watcher) holdFor() time.Duration { return w.opts.MinInterval }

// holding returns the counts that hold cs's increments until their series
// are ready, made on first use.
func (cs *counts) holding() *Counts {
	if cs.held == nil {
		cs.held = &Counts{}
	}
	return cs.held
}

// countFailure counts a FAILED run with the error code: at once when the
// code's series is ready, else held until it is.
func (cs *counts) countFailure(code string, ex histogram.Exemplar) {
	if _, shown := cs.Failures[code]; shown && cs.newCodes[code] == nil {
		cs.Failures[code]++
	} else {
		h := cs.holding()
		if h.Failures == nil {
			h.Failures = make(map[string]float64)
		}
		h.Failures[code]++
		if cs.newCodes == nil {
			cs.newCodes = make(map[string]*servedMark)
		}
		if cs.newCodes[code] == nil {
			cs.newCodes[code] = &servedMark{}
		}
	}
	if cs.FailureExemplars == nil {
		cs.FailureExemplars = make(map[string]histogram.Exemplar)
	}
	cs.FailureExemplars[code] = ex
}

// observeDuration observes the duration of a run that finished in the final
// status of index i.
func (cs *Counts) observeDuration(i feishu.FinalIndex, seconds float64, ex histogram.Exemplar, buckets []float64) {
	if cs.Duration[i] == nil {
		cs.Duration[i] = histogram.New(buckets)
	}
	cs.Duration[i].ObserveWithExemplar(seconds, ex)
}

// observeQueue observes the queue time of a run that started.
func (cs *Counts) observeQueue(seconds float64, buckets []float64) {
	if cs.Queue == nil {
		cs.Queue = histogram.New(buckets)
	}
	cs.Queue.Observe(seconds)
}

// releaseKnown shows the held increments of the known series; it reports
// whether there were any.
func (cs *counts) releaseKnown() bool {
	h := cs.held
	if h == nil || h.heldNothingKnown() {
		return false
	}
	for i, n := range h.Finished {
		cs.Finished[i] += n
		if d := h.Duration[i]; d != nil {
			if cs.Duration[i] == nil {
				cs.Duration[i] = d
			} else {
				cs.Duration[i].Add(d)
			}
		}
	}
	cs.Created += h.Created
	if h.Queue != nil {
		if cs.Queue == nil {
			cs.Queue = h.Queue
		} else {
			cs.Queue.Add(h.Queue)
		}
	}
	if len(h.Failures) == 0 {
		cs.held = nil
	} else {
		cs.held = &Counts{Failures: h.Failures}
	}
	return true
}

// releaseCodes shows the held failures of the error codes whose series are
// ready at now; it reports whether there were any.
func (cs *counts) releaseCodes(now time.Time, hold time.Duration) bool {
	moved := false
	for code, m := range cs.newCodes {
		if !m.ready(now, hold) {
			continue
		}
		if cs.Failures == nil {
			cs.Failures = make(map[string]float64)
		}
		if cs.held != nil {
			cs.Failures[code] += cs.held.Failures[code]
			delete(cs.held.Failures, code)
		}
		delete(cs.newCodes, code)
		moved = true
	}
	if len(cs.newCodes) == 0 {
		cs.newCodes = nil
	}
	if h := cs.held; h != nil && len(h.Failures) == 0 && h.heldNothingKnown() {
		cs.held = nil
	}
	return moved
}

// serveNew notes that the scrape numbered scrape served at now the series of
// cs that wait for their first increment: of the error codes new to it, and
// of the metadata label values new to it.
func (cs *counts) serveNew(scrape uint64, now time.Time) {
	for _, m := range cs.newCodes {
		m.serve(scrape, now)
	}
	for _, lc := range cs.labelled {
		if lc.unready != nil {
			lc.unready.serve(scrape, now)
		}
		lc.serveNew(scrape, now)
	}
}

// releaseLabelled shows the held increments of the counts of each set of
// metadata label values whose series are ready at now: its known series
// when knownReady (those of cs are) and its own are, its error codes as
// those of cs. It reports whether there were any.
func (cs *counts) releaseLabelled(now time.Time, hold time.Duration, knownReady bool) bool {
	moved := false
	for _, lc := range cs.labelled {
		if lc.unready != nil && lc.unready.ready(now, hold) {
			lc.unready = nil
		}
		if lc.held != nil && knownReady && lc.unready == nil && lc.releaseKnown() {
			moved = true
		}
		if lc.newCodes != nil && lc.releaseCodes(now, hold) {
			moved = true
		}
	}
	return moved
}

// heldNothingKnown reports whether the held counts h hold nothing for the
// known series.
func (h *Counts) heldNothingKnown() bool {
	return h.Finished == feishu.ByFinal[float64]{} && h.Created == 0 && h.Duration == feishu.ByFinal[*histogram.Histogram]{} && h.Queue == nil
}

// knownReady reports whether the known series of s (of its app, when its
// run metrics are summed) are ready for their first increment.
// Watcher.countMu is held.
func (s *Session) knownReady() bool {
	return s.app.unready == nil && (!s.app.perSession || s.unready == nil)
}

// Release shows the held increments of every series that is ready at now. A
// scrape calls it after its polls and before it saves and answers: when it
// released something, the state is saved before the scrape answers (a count
// reaches /metrics only once it is on disk). It also logs the summary of the
// failed runs left out of the log whose second has passed.
func (w *Watcher) Release(now time.Time) {
	hold := w.holdFor()
	w.mu.Lock()
	sessions, apps := w.sessions, w.apps
	w.mu.Unlock()
	w.countMu.Lock()
	defer w.countMu.Unlock()
	w.failLog.flush(now)
	for _, s := range sessions {
		if s.unready != nil && s.unready.ready(now, hold) {
			s.unready = nil
		}
	}
	for _, a := range apps {
		if a.unready != nil && a.unready.ready(now, hold) {
			a.unready = nil
		}
	}
	moved := false
	for _, s := range sessions {
		cs := s.counts
		if cs == nil {
			continue
		}
		if cs.held != nil && s.knownReady() && cs.releaseKnown() {
			moved = true
		}
		if cs.newCodes != nil && cs.releaseCodes(now, hold) {
			moved = true
		}
		if cs.labelled != nil && cs.releaseLabelled(now, hold, s.knownReady()) {
			moved = true
		}
	}
	for _, a := range apps {
		if a.perSession {
			continue
		}
		if a.unready == nil && a.total.releaseKnown() {
			moved = true
		}
		if a.total.newCodes != nil && a.total.releaseCodes(now, hold) {
			moved = true
		}
		if a.total.labelled != nil && a.total.releaseLabelled(now, hold, a.unready == nil) {
			moved = true
		}
	}
	if moved {
		w.releases.Add(1)
	}
}
