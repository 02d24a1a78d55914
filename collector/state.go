package collector

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/watch"
)

// State is what the collector keeps across a restart: per app its counters
// (when summed) and capped error codes, per session its watch record and its
// counters and histograms.
type State struct {
	// DurationBuckets are the classic buckets of every histogram saved,
	// written once rather than with each.
	DurationBuckets []float64      `json:"duration_buckets"`
	Apps            []AppState     `json:"apps"`
	Sessions        []SessionState `json:"sessions"`
}

// AppState is an app's saved state.
type AppState struct {
	Name string `json:"name"`
	// Identity is what the app's runs come from (its credentials' app and
	// the API's address): state saved under another identity is not this
	// app's.
	Identity   string      `json:"identity"`
	PerSession bool        `json:"per_session"`
	Codes      []string    `json:"codes,omitempty"`
	Totals     CountsState `json:"totals"`
	// Holding says that the app's summed series (per_session: false) were
	// not ready for a first increment yet: after a restart they wait again.
	Holding bool `json:"holding,omitempty"`
}

// SessionState is a session's saved state.
type SessionState struct {
	Watch  *watch.Record `json:"watch"`
	Counts *CountsState  `json:"counts,omitempty"`
	// Holding says that the session's known series were not ready for a
	// first increment yet: after a restart they wait again.
	Holding bool `json:"holding,omitempty"`
}

// CountsState is the saved form of counts.
type CountsState struct {
	Finished [4]float64                `json:"finished"` // by feishu.FinalStatuses()
	Created  float64                   `json:"created,omitempty"`
	Failures map[string]float64        `json:"failures,omitempty"`
	Extra    []string                  `json:"extra_statuses,omitempty"`
	Duration map[string]HistogramState `json:"duration,omitempty"` // by final status
	Queue    *HistogramState           `json:"queue,omitempty"`
	// Held are the increments counted but not shown yet, waiting for their
	// series to be served at zero: the error codes in Held.Failures wait
	// again after a restart; the rest waits if Holding is set where this
	// is saved.
	Held *CountsState `json:"held,omitempty"`
}

// Saver writes the collector's state where it lasts (the state file).
type Saver interface {
	Save(*State) error
}

// ErrForeignState says that saved state shares no app with the
// configuration: it was saved by another exporter, or for other apps.
var ErrForeignState = errors.New("the saved state is for other apps than the configured ones")

// saving serialises saves and remembers what the last one covered.
type saving struct {
	mu       sync.Mutex
	commits  uint64    // the watcher's commits covered by the last save
	counted  uint64    // the watcher's counting polls covered by the last save
	releases uint64    // the collector's releases of held counts covered by the last save
	at       time.Time // when the last save succeeded
	failed   bool      // the last save failed (logged once until one works)
}

// stateRefresh is how long a state that changed without counting anything
// (listing positions, a baseline under way, statuses in flight) may wait to
// be saved. Only counts must be on disk before they are served; the rest, if
// lost, costs a few requests after a restart, and with thousands of idle
// sessions polled at every scrape, saving for it each time would cost a
// write of the whole state per scrape.
const stateRefresh = time.Minute

// save writes the state if polls counted something since the last save, or
// held counts were released to be shown, or polls changed something and the
// last save is older than stateRefresh. A scrape calls it after its polls
// and releases and before it answers, so that no count reaches /metrics
// before it is on disk.
func (c *Collector) save() {
	if c.opts.Saver == nil {
		return
	}
	c.saving.mu.Lock()
	defer c.saving.mu.Unlock()
	released := c.releases.Load() != c.saving.releases
	if c.w.Commits() == c.saving.commits && !released {
		return
	}
	if c.w.Counted() == c.saving.counted && !released && !c.saving.failed && c.now().Sub(c.saving.at) < stateRefresh {
		return
	}
	c.saveLocked()
}

// Save writes the state now, whatever changed (at shutdown).
func (c *Collector) Save() error {
	if c.opts.Saver == nil {
		return nil
	}
	c.saving.mu.Lock()
	defer c.saving.mu.Unlock()
	return c.saveLocked()
}

