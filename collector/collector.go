// Package collector turns listings of Aily sessions' runs into Prometheus
// metrics (SPEC §4): current state as gauges made afresh on every scrape, and
// counters and histograms that count every run exactly once (SPEC §5) across
// scrapes, with each session's failures kept to that session (SPEC §6).
package collector

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// RunLister lists every run of a session. *feishu.Client is one. It must
// honour ctx: a listing still running at the scrape deadline is abandoned.
type RunLister interface {
	ListRuns(ctx context.Context, sessionID string) ([]feishu.Run, error)
}

// App is one configured Feishu app: its name (the app label), how to list its
// sessions' runs, and the sessions to watch.
type App struct {
	Name     string
	Lister   RunLister
	Sessions []string
}

// Options configure a Collector. Zero values take the defaults given.
type Options struct {
	// Concurrency is how many sessions are listed at once; default 4.
	Concurrency int
	// MinInterval is how old a listing may be and still serve a scrape, so
	// that HA Prometheus pairs and concurrent scrapes share one; 0 lists on
	// every scrape (concurrent scrapes still share).
	MinInterval time.Duration
	// DurationBuckets are the classic buckets of the run duration and queue
	// histograms, in seconds; default DefaultDurationBuckets().
	DurationBuckets []float64
	// Timeout bounds a scrape through Collector.Collect, which has no context
	// of its own; default 10s. ForScrape takes its deadline from ctx instead.
	Timeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives a warning for each session a scrape could not list;
	// default a nop logger.
	Logger log.Logger
}

// Default option values.
const (
	DefaultConcurrency = 4
	DefaultTimeout     = 10 * time.Second
)

// Collector is a prometheus.Collector for the runs of the configured
// sessions. Register ForScrape(ctx) per request to bound a scrape by the
// request's deadline, or the Collector itself for a fixed Options.Timeout.
//
// It describes every metric it may send, so a registry checks it fully: the
// descriptors are fixed (label values vary, label names do not), and a checked
// collector lets the registry catch a label mistake at registration instead of
// serving it.
type Collector struct {
	opts Options
	m    *metrics

	mu       sync.Mutex // guards apps, sessions and gen
	apps     map[string]*appState
	sessions []*session // sorted by app, then session ID
	gen      uint64     // incremented by SetApps; a listing serves its generation only

	listMu   sync.Mutex // guards inflight and last; taken before mu, never after
	inflight *listing   // the listing scrapes join, if any
	last     *listing   // the newest finished listing

	apiMu   sync.RWMutex // guards apiApps; held while APIObserver writes a series
	apiApps map[string]bool
}

// appState is what the collector keeps per configured app.
type appState struct {
	name   string
	lister RunLister // guarded by Collector.mu

	codesMu sync.Mutex
	codes   map[string]struct{} // error codes with their own series, at most maxFailureCodes
}

// maxFailureCodes bounds the distinct error_code values of an app, so that an
// API that puts free text or IDs into error codes cannot blow up cardinality.
const maxFailureCodes = 20

// failureCode returns the error_code label for a FAILED run of the app.
func (a *appState) failureCode(e *feishu.RunError) string {
	if e == nil || e.Code == "" {
		return "unknown"
	}
	a.codesMu.Lock()
	defer a.codesMu.Unlock()
	if _, ok := a.codes[e.Code]; ok {
		return e.Code
	}
	if len(a.codes) >= maxFailureCodes {
		return "other"
	}
	a.codes[e.Code] = struct{}{}
	return e.Code
}

// maxExtraStatuses bounds the statuses beyond the documented ones that a
// session's aily_runs keeps reporting (at 0) after they were last listed.
const maxExtraStatuses = 8

// session is a configured session and its exactly-once state.
type session struct {
	app *appState
	id  string

	mu       sync.Mutex // guards the fields below
	removed  bool       // no longer configured: count nothing more
	tracker  *Tracker
	statuses []feishu.RunStatus // undocumented statuses seen, reported at 0 when absent
}

