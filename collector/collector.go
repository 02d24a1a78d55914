// Package collector is the Prometheus face of the watch package: at each
// scrape it has the watcher poll the sessions that are due, and translates
// snapshots of what the watcher holds into the metrics docs/metrics.md lists,
// current state as gauges and the sessions' counts as counters and
// histograms, all made afresh on every scrape.
package collector

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/apiusage"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// Options configure a Collector. Zero values take the defaults given.
type Options struct {
	// Logger receives the collector's log lines; default a nop logger.
	Logger log.Logger
	// SecondsPerSeries is the time answering a scrape is assumed to take
	// per series until a scrape has measured it; default
	// DefaultSecondsPerSeries.
	SecondsPerSeries float64
	// Usage is where the apps' clients' usage is kept, for the status page
	// to read too; default a Book of the collector's own.
	Usage *apiusage.Book
}

// Collector is a prometheus.Collector for the runs of the sessions a
// watcher watches. Register ForScrape(ctx) per request to bound a scrape by
// the request's deadline, or the Collector itself for a fixed timeout.
//
// It holds no counts: at each scrape it has the watcher poll what is due,
// release what is ready and save, and translates the watcher's snapshots
// into metrics, as kube-state-metrics builds metrics from its store. What it
// keeps is about exposition only: the scrape number, the staleness
// observations for the next scrape, and the client_golang vectors of the
// Feishu client's requests.
//
// Its scrapes (ForScrape) are unchecked collectors (Describe sends
// nothing): an app with per_session: false exports the run metrics without
// the session_id label, so one metric name comes with two label sets, which
// a checked collector cannot describe.
type Collector struct {
	opts Options
	m    *metrics
	w    *watch.Watcher

	mu sync.Mutex // guards the fields below
	// scrapes numbers the scrapes served, for the watcher to tell the
	// series served twice by one scrape (watch.Scrape).
	scrapes uint64
	// spendLogged is when each app's spend was last logged (logSpend).
	spendLogged map[string]time.Time
	// staleNext are the staleness observations of the last scrape, made at
	// the next one.
	staleNext []staleness

	// empty are the fields of a histogram without observations, shared by
	// every histogram series served before its first observation.
	empty *dto.Histogram

	apiMu   sync.RWMutex // guards apiApps; held while APIObserver writes a series
	apiApps map[string]bool

	malformed onceSet // runs already logged as malformed

	cost *answerCost // the time a scrape's answer takes after its polls
}

// New returns a Collector of what w watches.
func New(w *watch.Watcher, opts Options) *Collector {
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.SecondsPerSeries <= 0 {
		opts.SecondsPerSeries = DefaultSecondsPerSeries
	}
	if opts.Usage == nil {
		opts.Usage = apiusage.New()
	}
	c := &Collector{
		opts:    opts,
		m:       newMetrics(),
		w:       w,
		apiApps: make(map[string]bool),
		cost:    newAnswerCost(opts.SecondsPerSeries, w.Saving()),
	}
	c.empty = histogram.New(w.DurationBuckets()).Fields()
	return c
}

// SetApps configures the watcher with the apps and sessions to watch (see
// watch.Watcher.SetApps), at start and on every reload, and the collector's
// own series of the apps: apps that go lose their aily_api_* series.
func (c *Collector) SetApps(apps []watch.App) {
	c.w.SetApps(apps)
	c.cost.configure(apps)

	c.apiMu.Lock()
	defer c.apiMu.Unlock()
	configured := make(map[string]bool, len(apps))
	names := make([]string, 0, len(apps))
	for _, a := range apps {
		configured[a.Name] = true
		names = append(names, a.Name)
	}
	c.opts.Usage.SetApps(names)
	for name := range c.apiApps {
		if !configured[name] {
			delete(c.apiApps, name)
			labels := prometheus.Labels{"app": name}
			c.m.apiRequests.DeletePartialMatch(labels)
			c.m.apiDuration.DeletePartialMatch(labels)
			c.m.apiThrottled.DeletePartialMatch(labels)
			c.m.staleness.DeletePartialMatch(labels)
		}
	}
	for name := range configured {
		if !c.apiApps[name] {
			c.apiApps[name] = true
			c.m.apiThrottled.WithLabelValues(name) // from 0, so the first throttle is seen
			c.m.staleness.WithLabelValues(name)    // from 0: observations show from the next scrape on
		}
	}
}

