// Package collector is the Prometheus face of the watch package: it polls
// the sessions that are due at each scrape and turns what the watcher knows
// into the metrics docs/metrics.md lists, current state as gauges made afresh on
// every scrape, and counters and histograms that count every run once.
package collector

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/watch"
)

// App is one configured Feishu app: its name (the app label), its API
// client, the sessions to watch, and whether its run metrics carry a
// session_id label.
type App struct {
	Name     string
	API      watch.API
	Sessions []string
	// PerSession false sums the app's run metrics over its sessions and
	// leaves out its aily_session_* series (many sessions, few series).
	PerSession bool
	// Identity names where the app's runs come from (its credentials' app,
	// the API's address); saved state is restored only under the same one.
	Identity string
	// DailyBudget is the list and get-run requests the app may make a day;
	// 0 means no average cap. See watch.App.
	DailyBudget float64
}

// Options configure a Collector. Zero values take the defaults given.
type Options struct {
	// Watch is the polling policy; see watch.Options.
	Watch watch.Options
	// DurationBuckets are the classic buckets of the run duration and queue
	// histograms, in seconds; default DefaultDurationBuckets().
	DurationBuckets []float64
	// Logger receives the watcher's log lines; default a nop logger.
	Logger log.Logger
	// Saver, when set, is given the state after every scrape whose polls
	// recorded something, before the scrape is answered.
	Saver Saver
	// SecondsPerSeries is the time answering a scrape is assumed to take
	// per series until a scrape has measured it; default
	// DefaultSecondsPerSeries.
	SecondsPerSeries float64
}

// Collector is a prometheus.Collector for the runs of the configured
// sessions. Register ForScrape(ctx) per request to bound a scrape by the
// request's deadline, or the Collector itself for a fixed timeout.
//
// It is an unchecked collector (Describe sends nothing): an app with
// per_session: false exports the run metrics without the session_id label,
// so one metric name comes with two label sets, which a checked collector
// cannot describe.
type Collector struct {
	opts Options
	m    *metrics
	w    *watch.Watcher

	setMu  sync.Mutex // serialises SetApps and Restore
	mu     sync.Mutex // guards apps, counts and what follows them; taken after a session's lock, never before
	apps   map[string]*appState
	counts map[sessionKey]*counts

	// First increments wait until their series have been served at zero
	// (hold.go). unready are the sessions of apps with per_session: true
	// whose known series are not ready yet, apart from those of a new app
	// (appState.unready): sessions added to an app by a reload, and
	// sessions restored while they were waiting; restored the sessions
	// Restore gave counts, by whether they were waiting, until the next
	// SetApps; scrapes the number of scrapes served; releases how many times
	// held increments were shown, for save.
	unready  map[sessionKey]*servedMark
	restored map[sessionKey]bool
	scrapes  uint64
	releases atomic.Uint64
	// empty are the fields of a histogram without observations, shared by
	// every histogram series served before its first observation.
	empty *dto.Histogram

	// failed are each app's most recent failed runs, failLog their log
	// lines, finishedOnly the finished runs per session of apps with
	// per_session: false (those with per_session: true have them in counts).
	failed       map[string]*failedRing
	failLog      failureLog
	finishedOnly map[sessionKey][4]float64
	// spendLogged is when each app's spend was last logged (logSpend).
	spendLogged map[string]time.Time
	// staleNext are the staleness observations of the last scrape, made at
	// the next one.
	staleNext []staleness

	apiMu    sync.RWMutex // guards apiApps and apiStats; held while APIObserver writes a series
	apiApps  map[string]bool
	apiStats map[string]*apiStats

	saving    saving
	malformed onceSet // runs already logged as malformed

	cost *answerCost // the time a scrape's answer takes after its polls
}

type sessionKey struct{ app, id string }

// appState is what the collector keeps per configured app.
type appState struct {
	name       string
	identity   string
	perSession bool
	codes      map[string]struct{} // error codes with their own series, at most maxFailureCodes
	total      counts              // the app's counters when !perSession
	// unready is how a new app's known series (of its sessions, or its
	// sums) have been served while they are not ready for their first
	// increment; nil once they are.
	unready *servedMark
}

