package collector

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// listing is one pass over every configured session. Scrapes that arrive
// while it runs, or within Options.MinInterval of its start, share it, so the
// API is asked once and the tracker fed once whatever the number of scrapers.
type listing struct {
	gen   uint64
	start time.Time
	done  chan struct{} // closed when every session is listed or the deadline passed

	mu      sync.Mutex
	results map[*session]*result // sessions done so far
}

// result is the outcome of listing one session: either an error or the
// current-state summary of its runs.
type result struct {
	err  error
	took time.Duration

	counts      map[feishu.RunStatus]int
	oldest      map[feishu.RunStatus]time.Time // created_at of the oldest run per status
	lastCreated time.Time
	appIDs      []string // distinct, sorted
}

type target struct {
	s      *session
	lister RunLister
}

// listingFor returns the listing that serves a scrape under ctx, starting one
// if none is running or recent enough, and the sessions it covers.
func (c *Collector) listingFor(ctx context.Context) (*listing, []*session) {
	c.listMu.Lock()
	defer c.listMu.Unlock()

	c.mu.Lock()
	gen := c.gen
	sessions := c.sessions
	targets := make([]target, len(sessions))
	for i, s := range sessions {
		targets[i] = target{s: s, lister: s.app.lister}
	}
	c.mu.Unlock()

	now := c.opts.Now()
	if l := c.last; l != nil && l.gen == gen && now.Sub(l.start) < c.opts.MinInterval {
		return l, sessions
	}
	if l := c.inflight; l != nil && l.gen == gen {
		return l, sessions
	}

	l := &listing{gen: gen, start: now, done: make(chan struct{}), results: make(map[*session]*result)}
	c.inflight = l
	// The listing outlives a scrape that gives up or disconnects, for the
	// scrapes sharing it, but not the first scrape's deadline.
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.opts.Timeout)
	}
	lctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	go c.list(lctx, cancel, l, targets)
	return l, sessions
}

type outcome struct {
	i    int
	runs []feishu.Run
	err  error
	took time.Duration
}

// list lists every target with at most Options.Concurrency at once, feeding
// each success to its session's tracker as it arrives, until all are done or
// ctx's deadline passes. A lister that ignores ctx is abandoned, not waited for.
func (c *Collector) list(ctx context.Context, cancel context.CancelFunc, l *listing, targets []target) {
	defer cancel()
	out := make(chan outcome, len(targets)) // buffered: abandoned listers never block
	go func() {
		sem := make(chan struct{}, c.opts.Concurrency)
		for i, t := range targets {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				start := c.opts.Now()
				if t.lister == nil {
					out <- outcome{i: i, err: fmt.Errorf("list runs of session %s: app %s has no lister", t.s.id, t.s.app.name)}
					return
				}
				runs, err := t.lister.ListRuns(ctx, t.s.id)
				out <- outcome{i: i, runs: runs, err: err, took: c.opts.Now().Sub(start)}
			}()
		}
	}()

loop:
	for pending := len(targets); pending > 0; pending-- {
		select {
		case o := <-out:
			c.record(l, targets[o.i].s, o)
		case <-ctx.Done():
			break loop
		}
	}
	// Outcomes that arrived together with the deadline still count.
	for drained := false; !drained; {
		select {
		case o := <-out:
			c.record(l, targets[o.i].s, o)
		default:
			drained = true
		}
	}

	c.listMu.Lock()
	if c.inflight == l {
		c.inflight = nil
	}
	if c.last == nil || !l.start.Before(c.last.start) {
		c.last = l
	}
	c.listMu.Unlock()
	close(l.done)
}

// record feeds one session's listing to its tracker and keeps its summary.
func (c *Collector) record(l *listing, s *session, o outcome) {
	now := c.opts.Now()
	res := &result{err: o.err, took: o.took}
	if o.err == nil {
		summarize(res, o.runs)
		s.mu.Lock()
		if !s.removed {
			c.count(s, s.tracker.Observe(o.runs, now))
			s.noteStatuses(res.counts)
		}
		s.mu.Unlock()
	}
	l.mu.Lock()
	l.results[s] = res
	l.mu.Unlock()
}

// count adds a tracker's observation to the session's counters and
// histograms. The caller holds s.mu.
func (c *Collector) count(s *session, obs Observation) {
	app, id := s.app.name, s.id
	for _, f := range obs.Finished {
		st := string(f.Run.Status)
		c.m.finished.WithLabelValues(app, id, st).Inc()
		if f.Timed {
			c.m.duration.WithLabelValues(app, id, st).Observe(f.Seconds)
		}
		if f.Run.Status == feishu.StatusFailed {
			c.m.failures.WithLabelValues(app, id, s.app.failureCode(f.Run.Error)).Inc()
		}
	}
	for _, st := range obs.Started {
		if st.Timed {
			c.m.queue.WithLabelValues(app, id).Observe(st.Seconds)
		}
	}
	if n := len(obs.Created); n > 0 {
		c.m.created.WithLabelValues(app, id).Add(float64(n))
	}
}

