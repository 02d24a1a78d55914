package watch

import (
	"maps"
	"slices"
	"time"
)

// Scrape is a scrape that serves what the watcher counted: the series it
// serves count as served at zero for those waiting for their first
// increment (hold.go).
type Scrape struct {
	// N numbers the scrape: the series served twice by one scrape count once.
	N   uint64
	Now time.Time
	// Serving, when set, is asked before each session of an app with
	// per_session: true whether its series will be served: false once the
	// client went away, so that they are not taken as served.
	Serving func() bool
}

// ServeSnapshots calls fn with what each configured session shows now, in
// order of app and ID, for sc to serve: the snapshot of a session of an app
// with per_session: true carries its counts (Snapshot.Counts), and its series
// count as served by sc. fn must not keep the snapshot.
func (w *Watcher) ServeSnapshots(sc *Scrape, fn func(*Snapshot)) {
	w.eachSnapshot(func(s *Session, snap *Snapshot) {
		if s.app.perSession && (sc.Serving == nil || sc.Serving()) {
			snap.Counts = w.serveSession(s, sc)
		}
		fn(snap)
	})
}

// serveSession notes that sc serves the series of s, and returns their
// counts.
func (w *Watcher) serveSession(s *Session, sc *Scrape) *CountsView {
	w.countMu.Lock()
	defer w.countMu.Unlock()
	if m := s.app.unready; m != nil {
		m.serve(sc.N, sc.Now)
	}
	if s.unready != nil {
		s.unready.serve(sc.N, sc.Now)
	}
	if s.counts == nil {
		return &CountsView{}
	}
	s.counts.serveNew(sc.N, sc.Now)
	return s.counts.view()
}

// AppSnapshot is what an app shows at a scrape.
type AppSnapshot struct {
	Name string
	// PerSession false sums the app's run metrics over its sessions.
	PerSession bool
	// MetadataLabels are the app's metadata labels, the extra labels of its
	// run counters and histograms (CountsView.Labelled); nil when none.
	MetadataLabels []string
	// Counts are the app's summed counts when !PerSession.
	Counts *CountsView
	// Overdue are the sessions the last Poll found due but could not reach.
	Overdue int
	Budget  BudgetStatus
}

// ServeApps returns what each configured app shows now, in order of name,
// for sc to serve: the summed series of an app with per_session: false count
// as served by sc.
func (w *Watcher) ServeApps(sc *Scrape) []AppSnapshot {
	now := w.opts.Now()
	w.mu.Lock()
	snaps := make([]AppSnapshot, 0, len(w.apps))
	apps := make([]*app, 0, len(w.apps))
	for _, name := range slices.Sorted(maps.Keys(w.apps)) {
		a := w.apps[name]
		snaps = append(snaps, AppSnapshot{Name: name, PerSession: a.perSession, Overdue: w.overdue[name]})
		if a.labels != nil {
			snaps[len(snaps)-1].MetadataLabels = a.labels.keys
		}
		apps = append(apps, a)
		if d := w.daily[name]; d != nil {
			snaps[len(snaps)-1].Budget = d.status(now)
		}
	}
	w.mu.Unlock()
	for i, a := range apps {
		if !a.perSession {
			w.countMu.Lock()
			if a.unready != nil {
				a.unready.serve(sc.N, sc.Now)
			}
			a.total.serveNew(sc.N, sc.Now)
			snaps[i].Counts = a.total.view()
			w.countMu.Unlock()
		}
	}
	return snaps
}