func (c *Collector) saveLocked() error {
	var st State
	var counted, releases uint64
	commits := c.w.Records(func(rs []*watch.Record) {
		c.mu.Lock()
		defer c.mu.Unlock()
		st = c.stateLocked(rs)
		counted = c.w.Counted() // no poll commits while Records runs
		releases = c.releases.Load()
	})
	err := c.opts.Saver.Save(&st)
	switch {
	case err != nil && !c.saving.failed:
		level.Warn(c.opts.Logger).Log("msg", "Saving the state failed; the exporter keeps serving, and a restart will count from the last state saved", "err", err)
	case err == nil && c.saving.failed:
		level.Info(c.opts.Logger).Log("msg", "Saving the state works again")
	}
	c.saving.failed = err != nil
	if err == nil {
		c.saving.commits, c.saving.counted, c.saving.releases, c.saving.at = commits, counted, releases, c.now()
	}
	return err
}

// stateLocked builds the state of the configured apps and sessions. c.mu
// is held.
func (c *Collector) stateLocked(records []*watch.Record) State {
	st := State{DurationBuckets: c.opts.DurationBuckets}
	names := make([]string, 0, len(c.apps))
	for name := range c.apps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		as := c.apps[name]
		a := AppState{Name: name, Identity: as.identity, PerSession: as.perSession, Totals: as.total.state(),
			Holding: !as.perSession && as.unready != nil}
		for code := range as.codes {
			a.Codes = append(a.Codes, code)
		}
		slices.Sort(a.Codes)
		st.Apps = append(st.Apps, a)
	}
	for _, r := range records {
		ss := SessionState{Watch: r}
		if as := c.apps[r.App]; as != nil && as.perSession {
			ss.Holding = !c.knownReady(as, sessionKey{r.App, r.ID})
		}
		if cs := c.counts[sessionKey{r.App, r.ID}]; cs != nil {
			s := cs.state()
			ss.Counts = &s
		}
		st.Sessions = append(st.Sessions, ss)
	}
	return st
}

func (cs *counts) state() CountsState {
	s := CountsState{Finished: cs.finished, Created: cs.created}
	if len(cs.failures) > 0 {
		s.Failures = make(map[string]float64, len(cs.failures))
		for k, v := range cs.failures {
			s.Failures[k] = v
		}
	}
	for _, st := range cs.extra {
		s.Extra = append(s.Extra, string(st))
	}
	for i, h := range cs.duration {
		if h == nil {
			continue
		}
		if s.Duration == nil {
			s.Duration = make(map[string]HistogramState, len(cs.duration))
		}
		hs := h.state()
		hs.Bounds = nil // in State.DurationBuckets
		s.Duration[string(feishu.FinalStatuses()[i])] = hs
	}
	if cs.queue != nil {
		q := cs.queue.state()
		q.Bounds = nil
		s.Queue = &q
	}
	if cs.held != nil {
		h := cs.held.state()
		s.Held = &h
	}
	return s
}

