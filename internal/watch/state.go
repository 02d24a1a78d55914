package watch

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
)

// StateVersion is the version of State that Save writes; MigrateState
// brings the state of an older version to it.
const StateVersion = 3

// State is what the watcher keeps across a restart: per app its identity,
// capped error codes and, when its run metrics are summed, its counts; per
// session its record (exactly-once state, listing position, schedule and
// counts). It is saved and restored as one unit (Save, Restore).
type State struct {
	// DurationBuckets are the classic buckets of every histogram saved,
	// written once rather than with each.
	DurationBuckets []float64   `json:"duration_buckets"`
	Apps            []AppRecord `json:"apps"`
	Sessions        []*Record   `json:"sessions"`
}

// AppRecord is an app's saved state.
type AppRecord struct {
	Name string `json:"name"`
	// Identity is what the app's runs come from (its credentials' app and
	// the API's address): state saved under another identity is not this
	// app's.
	Identity   string       `json:"identity"`
	PerSession bool         `json:"per_session"`
	Codes      []string     `json:"codes,omitempty"`
	Totals     CountsRecord `json:"totals"`
	// Holding says that the app's summed series (per_session: false) were
	// not ready for a first increment yet: after a restart they wait again.
	Holding bool `json:"holding,omitempty"`
	// MetadataLabels are the app's metadata labels, MetadataValues the
	// values of each with series of their own, so that the limit holds
	// across a restart. Counts saved under other labels are not carried on.
	MetadataLabels []string            `json:"metadata_labels,omitempty"`
	MetadataValues map[string][]string `json:"metadata_values,omitempty"`
}

// CountsRecord is the saved form of a session's or an app's counts.
type CountsRecord struct {
	Finished feishu.ByFinal[float64]    `json:"finished"`
	Created  float64                    `json:"created,omitempty"`
	Failures map[string]float64         `json:"failures,omitempty"`
	Extra    []string                   `json:"extra_statuses,omitempty"`
	Duration map[string]histogram.State `json:"duration,omitempty"` // by final status
	Queue    *histogram.State           `json:"queue,omitempty"`
	// Held are the increments counted but not shown yet, waiting for their
	// series to be served at zero: the error codes in Held.Failures wait
	// again after a restart; the rest waits if Holding is set where this
	// is saved.
	Held *CountsRecord `json:"held,omitempty"`
	// Labelled are the counts of the runs whose metadata labels are not
	// all "", by their values.
	Labelled []LabelledCountsRecord `json:"labelled,omitempty"`
}

// LabelledCountsRecord are the saved counts of the runs with one set of
// values of the app's metadata labels.
type LabelledCountsRecord struct {
	Values []string `json:"values"`
	CountsRecord
	// Holding says that their known series were not ready for a first
	// increment yet: after a restart they wait again.
	Holding bool `json:"holding,omitempty"`
}

// Saver writes the watcher's state where it lasts (the state file).
type Saver interface {
	Save(*State) error
}

// ErrForeignState says that saved state shares no app with the
// configuration: it was saved by another exporter, or for other apps.
var ErrForeignState = errors.New("the saved state is for other apps than the configured ones")

// saving serialises saves and remembers what the last one covered.
type saving struct {
	mu       sync.Mutex
	commits  uint64    // the polls recorded by the last save
	counted  uint64    // of those, polls that counted something
	releases uint64    // the releases of held counts covered by the last save
	at       time.Time // when the last save succeeded
	failed   bool      // the last save failed (logged once until one works)
}

// StateRefresh is how long a state that changed without counting anything
// (listing positions, a baseline under way, statuses in flight) may wait to
// be saved. Only counts must be on disk before they are served; the rest, if
// lost, costs a few requests after a restart, and with thousands of idle
// sessions polled at every scrape, saving for it each time would cost a
// write of the whole state per scrape.
const StateRefresh = time.Minute

// Saving reports whether the watcher saves its state (Options.Saver).
func (w *Watcher) Saving() bool { return w.opts.Saver != nil }