// noteStatuses remembers undocumented statuses so that aily_runs keeps
// reporting them, at 0, once no run is in them. The caller holds s.mu.
func (s *session) noteStatuses(counts map[feishu.RunStatus]int) {
	for st := range counts {
		if known(st) || slices.Contains(s.statuses, st) || len(s.statuses) >= maxExtraStatuses {
			continue
		}
		s.statuses = append(s.statuses, st)
	}
}

func known(st feishu.RunStatus) bool {
	return slices.Contains(feishu.KnownStatuses(), st)
}

// unknownStatus labels runs listed with no status at all.
const unknownStatus feishu.RunStatus = "unknown"

// summarize computes the current-state gauges' values from a listing. A run
// listed twice (a shifted page) is counted once.
func summarize(res *result, runs []feishu.Run) {
	res.counts = make(map[feishu.RunStatus]int)
	res.oldest = make(map[feishu.RunStatus]time.Time)
	seen := make(map[string]struct{}, len(runs))
	var appIDs []string
	for i := range runs {
		r := &runs[i]
		if r.ID != "" {
			if _, dup := seen[r.ID]; dup {
				continue
			}
			seen[r.ID] = struct{}{}
		}
		st := r.Status
		if st == "" {
			st = unknownStatus
		}
		res.counts[st]++
		if !r.CreatedAt.IsZero() {
			if o, ok := res.oldest[st]; !ok || r.CreatedAt.Before(o) {
				res.oldest[st] = r.CreatedAt
			}
			if r.CreatedAt.After(res.lastCreated) {
				res.lastCreated = r.CreatedAt
			}
		}
		if r.AppID != "" && !slices.Contains(appIDs, r.AppID) {
			appIDs = append(appIDs, r.AppID)
		}
	}
	slices.Sort(appIDs)
	res.appIDs = appIDs
}

// collect serves one scrape bounded by ctx.
func (c *Collector) collect(ctx context.Context, ch chan<- prometheus.Metric) {
	l, sessions := c.listingFor(ctx)
	select {
	case <-l.done:
	case <-ctx.Done():
	}
	now := c.opts.Now()

	results := make([]*result, len(sessions))
	l.mu.Lock()
	for i, s := range sessions {
		results[i] = l.results[s]
	}
	l.mu.Unlock()

	allUp := true
	tracked := 0
	for i, s := range sessions {
		res := results[i]
		if res == nil {
			res = &result{
				err:  fmt.Errorf("list runs of session %s: not done by the scrape deadline: %w", s.id, context.Cause(ctx)),
				took: now.Sub(l.start),
			}
		}
		app, id := s.app.name, s.id
		ch <- prometheus.MustNewConstMetric(c.m.scrapeTook, prometheus.GaugeValue, res.took.Seconds(), app, id)

		s.mu.Lock()
		if s.tracker != nil {
			tracked += s.tracker.Len()
		}
		extra := slices.Clone(s.statuses)
		s.mu.Unlock()

		if res.err != nil {
			allUp = false
			ch <- prometheus.MustNewConstMetric(c.m.sessionUp, prometheus.GaugeValue, 0, app, id)
			level.Warn(c.opts.Logger).Log("msg", "listing a session's runs failed", "app", app, "session_id", id, "err", res.err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.m.sessionUp, prometheus.GaugeValue, 1, app, id)
		c.collectState(ch, app, id, res, extra, now)
	}

	for _, v := range c.m.vectors() {
		v.Collect(ch)
	}
	ch <- prometheus.MustNewConstMetric(c.m.up, prometheus.GaugeValue, boolValue(allUp))
	ch <- prometheus.MustNewConstMetric(c.m.trackedRuns, prometheus.GaugeValue, float64(tracked))
}

// collectState sends the current-state gauges of a session listed successfully.
func (c *Collector) collectState(ch chan<- prometheus.Metric, app, id string, res *result, extra []feishu.RunStatus, now time.Time) {
	statuses := feishu.KnownStatuses()
	for _, st := range extra {
		if !slices.Contains(statuses, st) {
			statuses = append(statuses, st)
		}
	}
	for st := range res.counts {
		if !slices.Contains(statuses, st) {
			statuses = append(statuses, st)
		}
	}
	for _, st := range statuses {
		ch <- prometheus.MustNewConstMetric(c.m.runs, prometheus.GaugeValue, float64(res.counts[st]), app, id, string(st))
	}
	for _, st := range []feishu.RunStatus{feishu.StatusQueued, feishu.StatusInProgress, feishu.StatusRequiresMessage} {
		age := 0.0
		if o, ok := res.oldest[st]; ok {
			age = max(now.Sub(o).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.m.oldestAge, prometheus.GaugeValue, age, app, id, string(st))
	}
	if !res.lastCreated.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.m.lastRun, prometheus.GaugeValue,
			float64(res.lastCreated.UnixMilli())/1000, app, id)
	}
	for _, a := range res.appIDs {
		ch <- prometheus.MustNewConstMetric(c.m.info, prometheus.GaugeValue, 1, app, id, a)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