// ForScrape returns the collector of one scrape, bounded by ctx: its polls
// end the time reserved for answering before ctx's deadline, and sessions
// not polled by then keep their last state. Register it in a registry made
// for the request, and call its Answered once the answer is sent.
func (c *Collector) ForScrape(ctx context.Context) *Scrape {
	return &Scrape{c: c, ctx: ctx}
}

// logSpend logs an app's projected spend at debug level once an hour.
func (c *Collector) logSpend(app string, b watch.BudgetStatus, now time.Time) {
	c.mu.Lock()
	last, ok := c.spendLogged[app]
	if ok && now.Sub(last) < time.Hour {
		c.mu.Unlock()
		return
	}
	if c.spendLogged == nil {
		c.spendLogged = make(map[string]time.Time)
	}
	c.spendLogged[app] = now
	c.mu.Unlock()
	if !ok {
		return // the first hour's projection is mostly the baselines
	}
	level.Debug(c.opts.Logger).Log("msg", "Request spend", "app", app, "projected_per_day", int(b.ProjectedPerDay), "daily_budget", b.PerDay)
}

// now returns the time by the watcher's clock.
func (c *Collector) now() time.Time { return c.w.Now() }

// appView is what one scrape gathers of an app.
type appView struct {
	*watch.AppSnapshot
	states map[watch.SessionState]int
	// The sum of the current state of its sessions, when !PerSession.
	runs   map[feishu.RunStatus]int
	oldest map[feishu.RunStatus]time.Time
}

// collect serves one scrape bounded by ctx: it polls what is due until the
// time reserved for answering, then reports every session from its latest
// state. sc, when set, is told when the answer begins.
func (c *Collector) collect(ctx context.Context, ch chan<- prometheus.Metric, sc *Scrape) {
	var cutOff map[watch.SessionKey]bool
	if pctx, cancel, ok := c.pollContext(ctx); ok {
		cutOff = c.w.Poll(pctx)
		cancel()
	}
	c.w.Release(c.now())
	c.save()
	if sc != nil {
		sc.startAnswer()
	}
	t := c.now()
	c.mu.Lock()
	c.scrapes++
	scrape := &watch.Scrape{N: c.scrapes, Now: t}
	staleNext := c.staleNext
	c.staleNext = nil
	c.mu.Unlock()

	c.apiMu.RLock()
	for _, o := range staleNext {
		if c.apiApps[o.app] {
			c.m.staleness.WithLabelValues(o.app).Observe(o.seconds)
		}
	}
	c.apiMu.RUnlock()

	apps := c.w.ServeApps(scrape)
	views := make(map[string]*appView, len(apps))
	for i := range apps {
		views[apps[i].Name] = &appView{AppSnapshot: &apps[i], states: make(map[watch.SessionState]int, 4)}
	}

	allUp := true
	tracked := 0
	var stale []staleness
	// A client that went away (ctx cancelled before its deadline) would get
	// no more of the sessions' series: they are not made, which with many
	// sessions saves most of the answer's time, and they are not taken as
	// served (internal/watch/hold.go).
	gone := false
	scrape.Serving = func() bool {
		gone = gone || errors.Is(ctx.Err(), context.Canceled)
		return !gone
	}
	c.w.ServeSnapshots(scrape, func(s *watch.Snapshot) {
		v := views[s.App]
		if v == nil {
			return
		}
		if cutOff[watch.SessionKey{App: s.App, ID: s.ID}] {
			// This scrape's deadline cut its poll off: down in this answer,
			// its last state kept for the others.
			s.Polled, s.Up, s.Runs = true, false, nil
		}
		v.states[s.State]++
		tracked += s.Tracked
		if !s.LastSuccess.IsZero() {
			stale = append(stale, staleness{s.App, max(t.Sub(s.LastSuccess).Seconds(), 0)})
		}
		if s.Polled && !s.Up {
			allUp = false
		}
		if v.PerSession {
			if s.Counts != nil {
				c.collectSession(ch, s, v.MetadataLabels, t)
			}
			return
		}
		if s.Runs != nil {
			v.add(s.Runs)
		}
	})

	for name, v := range views {
		ch <- prometheus.MustNewConstMetric(c.m.budget, prometheus.GaugeValue, v.Budget.PerDay, name)
		ch <- prometheus.MustNewConstMetric(c.m.spend, prometheus.GaugeValue, v.Budget.ProjectedPerDay, name)
		c.logSpend(name, v.Budget, t)
		for _, st := range watch.SessionStates() {
			ch <- prometheus.MustNewConstMetric(c.m.sessions, prometheus.GaugeValue, float64(v.states[st]), name, string(st))
		}
		ch <- prometheus.MustNewConstMetric(c.m.overdue, prometheus.GaugeValue, float64(v.Overdue), name)
		if tok := c.opts.Usage.Usage(name, t).Token(); tok != apiusage.TokenNotFetched {
			ch <- prometheus.MustNewConstMetric(c.m.tokenUp, prometheus.GaugeValue, boolValue(tok == apiusage.TokenOK), name)
		}
		if !v.PerSession {
			c.collectApp(ch, v, t)
		}
	}
	for _, v := range c.m.vectors() {
		v.Collect(ch)
	}
	// Observed at the next scrape, so that the histogram of a new app is
	// first served empty and increase() sees its first observations (a
	// histogram sent on ch is read after collect returns).
	c.mu.Lock()
	c.staleNext = append(c.staleNext, stale...)
	c.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.m.up, prometheus.GaugeValue, boolValue(allUp))
	ch <- prometheus.MustNewConstMetric(c.m.trackedRuns, prometheus.GaugeValue, float64(tracked))
}