// SaveChanged writes the state if polls counted something since the last
// save, or held counts were released to be shown, or polls changed
// something and the last save is older than StateRefresh; it reports
// whether it tried, and of how many sessions. A scrape calls it after its
// polls and Release and before it answers, so that no count reaches
// /metrics before it is on disk; a failed save is logged, and the scrape
// served all the same.
func (w *Watcher) SaveChanged() (sessions int, saved bool) {
	if w.opts.Saver == nil {
		return 0, false
	}
	w.saving.mu.Lock()
	defer w.saving.mu.Unlock()
	released := w.releases.Load() != w.saving.releases
	if w.commits.Load() == w.saving.commits && !released {
		return 0, false
	}
	if w.counted.Load() == w.saving.counted && !released && !w.saving.failed && w.opts.Now().Sub(w.saving.at) < StateRefresh {
		return 0, false
	}
	sessions, _ = w.saveLocked()
	return sessions, true
}

// Save writes the state now, whatever changed (at shutdown).
func (w *Watcher) Save() error {
	if w.opts.Saver == nil {
		return nil
	}
	w.saving.mu.Lock()
	defer w.saving.mu.Unlock()
	_, err := w.saveLocked()
	return err
}

// saveLocked saves the state and returns how many sessions it held.
func (w *Watcher) saveLocked() (int, error) {
	st, commits, counted, releases := w.state()
	err := w.opts.Saver.Save(st)
	switch {
	case err != nil && !w.saving.failed:
		level.Warn(w.opts.Logger).Log("msg", "Saving the state failed; the exporter keeps serving, and a restart will count from the last state saved", "err", err)
	case err == nil && w.saving.failed:
		level.Info(w.opts.Logger).Log("msg", "Saving the state works again")
	}
	w.saving.failed = err != nil
	if err == nil {
		w.saving.commits, w.saving.counted, w.saving.releases, w.saving.at = commits, counted, releases, w.opts.Now()
	}
	return len(st.Sessions), err
}

// state returns the state of the configured apps and sessions, each session
// as of its last finished poll (a session being polled as it was when its
// poll began, with the counts it has now: the poll adds to them only when it
// ends), while no poll records its outcome, so that it is one consistent
// moment; and how many polls had recorded their outcome, counted something,
// and releases had been made by then.
func (w *Watcher) state() (st *State, commits, counted, releases uint64) {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	w.mu.Lock()
	sessions, apps := w.sessions, w.apps
	w.mu.Unlock()
	st = &State{DurationBuckets: w.opts.DurationBuckets, Sessions: make([]*Record, 0, len(sessions))}
	for _, s := range sessions {
		s.mu.Lock()
		var r *Record
		switch {
		case s.removed:
		case s.polling != nil:
			if s.saved != nil {
				saved := *s.saved
				r = &saved
			}
		default:
			r = s.record()
		}
		if r != nil {
			w.countMu.Lock()
			if s.counts != nil {
				c := s.counts.record()
				r.Counts = &c
			}
			r.Holding = s.app.perSession && !s.knownReady()
			w.countMu.Unlock()
			st.Sessions = append(st.Sessions, r)
		}
		s.mu.Unlock()
	}
	w.countMu.Lock()
	for _, name := range slices.Sorted(maps.Keys(apps)) {
		a := apps[name]
		ar := AppRecord{Name: name, Identity: a.identity, PerSession: a.perSession, Totals: a.total.record(),
			Holding: !a.perSession && a.unready != nil, Codes: sortedKeys(a.codes)}
		if m := a.labels; m != nil {
			ar.MetadataLabels = m.keys
			ar.MetadataValues = make(map[string][]string, len(m.keys))
			for i, k := range m.keys {
				ar.MetadataValues[k] = sortedKeys(m.admitted[i])
			}
		}
		st.Apps = append(st.Apps, ar)
	}
	releases = w.releases.Load()
	w.countMu.Unlock()
	return st, w.commits.Load(), w.counted.Load(), releases
}

// record returns the saved form of the counts.
func (cs *counts) record() CountsRecord {
	r := cs.Counts.record()
	for _, st := range cs.extra {
		r.Extra = append(r.Extra, string(st))
	}
	if cs.held != nil {
		h := cs.held.record()
		r.Held = &h
	}
	for _, key := range slices.Sorted(maps.Keys(cs.labelled)) {
		lc := cs.labelled[key]
		r.Labelled = append(r.Labelled, LabelledCountsRecord{Values: lc.values, CountsRecord: lc.record(), Holding: lc.unready != nil})
	}
	return r
}

