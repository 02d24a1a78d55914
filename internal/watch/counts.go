package watch

import (
	"maps"
	"slices"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
)

// Counts are what a session, or an app whose run metrics are summed over
// its sessions, counted since its watch began, as the metrics show them:
// every run once.
type Counts struct {
	// Finished are the runs seen reaching each final status.
	Finished feishu.ByFinal[float64]
	// Created are the runs created since the watch began.
	Created float64
	// Failures are the FAILED runs by error code (at most maxFailureCodes
	// codes per app, the rest as "other", none as "unknown").
	Failures map[string]float64
	// FailureExemplars are, by error code, the latest run counted in
	// Failures; not saved with the state.
	FailureExemplars map[string]histogram.Exemplar
	// Duration are the seconds from started_at to ended_at of the runs seen
	// finishing, by final status; Queue from created_at to started_at of
	// those seen starting. nil until a run is observed.
	Duration feishu.ByFinal[*histogram.Histogram]
	Queue    *histogram.Histogram
}

// clone returns a copy of c that shares nothing written with it.
func (c *Counts) clone() Counts {
	out := Counts{Finished: c.Finished, Created: c.Created,
		Failures: maps.Clone(c.Failures), FailureExemplars: maps.Clone(c.FailureExemplars)}
	for i, h := range c.Duration {
		if h != nil {
			out.Duration[i] = h.Clone()
		}
	}
	if c.Queue != nil {
		out.Queue = c.Queue.Clone()
	}
	return out
}

// CountsView is a read-only copy of counts as a scrape serves them.
type CountsView struct {
	Counts
	// NewCodes are the error codes whose series are served at zero until
	// their first increment shows (hold.go); not in Counts.Failures yet.
	NewCodes []string
	// Extra are the undocumented statuses seen in flight, which aily_runs
	// keeps reporting (at 0) once no run is in them.
	Extra []feishu.RunStatus
	// Labelled are the counts of the runs whose metadata labels (the app's
	// metadata_labels) are not all "", by their values; the Counts above
	// are those of the runs whose values are all "". Sorted by values.
	Labelled []LabelledCountsView
}

// LabelledCountsView are the counts of the runs with one set of values of
// the app's metadata labels, as a scrape serves them.
type LabelledCountsView struct {
	// Values are the label values, in the order of the app's
	// metadata_labels.
	Values []string
	CountsView
}

// counts are the counts of a session, or of an app whose run metrics are
// summed. Sessions that never counted anything have none: they show 0.
// Increments whose series are not ready for them yet wait in held
// (hold.go). Guarded by Watcher.countMu.
type counts struct {
	Counts // shown
	extra  []feishu.RunStatus

	// held are the increments not shown yet: of the known series (all but
	// Failures) while they are not ready, and of the error codes in
	// newCodes. nil when none.
	held *Counts
	// newCodes are the error codes whose series waits for its first
	// increment (held.Failures has it), and how it has been served.
	newCodes map[string]*servedMark
	// labelled are the counts of the runs whose metadata labels are not all
	// "", by their values joined by labelSep (metadata.go); nil when none.
	labelled map[string]*labelledCounts
}

// view returns what a scrape serves of cs, a copy.
func (cs *counts) view() *CountsView {
	v := &CountsView{Counts: cs.clone(), Extra: slices.Clone(cs.extra)}
	for code := range cs.newCodes {
		if _, shown := cs.Failures[code]; !shown {
			v.NewCodes = append(v.NewCodes, code)
		}
	}
	slices.Sort(v.NewCodes)
	if len(cs.labelled) > 0 {
		v.Labelled = make([]LabelledCountsView, 0, len(cs.labelled))
		for _, key := range slices.Sorted(maps.Keys(cs.labelled)) {
			lc := cs.labelled[key]
			v.Labelled = append(v.Labelled, LabelledCountsView{Values: lc.values, CountsView: *lc.view()})
		}
	}
	return v
}

// finished returns the runs counted finished in cs, held ones included, of
// every set of metadata label values.
func (cs *counts) finished() feishu.ByFinal[float64] {
	f := cs.Finished
	add := func(g feishu.ByFinal[float64]) {
		for i, n := range g {
			f[i] += n
		}
	}
	if cs.held != nil {
		add(cs.held.Finished)
	}
	for _, lc := range cs.labelled {
		add(lc.finished())
	}
	return f
}

// maxFailureCodes bounds the distinct error_code values of an app, so that an
// API that puts free text or IDs into error codes cannot blow up cardinality.
const maxFailureCodes = 20

// maxExtraStatuses bounds the undocumented statuses a session (or an app's
// sum) reports; any further ones are reported together as "other".
const maxExtraStatuses = 8