// save has the watcher save what changed before the scrape answers, and
// times the save for the reserve (answer.go).
func (c *Collector) save() {
	start := c.cost.now()
	if sessions, saved := c.w.SaveChanged(); saved {
		c.cost.saved(sessions, c.cost.now().Sub(start))
	}
}

// staleness is the age of a session's last successful poll at a scrape.
type staleness struct {
	app     string
	seconds float64
}

// add sums a session's current runs into the app's.
func (v *appView) add(st *watch.CurrentRuns) {
	if v.runs == nil {
		v.runs = make(map[feishu.RunStatus]int)
		v.oldest = make(map[feishu.RunStatus]time.Time)
	}
	for i, s := range feishu.FinalStatuses() {
		v.runs[s] += st.Final[i]
	}
	for s, n := range st.InFlight {
		v.runs[s] += n
	}
	for s, o := range st.Oldest {
		if cur, ok := v.oldest[s]; !ok || o.Before(cur) {
			v.oldest[s] = o
		}
	}
}

// collectSession sends a session's series (per_session: true) of an app
// with the metadata labels meta.
func (c *Collector) collectSession(ch chan<- prometheus.Metric, s *watch.Snapshot, meta []string, now time.Time) {
	app, id := s.App, s.ID
	if s.Polled {
		ch <- prometheus.MustNewConstMetric(c.m.sessionUp, prometheus.GaugeValue, boolValue(s.Up), app, id)
		ch <- prometheus.MustNewConstMetric(c.m.pollTook, prometheus.GaugeValue, s.PollDuration.Seconds(), app, id)
	}
	if !s.LastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.m.lastSuccess, prometheus.GaugeValue, unixSeconds(s.LastSuccess), app, id)
	}
	c.sendLabelledCounts(ch, c.m.labelledRunMetrics(true, meta), len(meta), s.Counts, app, id)
	if s.Runs == nil {
		return
	}
	c.collectRuns(ch, &c.m.perSession, s.Runs.Runs(), s.Runs.Oldest, s.Counts.Extra, now, app, id)
	if !s.Runs.LastCreated.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.m.lastRun, prometheus.GaugeValue, unixSeconds(s.Runs.LastCreated), app, id)
	}
	for _, a := range s.Runs.AppIDs {
		ch <- prometheus.MustNewConstMetric(c.m.info, prometheus.GaugeValue, 1, app, id, watch.BoundedValue(a))
	}
}