func (c *Counts) record() CountsRecord {
	r := CountsRecord{Finished: c.Finished, Created: c.Created}
	if len(c.Failures) > 0 {
		r.Failures = make(map[string]float64, len(c.Failures))
		for k, v := range c.Failures {
			r.Failures[k] = v
		}
	}
	for i, h := range c.Duration {
		if h == nil {
			continue
		}
		if r.Duration == nil {
			r.Duration = make(map[string]histogram.State, len(c.Duration))
		}
		hs := h.State()
		hs.Bounds = nil // in State.DurationBuckets
		r.Duration[string(feishu.FinalIndex(i).Status())] = hs
	}
	if c.Queue != nil {
		q := c.Queue.State()
		q.Bounds = nil
		r.Queue = &q
	}
	return r
}

// countsFromRecord restores counts saved with the histogram buckets saved,
// of an app with labels metadata labels; a histogram that does not fit the
// configured buckets starts afresh (its counters stay), and says why, and so
// do the counts of label values that do not fit the labels.
func countsFromRecord(r *CountsRecord, saved, buckets []float64, labels int) (*counts, error) {
	cs := &counts{Counts: Counts{Finished: r.Finished, Created: r.Created}}
	var errs []error
	for _, n := range r.Finished {
		if n < 0 {
			return nil, errors.New("negative counter")
		}
	}
	if len(r.Failures) > 0 {
		cs.Failures = make(map[string]float64, len(r.Failures))
		for k, v := range r.Failures {
			cs.Failures[k] = v
		}
	}
	for _, st := range r.Extra {
		cs.extra = append(cs.extra, feishu.RunStatus(st))
	}
	for st, hs := range r.Duration {
		i, ok := feishu.FinalIndexOf(feishu.RunStatus(st))
		if !ok {
			errs = append(errs, fmt.Errorf("duration histogram of status %q, which is not final", st))
			continue
		}
		hs.Bounds = saved
		h, err := histogram.FromState(buckets, hs)
		if err != nil {
			errs = append(errs, fmt.Errorf("duration histogram of %s: %w", st, err))
			continue
		}
		cs.Duration[i] = h
	}
	if r.Queue != nil {
		q := *r.Queue
		q.Bounds = saved
		h, err := histogram.FromState(buckets, q)
		if err != nil {
			errs = append(errs, fmt.Errorf("queue histogram: %w", err))
		} else {
			cs.Queue = h
		}
	}
	if r.Held != nil {
		h, err := countsFromRecord(r.Held, saved, buckets, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("held: %w", err))
		}
		if h != nil {
			cs.held = &h.Counts
			// The series of these codes are served at zero again before
			// their first increment.
			for code := range h.Failures {
				if cs.newCodes == nil {
					cs.newCodes = make(map[string]*servedMark)
				}
				cs.newCodes[code] = &servedMark{}
			}
		}
	}
	for i := range r.Labelled {
		lr := &r.Labelled[i]
		if len(lr.Values) != labels || labels == 0 {
			errs = append(errs, fmt.Errorf("counts of %d metadata label values, want %d", len(lr.Values), labels))
			continue
		}
		lcs, err := countsFromRecord(&lr.CountsRecord, saved, buckets, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata label values %q: %w", lr.Values, err))
		}
		if lcs == nil {
			continue
		}
		lc := &labelledCounts{values: lr.Values, counts: *lcs}
		if lr.Holding {
			lc.unready = &servedMark{}
		}
		if cs.labelled == nil {
			cs.labelled = make(map[string]*labelledCounts)
		}
		cs.labelled[strings.Join(lr.Values, labelSep)] = lc
	}
	return cs, errors.Join(errs...)
}

// restoredSession is a session's saved record, waiting for the SetApps that
// configures it.
type restoredSession struct {
	record *Record
	// counted says that its app carried on with its counts (same identity
	// and per_session); counts are then the session's (nil if it had none)
	// and holding whether its series were waiting for a first increment.
	counted bool
	counts  *counts
	holding bool
}