// counts are the counters and histograms of a session, or of an app whose
// run metrics are summed. Sessions that never counted anything have none:
// they export 0. Increments whose series are not ready for them yet wait in
// held (hold.go).
type counts struct {
	finished [4]float64 // by feishu.FinalStatuses()
	created  float64
	failures map[string]float64
	// failureExemplar is, by error code, the latest run counted in
	// failures; not saved with the state.
	failureExemplar map[string]exemplar
	extra           []feishu.RunStatus // undocumented statuses seen, reported at 0 when absent
	duration        [4]*histogram      // by feishu.FinalStatuses(); nil until a run is observed
	queue           *histogram

	// held are the increments not shown yet: of the known series (all
	// above but failures) while they are not ready, and of the error codes
	// in newCodes. nil when none.
	held *counts
	// newCodes are the error codes whose series waits for its first
	// increment (held.failures has it), and how it has been served.
	newCodes map[string]*servedMark
}

// maxFailureCodes bounds the distinct error_code values of an app, so that an
// API that puts free text or IDs into error codes cannot blow up cardinality.
const maxFailureCodes = 20

// maxExtraStatuses bounds the undocumented statuses a session (or an app's
// sum) reports; any further ones are reported together as otherStatus.
const maxExtraStatuses = 8

const otherStatus feishu.RunStatus = "other"