// countsFromState restores counts; a histogram that does not fit the
// configured buckets starts afresh (its counters stay), and says why.
func countsFromState(s *CountsState, saved, buckets []float64) (*counts, error) {
	cs := &counts{finished: s.Finished, created: s.Created}
	var errs []error
	for _, n := range s.Finished {
		if n < 0 {
			return nil, errors.New("negative counter")
		}
	}
	if len(s.Failures) > 0 {
		cs.failures = make(map[string]float64, len(s.Failures))
		for k, v := range s.Failures {
			cs.failures[k] = v
		}
	}
	for _, st := range s.Extra {
		cs.extra = append(cs.extra, feishu.RunStatus(st))
	}
	for st, hs := range s.Duration {
		i := slices.Index(feishu.FinalStatuses(), feishu.RunStatus(st))
		if i < 0 {
			errs = append(errs, fmt.Errorf("duration histogram of status %q, which is not final", st))
			continue
		}
		hs.Bounds = saved
		h, err := histogramFromState(buckets, hs)
		if err != nil {
			errs = append(errs, fmt.Errorf("duration histogram of %s: %w", st, err))
			continue
		}
		cs.duration[i] = h
	}
	if s.Queue != nil {
		q := *s.Queue
		q.Bounds = saved
		h, err := histogramFromState(buckets, q)
		if err != nil {
			errs = append(errs, fmt.Errorf("queue histogram: %w", err))
		} else {
			cs.queue = h
		}
	}
	if s.Held != nil {
		h, err := countsFromState(s.Held, saved, buckets)
		if err != nil {
			errs = append(errs, fmt.Errorf("held: %w", err))
		}
		if h != nil {
			h.held = nil
			cs.held = h
			// The series of these codes are served at zero again before
			// their first increment.
			for code := range h.failures {
				if cs.newCodes == nil {
					cs.newCodes = make(map[string]*servedMark)
				}
				cs.newCodes[code] = &servedMark{}
			}
		}
	}
	return cs, errors.Join(errs...)
}

// Restore gives the collector the state of a previous run, before the first
// SetApps: apps configured with the same name and identity carry on with
// their counters, and their sessions with their watch and counters; the
// rest is dropped. It returns ErrForeignState, and restores nothing, when
// no saved app matches a configured one.
func (c *Collector) Restore(st *State, apps []App) error {
	configured := make(map[string]App, len(apps))
	for _, a := range apps {
		configured[a.Name] = a
	}
	c.setMu.Lock()
	defer c.setMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := make(map[string]bool)
	for _, a := range st.Apps {
		conf, ok := configured[a.Name]
		switch {
		case !ok:
			continue
		case conf.Identity != a.Identity:
			level.Warn(c.opts.Logger).Log("msg", "Dropping the saved state of an app whose credentials or address changed",
				"app", a.Name)
			continue
		}
		kept[a.Name] = true
		if conf.PerSession != a.PerSession {
			// Its series change shape: the sessions carry on, the counters
			// start from 0 under the new labels.
			continue
		}
		as := &appState{name: a.Name, identity: a.Identity, perSession: a.PerSession, codes: make(map[string]struct{})}
		for _, code := range a.Codes {
			as.codes[code] = struct{}{}
		}
		if !a.PerSession {
			cs, err := countsFromState(&a.Totals, st.DurationBuckets, c.opts.DurationBuckets)
			if err != nil {
				level.Warn(c.opts.Logger).Log("msg", "Part of an app's saved counters is unusable", "app", a.Name, "err", err)
			}
			if cs != nil {
				as.total = *cs
			}
			if a.Holding || cs == nil {
				as.unready = &servedMark{}
			}
		}
		c.apps[a.Name] = as
	}
	if len(st.Apps) > 0 && len(kept) == 0 {
		clear(c.apps)
		return ErrForeignState
	}
	var records []*watch.Record
	for _, ss := range st.Sessions {
		if ss.Watch == nil || !kept[ss.Watch.App] {
			continue
		}
		records = append(records, ss.Watch)
		as := c.apps[ss.Watch.App]
		if as == nil || !as.perSession {
			continue
		}
		k := sessionKey{ss.Watch.App, ss.Watch.ID}
		if ss.Counts == nil {
			if c.restored == nil {
				c.restored = make(map[sessionKey]bool)
			}
			c.restored[k] = ss.Holding
			continue
		}
		cs, err := countsFromState(ss.Counts, st.DurationBuckets, c.opts.DurationBuckets)
		if err != nil {
			level.Warn(c.opts.Logger).Log("msg", "Part of a session's saved counters is unusable",
				"app", ss.Watch.App, "session_id", ss.Watch.ID, "err", err)
		}
		if cs != nil {
			c.counts[k] = cs
			if c.restored == nil {
				c.restored = make(map[sessionKey]bool)
			}
			c.restored[k] = ss.Holding
		}
	}
	c.w.Restore(records)
	return nil
}