// New returns a Collector watching no sessions until SetApps.
func New(opts Options) *Collector {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if len(opts.DurationBuckets) == 0 {
		opts.DurationBuckets = DefaultDurationBuckets()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = log.NewNopLogger()
	}
	return &Collector{
		opts:    opts,
		m:       newMetrics(opts.DurationBuckets),
		apps:    make(map[string]*appState),
		apiApps: make(map[string]bool),
	}
}

// SetApps sets the apps and sessions to watch, at start and on every reload.
// A session configured for the first time begins its watch now. Sessions that
// stay keep their counters, histograms and tracker; sessions that go lose
// their series and memory. Apps that go lose their aily_api_* series.
func (c *Collector) SetApps(apps []App) {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++

	type key struct{ app, id string }
	old := make(map[key]*session, len(c.sessions))
	for _, s := range c.sessions {
		old[key{s.app.name, s.id}] = s
	}
	newApps := make(map[string]*appState, len(apps))
	kept := make(map[key]*session)
	var sessions []*session
	for _, a := range apps {
		as := c.apps[a.Name]
		if as == nil {
			as = &appState{name: a.Name, codes: make(map[string]struct{})}
		}
		as.lister = a.Lister
		newApps[a.Name] = as
		for _, id := range a.Sessions {
			k := key{a.Name, id}
			if _, dup := kept[k]; dup || id == "" {
				continue
			}
			s := old[k]
			if s == nil {
				s = &session{app: as, id: id, tracker: NewTracker(now)}
				// Every final status starts at 0 so that the first run to reach
				// one is an increase from 0 that increase() and rate() see.
				for _, st := range feishu.FinalStatuses() {
					c.m.finished.WithLabelValues(a.Name, id, string(st))
				}
				c.m.created.WithLabelValues(a.Name, id)
			}
			kept[k] = s
			sessions = append(sessions, s)
		}
	}

	for k, s := range old {
		if _, ok := kept[k]; ok {
			continue
		}
		// Under the session's lock so that a listing finishing now cannot
		// bring a series back after it has been deleted.
		s.mu.Lock()
		s.removed = true
		s.tracker = nil
		labels := prometheus.Labels{"app": k.app, "session_id": k.id}
		for _, v := range c.m.sessionVectors() {
			v.DeletePartialMatch(labels)
		}
		s.mu.Unlock()
	}

	c.apiMu.Lock()
	for name := range c.apiApps {
		if _, ok := newApps[name]; !ok {
			delete(c.apiApps, name)
			labels := prometheus.Labels{"app": name}
			c.m.apiRequests.DeletePartialMatch(labels)
			c.m.apiDuration.DeletePartialMatch(labels)
			c.m.apiThrottled.DeletePartialMatch(labels)
		}
	}
	for name := range newApps {
		if !c.apiApps[name] {
			c.apiApps[name] = true
			c.m.apiThrottled.WithLabelValues(name) // from 0, so the first throttle is seen
		}
	}
	c.apiMu.Unlock()

	slices.SortFunc(sessions, func(a, b *session) int {
		return cmp.Or(cmp.Compare(a.app.name, b.app.name), cmp.Compare(a.id, b.id))
	})
	c.apps = newApps
	c.sessions = sessions
}

// ForScrape returns a prometheus.Collector for one scrape, bounded by ctx:
// sessions not listed by ctx's deadline are reported down. Register it in a
// registry made for the request.
func (c *Collector) ForScrape(ctx context.Context) prometheus.Collector {
	return scrape{c: c, ctx: ctx}
}

type scrape struct {
	c   *Collector
	ctx context.Context
}

func (s scrape) Describe(ch chan<- *prometheus.Desc) { s.c.Describe(ch) }
func (s scrape) Collect(ch chan<- prometheus.Metric) { s.c.collect(s.ctx, ch) }

// Describe sends the descriptor of every metric the collector sends.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { c.m.describe(ch) }

// Collect scrapes with Options.Timeout as the deadline.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	c.collect(ctx, ch)
}