// Restore gives the watcher the state of a previous run, before the first
// SetApps: apps configured with the same name and identity carry on with
// their counts, and their sessions with their records and counts (no new
// baseline); the rest is dropped. It returns ErrForeignState, and restores
// nothing, when no saved app matches a configured one.
func (w *Watcher) Restore(st *State, apps []App) error {
	configured := make(map[string]App, len(apps))
	for _, a := range apps {
		configured[a.Name] = a
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.countMu.Lock()
	defer w.countMu.Unlock()
	kept := make(map[string]bool)
	restoredApps := make(map[string]*app)
	for _, ar := range st.Apps {
		conf, ok := configured[ar.Name]
		switch {
		case !ok:
			continue
		case conf.Identity != ar.Identity:
			level.Warn(w.opts.Logger).Log("msg", "Dropping the saved state of an app whose credentials or address changed",
				"app", ar.Name)
			continue
		}
		kept[ar.Name] = true
		if conf.PerSession != ar.PerSession || !slices.Equal(conf.MetadataLabels, ar.MetadataLabels) {
			// Its series change shape: the sessions carry on, the counts
			// start from 0 under the new labels.
			continue
		}
		a := &app{name: ar.Name, identity: ar.Identity, perSession: ar.PerSession, codes: keySet(ar.Codes)}
		if len(ar.MetadataLabels) > 0 {
			a.labels = newMetadataLabels(ar.MetadataLabels, defaultMetadataLabelLimit)
			for i, k := range ar.MetadataLabels {
				for _, v := range ar.MetadataValues[k] {
					a.labels.admitted[i][v] = struct{}{}
				}
			}
		}
		if !ar.PerSession {
			cs, err := countsFromRecord(&ar.Totals, st.DurationBuckets, w.opts.DurationBuckets, len(ar.MetadataLabels))
			if err != nil {
				level.Warn(w.opts.Logger).Log("msg", "Part of an app's saved counters is unusable", "app", ar.Name, "err", err)
			}
			if cs != nil {
				a.total = *cs
			}
			if ar.Holding || cs == nil {
				a.unready = &servedMark{}
			}
		}
		restoredApps[ar.Name] = a
	}
	if len(st.Apps) > 0 && len(kept) == 0 {
		return ErrForeignState
	}
	restored := make(map[SessionKey]*restoredSession, len(st.Sessions))
	for _, r := range st.Sessions {
		if r == nil || !kept[r.App] {
			continue
		}
		rs := &restoredSession{record: r}
		restored[SessionKey{r.App, r.ID}] = rs
		a := restoredApps[r.App]
		if a == nil || !a.perSession {
			continue
		}
		rs.counted, rs.holding = true, r.Holding
		if r.Counts == nil {
			continue
		}
		cs, err := countsFromRecord(r.Counts, st.DurationBuckets, w.opts.DurationBuckets, len(a.labelKeys()))
		if err != nil {
			level.Warn(w.opts.Logger).Log("msg", "Part of a session's saved counters is unusable",
				"app", r.App, "session_id", r.ID, "err", err)
		}
		if cs == nil {
			rs.counted = false
		}
		rs.counts = cs
	}
	for name, a := range restoredApps {
		w.apps[name] = a
	}
	w.restored = restored
	return nil
}

// MigrateState returns the data of a state of version from (as a state file
// holds it) in the form of StateVersion.
func MigrateState(from int, data []byte) ([]byte, error) {
	if from == 1 {
		var err error
		if data, err = migrateFrom1(data); err != nil {
			return nil, fmt.Errorf("migrate the state from version 1: %w", err)
		}
		from = 2
	}
	if from == 2 {
		// Version 3 adds what metadata labels keep (an app's labels and
		// admitted values, counts by label values, the metadata of a run
		// in flight), all of it optional: a state of version 2 is one of
		// version 3 without metadata labels. A version 2 exporter cannot
		// read version 3, whose counts it would take in part.
		from = 3
	}
	if from != StateVersion {
		return nil, fmt.Errorf("no migration of the state from version %d", from)
	}
	return data, nil
}

// migrateFrom1 moves each session's counts into its record: version 1 saved
// them beside it, {"watch":{record},"counts":{…},"holding":true}, when the
// collector kept them; version 2 saves {record, "counts":{…},
// "holding":true}.
func migrateFrom1(data []byte) ([]byte, error) {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	var sessions []map[string]json.RawMessage
	if raw, ok := st["sessions"]; ok {
		if err := json.Unmarshal(raw, &sessions); err != nil {
			return nil, fmt.Errorf("sessions: %w", err)
		}
	}
	out := make([]map[string]json.RawMessage, 0, len(sessions))
	for i, s := range sessions {
		var r map[string]json.RawMessage
		if raw, ok := s["watch"]; !ok || string(raw) == "null" {
			continue // a session without a record carries nothing on
		} else if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("session %d: %w", i, err)
		}
		for _, k := range []string{"counts", "holding"} {
			if v, ok := s[k]; ok {
				r[k] = v
			}
		}
		out = append(out, r)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	st["sessions"] = b
	return json.Marshal(st)
}
