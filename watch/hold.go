package collector

import (
	"time"

	"github.com/aily-exporter/aily_exporter/watch"
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
//     shown at the first scrape after that. The known series of a session
//     configured before the last two scrapes are ready at once; a session
//     configured now, the baseline's counts included, waits.
//
// Two scrapes, not one, so that a second Prometheus of an HA pair (or a
// curl of /metrics) that happened to serve the zero does not keep the
// other from seeing it.

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
// first increment waits at least: --poll.min-interval, within which the
// scrapes of an HA pair share a poll.
func (c *Collector) holdFor() time.Duration {
	d := c.opts.Watch.MinInterval
	if d == 0 {
		d = watch.DefaultMinInterval
	}
	return max(d, 0)
}

// holding returns the counts that hold cs's increments until their series
// are ready, made on first use.
func (cs *counts) holding() *counts {
	if cs.held == nil {
		cs.held = &counts{}
	}
	return cs.held
}

// countFailure counts a FAILED run with the error code: at once when the
// code's series is ready, else held until it is.
func (cs *counts) countFailure(code string, ex exemplar) {
	if _, shown := cs.failures[code]; shown && cs.newCodes[code] == nil {
		cs.failures[code]++
	} else {
		h := cs.holding()
		if h.failures == nil {
			h.failures = make(map[string]float64)
		}
		h.failures[code]++
		if cs.newCodes == nil {
			cs.newCodes = make(map[string]*servedMark)
		}
		if cs.newCodes[code] == nil {
			cs.newCodes[code] = &servedMark{}
		}
	}
	if cs.failureExemplar == nil {
		cs.failureExemplar = make(map[string]exemplar)
	}
	cs.failureExemplar[code] = ex
}

// observeDuration observes the duration of a run that finished in the final
// status of index i.
func (cs *counts) observeDuration(i int, seconds float64, ex exemplar, buckets []float64) {
	if cs.duration[i] == nil {
		cs.duration[i] = newHistogram(buckets)
	}
	cs.duration[i].observeWithExemplar(seconds, ex)
}

// observeQueue observes the queue time of a run that started.
func (cs *counts) observeQueue(seconds float64, buckets []float64) {
	if cs.queue == nil {
		cs.queue = newHistogram(buckets)
	}
	cs.queue.observe(seconds)
}

// releaseKnown shows the held increments of the known series; it reports
// whether there were any.
func (cs *counts) releaseKnown() bool {
	h := cs.held
	if h == nil || h.heldNothingKnown() {
		return false
	}
	for i, n := range h.finished {
		cs.finished[i] += n
		if d := h.duration[i]; d != nil {
			if cs.duration[i] == nil {
				cs.duration[i] = d
			} else {
				cs.duration[i].add(d)
			}
		}
	}
	cs.created += h.created
	if h.queue != nil {
		if cs.queue == nil {
			cs.queue = h.queue
		} else {
			cs.queue.add(h.queue)
		}
	}
	if len(h.failures) == 0 {
		cs.held = nil
	} else {
		cs.held = &counts{failures: h.failures}
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
		if cs.failures == nil {
			cs.failures = make(map[string]float64)
		}
		if cs.held != nil {
			cs.failures[code] += cs.held.failures[code]
			delete(cs.held.failures, code)
		}
		delete(cs.newCodes, code)
		moved = true
	}
	if len(cs.newCodes) == 0 {
		cs.newCodes = nil
	}
	if h := cs.held; h != nil && len(h.failures) == 0 && h.heldNothingKnown() {
		cs.held = nil
	}
	return moved
}

// heldNothingKnown reports whether the held counts h hold nothing for the
// known series.
func (h *counts) heldNothingKnown() bool {
	return h.finished == [4]float64{} && h.created == 0 && h.duration == [4]*histogram{} && h.queue == nil
}

// knownReady reports whether the known series of the session k of the app
// as (of the app, when its run metrics are summed) are ready for their first
// increment. c.mu is held.
func (c *Collector) knownReady(as *appState, k sessionKey) bool {
	return as.unready == nil && (!as.perSession || c.unready[k] == nil)
}

// release shows the held increments of every series that is ready now, and
// counts the release so that the state is saved before the scrape answers
// (a count reaches /metrics only once it is on disk). c.mu is held.
func (c *Collector) release(now time.Time) {
	hold := c.holdFor()
	for k, m := range c.unready {
		if m.ready(now, hold) {
			delete(c.unready, k)
		}
	}
	if len(c.unready) == 0 {
		c.unready = nil // a map does not shrink: let a reload's go
	}
	for _, as := range c.apps {
		if as.unready != nil && as.unready.ready(now, hold) {
			as.unready = nil
		}
	}
	moved := false
	for k, cs := range c.counts {
		if as := c.apps[k.app]; as != nil && cs.held != nil && c.knownReady(as, k) && cs.releaseKnown() {
			moved = true
		}
		if cs.newCodes != nil && cs.releaseCodes(now, hold) {
			moved = true
		}
	}
	for _, as := range c.apps {
		if as.perSession {
			continue
		}
		if as.unready == nil && as.total.releaseKnown() {
			moved = true
		}
		if as.total.newCodes != nil && as.total.releaseCodes(now, hold) {
			moved = true
		}
	}
	if moved {
		c.releases.Add(1)
	}
}
