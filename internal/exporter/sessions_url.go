package exporter

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"

	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/discovery"
)

// appDiscovery is an app's sessions_url source and its goroutine.
type appDiscovery struct {
	key    discoveryKey
	source *discovery.Source
	stop   context.CancelFunc // ends its Run; nil until started
	done   chan struct{}      // closed when its Run has returned
	// seen is the version of the source's list last given to the app.
	// e.mu guards it.
	seen uint64
}

// discoveryKey is what a source is built from. While it stays the same
// across a reload the source is kept, with its list and its goroutine.
type discoveryKey struct {
	url      string
	interval time.Duration
	http     *config.HTTPClient
}

func (k discoveryKey) equal(o discoveryKey) bool {
	return k.url == o.url && k.interval == o.interval && reflect.DeepEqual(k.http, o.http)
}

func discoveryKeyOf(app *config.App) discoveryKey {
	return discoveryKey{app.SessionsURL, app.SessionsRefreshInterval, app.SessionsHTTPConfig}
}

// newSource builds the sessions_url source of app; it makes no request.
// timeout is a fetch's limit, 0 for discovery's default.
func newSource(app *config.App, timeout time.Duration, e *Exporter) (*discovery.Source, error) {
	o := discovery.Options{
		App:             app.Name,
		URL:             app.SessionsURL,
		HTTP:            app.SessionsHTTPConfig.Prometheus(),
		RefreshInterval: app.SessionsRefreshInterval,
		Timeout:         timeout,
		UserAgent:       ProgramName + "/" + version.Version,
	}
	if e != nil {
		o.Logger = e.logger
	}
	return discovery.New(o)
}

// discoverySources returns the sources cfg's apps need, by app name: those
// running whose settings did not change, and new ones, not started, which
// are also returned in fresh. e.mu is not held.
func (e *Exporter) discoverySources(cfg *config.Config) (sources map[string]*appDiscovery, fresh []*appDiscovery, err error) {
	e.mu.Lock()
	running := e.discoveries
	e.mu.Unlock()
	sources = make(map[string]*appDiscovery)
	for _, app := range cfg.Apps {
		if app.SessionsURL == "" {
			continue
		}
		key := discoveryKeyOf(app)
		if d := running[app.Name]; d != nil && d.key.equal(key) {
			sources[app.Name] = d
			continue
		}
		src, err := newSource(app, e.discoveryTimeout, e)
		if err != nil {
			return nil, nil, fmt.Errorf("app %q: %w", app.Name, err)
		}
		d := &appDiscovery{key: key, source: src, done: make(chan struct{})}
		sources[app.Name] = d
		fresh = append(fresh, d)
	}
	return sources, fresh, nil
}

// firstFetch fetches the URLs of new sources, all at once, each within its
// timeout, so that their sessions are known (and their saved state restored)
// before the first scrape. A failure is the source's to log; the app goes on
// with its other sessions meanwhile.
func (e *Exporter) firstFetch(fresh []*appDiscovery) {
	var wg sync.WaitGroup
	for _, d := range fresh {
		wg.Go(func() { _ = d.source.Refresh(e.ctx) })
	}
	wg.Wait()
}

// swapDiscoveries stops the running sources that sources does not keep,
// starts the new ones, and gives every app the list of its source. e.mu is
// held; e.cfg is the configuration sources were made for.
func (e *Exporter) swapDiscoveries(sources map[string]*appDiscovery) {
	for name, d := range e.discoveries {
		if sources[name] != d {
			d.stop()
		}
	}
	for _, d := range sources {
		if d.stop == nil {
			ctx, stop := context.WithCancel(e.ctx)
			d.stop = stop
			e.sources.Go(func() {
				defer close(d.done)
				d.source.Run(ctx)
			})
		}
	}
	e.discoveries = sources
	for _, app := range e.cfg.Apps {
		d := sources[app.Name]
		if d == nil {
			continue
		}
		static := len(app.AllSessions())
		ids, v := d.source.Sessions()
		app.SetURLSessions(ids)
		d.seen = v
		// The load warned of the sessions it saw; these it did not.
		if w := app.SizeWarning(); w != "" && static <= config.ManySessions {
			level.Warn(e.logger).Log("msg", "Configuration accepted with a warning", "app", app.Name, "warning", w)
		}
	}
}

// refreshURLSessions gives app the list its source last fetched if it
// changed since, and reports whether it did. e.mu is held.
func (e *Exporter) refreshURLSessions(app *config.App) bool {
	d := e.discoveries[app.Name]
	if d == nil {
		return false
	}
	ids, v := d.source.Sessions()
	if v == d.seen {
		return false
	}
	app.SetURLSessions(ids)
	d.seen = v
	return true
}

// Close stops the sources' goroutines and waits for them.
func (e *Exporter) Close() {
	e.stopSources()
	e.sources.Wait()
}

// discoveryStatus is, by app, how the fetches of its sessions_url go.
func (e *Exporter) discoveryStatus() map[string]discovery.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]discovery.Status, len(e.discoveries))
	for name, d := range e.discoveries {
		out[name] = d.source.Status()
	}
	return out
}

// discoveryMetrics exports how each app's sessions_url fetches go:
// aily_sessions_discovery_*, aily_sessions_discovered.
type discoveryMetrics struct {
	e                         *Exporter
	up, lastSuccess, sessions *prometheus.Desc
}

func newDiscoveryMetrics(e *Exporter) *discoveryMetrics {
	return &discoveryMetrics{
		e: e,
		up: prometheus.NewDesc("aily_sessions_discovery_up",
			"1 when the most recent fetch of the app's sessions_url succeeded.", []string{"app"}, nil),
		lastSuccess: prometheus.NewDesc("aily_sessions_discovery_last_success_timestamp_seconds",
			"When the app's sessions_url was last fetched successfully; 0 before the first success.", []string{"app"}, nil),
		sessions: prometheus.NewDesc("aily_sessions_discovered",
			"Session IDs in the list of the app's sessions_url in force: the last one fetched successfully.", []string{"app"}, nil),
	}
}

func (m *discoveryMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.up
	ch <- m.lastSuccess
	ch <- m.sessions
}

func (m *discoveryMetrics) Collect(ch chan<- prometheus.Metric) {
	for app, st := range m.e.discoveryStatus() {
		up, last := 0.0, 0.0
		if st.Up() {
			up = 1
		}
		if !st.LastSuccess.IsZero() {
			last = float64(st.LastSuccess.UnixMilli()) / 1000
		}
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, up, app)
		ch <- prometheus.MustNewConstMetric(m.lastSuccess, prometheus.GaugeValue, last, app)
		ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(st.Sessions), app)
	}
}