// New returns a Collector watching no sessions until SetApps.
func New(opts Options) *Collector {
	if len(opts.DurationBuckets) == 0 {
		opts.DurationBuckets = DefaultDurationBuckets()
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	if opts.Watch.Logger == nil {
		opts.Watch.Logger = opts.Logger
	}
	if opts.SecondsPerSeries <= 0 {
		opts.SecondsPerSeries = DefaultSecondsPerSeries
	}
	cost := newAnswerCost(opts.SecondsPerSeries, opts.Saver != nil)
	if opts.Saver != nil {
		opts.Saver = timedSaver{Saver: opts.Saver, cost: cost}
	}
	c := &Collector{
		opts:    opts,
		m:       newMetrics(),
		apps:    make(map[string]*appState),
		counts:  make(map[sessionKey]*counts),
		apiApps: make(map[string]bool),

		failed:       make(map[string]*failedRing),
		finishedOnly: make(map[sessionKey][4]float64),
		apiStats:     make(map[string]*apiStats),
		cost:         cost,
	}
	c.failLog.logger = opts.Logger
	c.empty = newHistogram(opts.DurationBuckets).fields()
	c.w = watch.New(opts.Watch, recorder{c})
	return c
}

// SetApps sets the apps and sessions to watch, at start and on every reload.
// A session configured for the first time begins its watch now. Sessions that
// stay keep their counters, histograms and state; sessions that go lose their
// series and memory. Apps that go lose their aily_api_* series.
func (c *Collector) SetApps(apps []App) {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	// The sessions watched so far have been served at every scrape since.
	watched := make(map[sessionKey]bool)
	c.w.EachSnapshot(func(s *watch.Snapshot) { watched[sessionKey{s.App, s.ID}] = true })
	// The series of sessions new to the collector are not ready for a first
	// increment: say so before the watcher can count anything for them. A
	// new app's sessions wait with the app (below).
	mark := &servedMark{}
	c.mu.Lock()
	for _, a := range apps {
		if as := c.apps[a.Name]; !a.PerSession || as == nil || !as.perSession {
			continue
		}
		for _, id := range a.Sessions {
			k := sessionKey{a.Name, id}
			waiting, restored := c.restored[k]
			if watched[k] || restored && !waiting || c.unready[k] != nil {
				continue
			}
			if c.unready == nil {
				c.unready = make(map[sessionKey]*servedMark)
			}
			c.unready[k] = mark
		}
	}
	c.restored = nil
	c.mu.Unlock()

	wapps := make([]watch.App, len(apps))
	for i, a := range apps {
		wapps[i] = watch.App{Name: a.Name, API: a.API, Sessions: a.Sessions, DailyBudget: a.DailyBudget}
	}
	removed := c.w.SetApps(wapps)
	c.cost.configure(apps)

	c.mu.Lock()
	newApps := make(map[string]*appState, len(apps))
	for _, a := range apps {
		as := c.apps[a.Name]
		if as == nil || as.perSession != a.PerSession {
			if as != nil {
				c.dropApp(as)
			}
			as = &appState{name: a.Name, perSession: a.PerSession, codes: make(map[string]struct{}), unready: mark}
		}
		as.identity = a.Identity
		newApps[a.Name] = as
	}
	for name, as := range c.apps {
		if newApps[name] == nil {
			c.dropApp(as)
		}
	}
	for _, s := range removed {
		c.dropSession(s.App(), s.ID())
	}
	// Counters restored for sessions that are no longer configured go too.
	configured := make(map[sessionKey]bool)
	for _, a := range apps {
		for _, id := range a.Sessions {
			configured[sessionKey{a.Name, id}] = true
		}
	}
	for k := range c.counts {
		if !configured[k] {
			delete(c.counts, k)
		}
	}
	for k := range c.unready {
		if !configured[k] || !newApps[k.app].perSession {
			delete(c.unready, k)
		}
	}
	for k := range c.finishedOnly {
		if !configured[k] || newApps[k.app].perSession {
			delete(c.finishedOnly, k)
		}
	}
	for name := range c.failed {
		if newApps[name] == nil {
			delete(c.failed, name)
		}
	}
	c.failLog.forget(func(app string) bool { return newApps[app] != nil })
	c.apps = newApps
	c.mu.Unlock()

	c.apiMu.Lock()
	for name := range c.apiApps {
		if newApps[name] == nil {
			delete(c.apiApps, name)
			delete(c.apiStats, name)
			labels := prometheus.Labels{"app": name}
			c.m.apiRequests.DeletePartialMatch(labels)
			c.m.apiDuration.DeletePartialMatch(labels)
			c.m.apiThrottled.DeletePartialMatch(labels)
			c.m.staleness.DeletePartialMatch(labels)
		}
	}
	for name := range newApps {
		if !c.apiApps[name] {
			c.apiApps[name] = true
			c.apiStats[name] = &apiStats{}
			c.m.apiThrottled.WithLabelValues(name) // from 0, so the first throttle is seen
			c.m.staleness.WithLabelValues(name)    // from 0: observations show from the next scrape on
		}
	}
	c.apiMu.Unlock()
}

// dropApp forgets an app's run series, per session and summed. c.mu is held.
func (c *Collector) dropApp(as *appState) {
	for k := range c.counts {
		if k.app == as.name {
			c.dropSession(k.app, k.id)
		}
	}
}

// dropSession forgets a session's series. c.mu is held.
func (c *Collector) dropSession(app, id string) {
	delete(c.counts, sessionKey{app, id})
	delete(c.unready, sessionKey{app, id})
}

// recorder adds what polls count to the counters and histograms.
type recorder struct{ c *Collector }

func (r recorder) Record(s *watch.Session, obs *watch.Observation) {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	as := c.apps[s.App()]
	if as == nil {
		return
	}
	now := c.now()
	c.failLog.flush(now)
	k := sessionKey{as.name, s.ID()}
	cs := &as.total
	if as.perSession {
		if cs = c.counts[k]; cs == nil {
			cs = &counts{}
			c.counts[k] = cs
		}
	}
	// The increments of the known series: shown, or held until the series
	// are ready for them.
	known := cs
	if !c.knownReady(as, k) {
		known = cs.holding()
	}
	for j := range obs.Finished {
		f := &obs.Finished[j]
		i := finalIndex(f.Run.Status)
		if i < 0 {
			continue
		}
		known.finished[i]++
		if !as.perSession {
			n := c.finishedOnly[k]
			n[i]++
			c.finishedOnly[k] = n
		}
		ex := exemplar{runID: f.Run.ID, sessionID: s.ID(), at: now}
		if f.Timed {
			known.observeDuration(i, f.Seconds, ex, c.opts.DurationBuckets)
		}
		if f.Run.Status == feishu.StatusFailed {
			cs.countFailure(as.failureCode(f.Run.Error), ex)
			c.noteFailed(as.name, s.ID(), f, now)
		}
	}
	for _, st := range obs.Started {
		if st.Timed {
			known.observeQueue(st.Seconds, c.opts.DurationBuckets)
		}
	}
	known.created += float64(len(obs.Created))
}

// failureCode returns the error_code label for a FAILED run of the app.
// Collector.mu is held.
func (a *appState) failureCode(e *feishu.RunError) string {
	if e == nil || e.Code == "" {
		return "unknown"
	}
	code := labelValue(e.Code)
	if _, ok := a.codes[code]; ok {
		return code
	}
	if len(a.codes) >= maxFailureCodes {
		return "other"
	}
	a.codes[code] = struct{}{}
	return code
}

// maxLabelBytes bounds a label value taken from the API (an error code, a
// status), so that one odd answer cannot put kilobytes into every series.
const maxLabelBytes = 128

// labelValue returns s, cut to maxLabelBytes on a rune boundary with a marker.
func labelValue(s string) string {
	if len(s) <= maxLabelBytes {
		return s
	}
	const marker = "…"
	cut := maxLabelBytes - len(marker)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + marker
}

// ForScrape returns the collector of one scrape, bounded by ctx: its polls
// end the time reserved for answering before ctx's deadline, and sessions
// not polled by then keep their last state. Register it in a registry made
// for the request, and call its Answered once the answer is sent.
func (c *Collector) ForScrape(ctx context.Context) *Scrape {
	return &Scrape{c: c, ctx: ctx}
}

// Describe sends nothing: the collector is unchecked (see Collector).
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect scrapes with the watcher's timeout as the deadline.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.opts.Watch.Timeout
	if timeout <= 0 {
		timeout = watch.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c.collect(ctx, ch, nil)
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
func (c *Collector) now() time.Time {
	if c.opts.Watch.Now != nil {
		return c.opts.Watch.Now()
	}
	return time.Now()
}

// Watcher returns the watcher behind the collector.
func (c *Collector) Watcher() *watch.Watcher { return c.w }

// appView is what one scrape gathers of an app.
type appView struct {
	perSession bool
	states     map[watch.SessionState]int
	// The sum of the current state of its sessions, when !perSession.
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
	c.mu.Lock()
	c.release(c.now())
	c.mu.Unlock()
	c.save()
	if sc != nil {
		sc.startAnswer()
	}
	t := c.now()
	c.mu.Lock()
	c.failLog.flush(t)
	c.scrapes++
	scrape := c.scrapes
	c.mu.Unlock()

	views := make(map[string]*appView)
	c.mu.Lock()
	for name, as := range c.apps {
		views[name] = &appView{perSession: as.perSession, states: make(map[watch.SessionState]int, 4)}
	}
	c.mu.Unlock()

	allUp := true
	tracked := 0
	var stale []staleness
	c.mu.Lock()
	for _, o := range c.staleNext {
		if c.apps[o.app] != nil {
			c.m.staleness.WithLabelValues(o.app).Observe(o.seconds)
		}
	}
	c.staleNext = nil
	c.mu.Unlock()
	// A client that went away (ctx cancelled before its deadline) would get
	// no more of the sessions' series: they are not made, which with many
	// sessions saves most of the answer's time, and they are not taken as
	// served (hold.go).
	gone := false
	c.w.EachSnapshot(func(s *watch.Snapshot) {
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
		if v.perSession {
			if gone = gone || errors.Is(ctx.Err(), context.Canceled); !gone {
				c.collectSession(ch, s, t, scrape)
			}
			return
		}
		if s.Runs != nil {
			v.add(s.Runs)
		}
	})

	overdue := c.w.Overdue()
	budgets := c.w.Budgets()
	for name, v := range views {
		b := budgets[name]
		ch <- prometheus.MustNewConstMetric(c.m.budget, prometheus.GaugeValue, b.PerDay, name)
		ch <- prometheus.MustNewConstMetric(c.m.spend, prometheus.GaugeValue, b.ProjectedPerDay, name)
		c.logSpend(name, b, t)
		for _, st := range watch.SessionStates() {
			ch <- prometheus.MustNewConstMetric(c.m.sessions, prometheus.GaugeValue, float64(v.states[st]), name, string(st))
		}
		ch <- prometheus.MustNewConstMetric(c.m.overdue, prometheus.GaugeValue, float64(overdue[name]), name)
		if tok := c.APIStatus(name, t).Token(); tok != TokenNotFetched {
			ch <- prometheus.MustNewConstMetric(c.m.tokenUp, prometheus.GaugeValue, boolValue(tok == TokenOK), name)
		}
		if !v.perSession {
			c.collectApp(ch, name, v, t, scrape)
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

// staleness is the age of a session's last successful poll at a scrape.
type staleness struct {
	app     string
	seconds float64
}

// add sums a session's current state into the app's.
func (v *appView) add(st *watch.State) {
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

// collectSession sends a session's series (per_session: true) in the
// scrape numbered scrape.
func (c *Collector) collectSession(ch chan<- prometheus.Metric, s *watch.Snapshot, now time.Time, scrape uint64) {
	app, id := s.App, s.ID
	if s.Polled {
		ch <- prometheus.MustNewConstMetric(c.m.sessionUp, prometheus.GaugeValue, boolValue(s.Up), app, id)
		ch <- prometheus.MustNewConstMetric(c.m.pollTook, prometheus.GaugeValue, s.PollDuration.Seconds(), app, id)
	}
	if !s.LastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.m.lastSuccess, prometheus.GaugeValue, unixSeconds(s.LastSuccess), app, id)
	}

	var runs map[feishu.RunStatus]int
	if s.Runs != nil {
		runs = s.Runs.Runs()
	}
	c.mu.Lock()
	p := c.counts[sessionKey{app, id}]
	if p == nil && s.Runs != nil {
		if extra := noteStatuses(nil, s.Runs.InFlight); len(extra) > 0 {
			p = &counts{extra: extra}
			c.counts[sessionKey{app, id}] = p
		}
	} else if p != nil && s.Runs != nil {
		p.extra = noteStatuses(p.extra, s.Runs.InFlight)
	}
	if p == nil {
		p = &counts{}
	}
	if as := c.apps[app]; as != nil && as.unready != nil {
		as.unready.serve(scrape, now)
	}
	if m := c.unready[sessionKey{app, id}]; m != nil {
		m.serve(scrape, now)
	}
	ms := c.countMetrics(&c.m.perSession, p, scrape, now, app, id)
	extra := slices.Clone(p.extra)
	c.mu.Unlock()

	for _, m := range ms {
		ch <- m
	}
	if s.Runs == nil {
		return
	}
	c.collectRuns(ch, &c.m.perSession, runs, s.Runs.Oldest, extra, now, app, id)
	if !s.Runs.LastCreated.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.m.lastRun, prometheus.GaugeValue, unixSeconds(s.Runs.LastCreated), app, id)
	}
	for _, a := range s.Runs.AppIDs {
		ch <- prometheus.MustNewConstMetric(c.m.info, prometheus.GaugeValue, 1, app, id, labelValue(a))
	}
}

// collectApp sends the summed run series of an app with per_session: false
// in the scrape numbered scrape.
func (c *Collector) collectApp(ch chan<- prometheus.Metric, app string, v *appView, now time.Time, scrape uint64) {
	c.mu.Lock()
	as := c.apps[app]
	if as == nil {
		c.mu.Unlock()
		return
	}
	if v.runs != nil {
		as.total.extra = noteStatuses(as.total.extra, v.runs)
	}
	if as.unready != nil {
		as.unready.serve(scrape, now)
	}
	ms := c.countMetrics(&c.m.perApp, &as.total, scrape, now, app)
	extra := slices.Clone(as.total.extra)
	c.mu.Unlock()

	for _, m := range ms {
		ch <- m
	}
	if v.runs != nil {
		c.collectRuns(ch, &c.m.perApp, v.runs, v.oldest, extra, now, app)
	}
}

// countMetrics returns the counters and histograms of cs, as the scrape
// numbered scrape serves them at now: every known series, at zero when
// nothing is counted, and the failures of every error code counted, at zero
// while the first is held. c.mu is held.
func (c *Collector) countMetrics(rm *runMetrics, cs *counts, scrape uint64, now time.Time, labels ...string) []prometheus.Metric {
	ms := make([]prometheus.Metric, 0, 10+len(cs.failures)+len(cs.newCodes))
	for i, st := range feishu.FinalStatuses() {
		ms = append(ms, prometheus.MustNewConstMetric(rm.finished, prometheus.CounterValue, cs.finished[i], append(labels, string(st))...))
		if h := cs.duration[i]; h != nil {
			ms = append(ms, h.metric(rm.duration, append(labels, string(st))...))
		} else {
			ms = append(ms, histogramWith(c.empty, rm.duration, append(labels, string(st))...))
		}
	}
	ms = append(ms, prometheus.MustNewConstMetric(rm.created, prometheus.CounterValue, cs.created, labels...))
	for code, n := range cs.failures {
		m := prometheus.MustNewConstMetric(rm.failures, prometheus.CounterValue, n, append(labels, code)...)
		if ex, ok := cs.failureExemplar[code]; ok && n > 0 {
			m = ex.attach(m, 1)
		}
		ms = append(ms, m)
	}
	for code, m := range cs.newCodes {
		m.serve(scrape, now)
		if _, shown := cs.failures[code]; !shown {
			ms = append(ms, prometheus.MustNewConstMetric(rm.failures, prometheus.CounterValue, 0, append(labels, code)...))
		}
	}
	if cs.queue != nil {
		ms = append(ms, cs.queue.metric(rm.queue, labels...))
	} else {
		ms = append(ms, histogramWith(c.empty, rm.queue, labels...))
	}
	return ms
}

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

// noteStatuses adds the undocumented statuses of runs to extra, up to
// maxExtraStatuses, so that aily_runs keeps reporting them (at 0) once no run
// is in them.
func noteStatuses(extra []feishu.RunStatus, runs map[feishu.RunStatus]int) []feishu.RunStatus {
	for st := range runs {
		if len(extra) >= maxExtraStatuses {
			break
		}
		if slices.Contains(feishu.KnownStatuses(), st) || slices.Contains(extra, st) || len(st) > maxLabelBytes {
			continue
		}
		extra = append(extra, st)
	}
	slices.Sort(extra)
	return extra
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