// count adds what a poll of s counted to its counts, or to its app's when
// the app's run metrics are summed. s.mu is held; it takes w.countMu.
func (w *Watcher) count(s *Session, obs *Observation, now time.Time) {
	w.countMu.Lock()
	defer w.countMu.Unlock()
	a := s.app
	w.failLog.flush(now)
	cs := &a.total
	if a.perSession {
		if s.counts == nil {
			s.counts = &counts{}
		}
		cs = s.counts
	}
	// The increments of the known series go to the counts of the run's
	// metadata label values: shown, or held until the series are ready for
	// them (hold.go).
	ready := s.knownReady()
	for j := range obs.Finished {
		f := &obs.Finished[j]
		i, ok := feishu.FinalIndexOf(f.Run.Status)
		if !ok {
			continue
		}
		gc, known := cs.target(a.labels, f.Run.Metadata, ready)
		known.Finished[i]++
		if !a.perSession {
			s.finishedHere[i]++
		}
		ex := histogram.Exemplar{RunID: f.Run.ID, SessionID: s.id, At: now}
		if f.Timed {
			known.observeDuration(i, f.Seconds, ex, w.opts.DurationBuckets)
		}
		if f.Run.Status == feishu.StatusFailed {
			gc.countFailure(a.failureCode(f.Run.Error), ex)
			w.noteFailed(a, s.id, f, now)
		}
	}
	for j := range obs.Started {
		if st := &obs.Started[j]; st.Timed {
			_, known := cs.target(a.labels, st.Run.Metadata, ready)
			known.observeQueue(st.Seconds, w.opts.DurationBuckets)
		}
	}
	for j := range obs.Created {
		_, known := cs.target(a.labels, obs.Created[j].Metadata, ready)
		known.Created++
	}
}

// noteStatuses keeps the undocumented statuses of runs in flight in the
// counts of s (or its app's), so that aily_runs keeps reporting them. s.mu is
// held; it takes w.countMu.
func (w *Watcher) noteStatuses(s *Session, inFlight map[feishu.RunStatus]int) {
	if len(inFlight) == 0 {
		return
	}
	w.countMu.Lock()
	defer w.countMu.Unlock()
	cs := &s.app.total
	if s.app.perSession {
		if s.counts == nil {
			if extra := noteStatuses(nil, inFlight); len(extra) > 0 {
				s.counts = &counts{extra: extra}
			}
			return
		}
		cs = s.counts
	}
	cs.extra = noteStatuses(cs.extra, inFlight)
}

// noteStatuses adds the undocumented statuses of runs to extra, up to
// maxExtraStatuses.
func noteStatuses(extra []feishu.RunStatus, runs map[feishu.RunStatus]int) []feishu.RunStatus {
	for st := range runs {
		if len(extra) >= maxExtraStatuses {
			break
		}
		if slices.Contains(feishu.KnownStatuses(), st) || slices.Contains(extra, st) || len(st) > maxValueBytes {
			continue
		}
		extra = append(extra, st)
	}
	slices.Sort(extra)
	return extra
}

// failureCode returns the error_code of a FAILED run of the app.
// Watcher.countMu is held.
func (a *app) failureCode(e *feishu.RunError) string {
	if e == nil || e.Code == "" {
		return "unknown"
	}
	code := BoundedValue(e.Code)
	if _, ok := a.codes[code]; ok {
		return code
	}
	if len(a.codes) >= maxFailureCodes {
		return "other"
	}
	if a.codes == nil {
		a.codes = make(map[string]struct{})
	}
	a.codes[code] = struct{}{}
	return code
}

// FinishedBySession returns, per session, the runs seen reaching each final
// status since its watch began; a session of an app with per_session: false,
// since the exporter started. Runs whose count /metrics does not show yet
// (held until the series has been served at zero) are included.
func (w *Watcher) FinishedBySession() map[SessionKey]feishu.ByFinal[float64] {
	w.mu.Lock()
	sessions := w.sessions
	w.mu.Unlock()
	w.countMu.Lock()
	defer w.countMu.Unlock()
	out := make(map[SessionKey]feishu.ByFinal[float64], len(sessions))
	for _, s := range sessions {
		k := SessionKey{s.app.name, s.id}
		switch {
		case !s.app.perSession:
			if s.finishedHere != (feishu.ByFinal[float64]{}) {
				out[k] = s.finishedHere
			}
		case s.counts != nil:
			out[k] = s.counts.finished()
		}
	}
	return out
}

// AppNames returns the names of the configured apps, sorted.
func (w *Watcher) AppNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	names := make([]string, 0, len(w.apps))
	for name := range w.apps {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