// collectApp sends the summed run series of an app with per_session: false.
func (c *Collector) collectApp(ch chan<- prometheus.Metric, v *appView, now time.Time) {
	c.sendLabelledCounts(ch, c.m.labelledRunMetrics(false, v.MetadataLabels), len(v.MetadataLabels), v.Counts, v.Name)
	if v.runs != nil {
		c.collectRuns(ch, &c.m.perApp, v.runs, v.oldest, v.Counts.Extra, now, v.Name)
	}
}

// sendLabelledCounts sends the counters and histograms of cs of an app with
// meta metadata labels (rm has them): those of the runs whose label values
// are all "" as sendCounts does, with "" for each, then those of each set of
// values counted.
func (c *Collector) sendLabelledCounts(ch chan<- prometheus.Metric, rm *runMetrics, meta int, cs *watch.CountsView, labels ...string) {
	labels = labels[:len(labels):len(labels)]
	c.sendCounts(ch, rm, cs, append(labels, make([]string, meta)...)...)
	for i := range cs.Labelled {
		l := &cs.Labelled[i]
		if len(l.Values) != meta {
			continue // not of these labels; the watcher makes none
		}
		c.sendCounts(ch, rm, &l.CountsView, append(labels, l.Values...)...)
	}
}

// sendCounts sends the counters and histograms of cs: every known series, at
// zero when nothing is counted, the failures of every error code counted,
// and at zero those of the codes whose first increment is held.
func (c *Collector) sendCounts(ch chan<- prometheus.Metric, rm *runMetrics, cs *watch.CountsView, labels ...string) {
	for i, st := range feishu.FinalStatuses() {
		ch <- prometheus.MustNewConstMetric(rm.finished, prometheus.CounterValue, cs.Finished[i], append(labels, string(st))...)
		if h := cs.Duration[i]; h != nil {
			ch <- h.Metric(rm.duration, append(labels, string(st))...)
		} else {
			ch <- histogram.With(c.empty, rm.duration, append(labels, string(st))...)
		}
	}
	ch <- prometheus.MustNewConstMetric(rm.created, prometheus.CounterValue, cs.Created, labels...)
	for code, n := range cs.Failures {
		m := prometheus.MustNewConstMetric(rm.failures, prometheus.CounterValue, n, append(labels, code)...)
		if ex, ok := cs.FailureExemplars[code]; ok && n > 0 {
			m = ex.Attach(m, 1)
		}
		ch <- m
	}
	for _, code := range cs.NewCodes {
		ch <- prometheus.MustNewConstMetric(rm.failures, prometheus.CounterValue, 0, append(labels, code)...)
	}
	if cs.Queue != nil {
		ch <- cs.Queue.Metric(rm.queue, labels...)
	} else {
		ch <- histogram.With(c.empty, rm.queue, labels...)
	}
}

// otherStatus reports together the undocumented statuses beyond the
// watcher's maxExtraStatuses.
const otherStatus feishu.RunStatus = "other"

// collectRuns sends aily_runs and aily_runs_oldest_age_seconds.
func (c *Collector) collectRuns(ch chan<- prometheus.Metric, rm *runMetrics, runs map[feishu.RunStatus]int,
	oldest map[feishu.RunStatus]time.Time, extra []feishu.RunStatus, now time.Time, labels ...string) {
	statuses := append(feishu.KnownStatuses(), extra...)
	other := 0
	for st, n := range runs {
		if !slices.Contains(statuses, st) {
			other += n
		}
	}
	for _, st := range statuses {
		ch <- prometheus.MustNewConstMetric(rm.runs, prometheus.GaugeValue, float64(runs[st]), append(labels, string(st))...)
	}
	if other > 0 {
		ch <- prometheus.MustNewConstMetric(rm.runs, prometheus.GaugeValue, float64(other), append(labels, string(otherStatus))...)
	}
	for _, st := range []feishu.RunStatus{feishu.StatusQueued, feishu.StatusInProgress, feishu.StatusRequiresMessage} {
		age := 0.0
		if o, ok := oldest[st]; ok {
			age = max(now.Sub(o).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(rm.oldestAge, prometheus.GaugeValue, age, append(labels, string(st))...)
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
