package exporter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/collector"
	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/apiusage"
	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/sharding"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// ClientOptions are the flags every app's Feishu client shares.
type ClientOptions struct {
	Timeout     time.Duration
	PageSize    int
	RateLimit   float64
	Concurrency int
	// now is the clients' clock; nil is time.Now (tests set it).
	now func() time.Time
}

// newClient builds app's client; obs may be nil.
func (o ClientOptions) newClient(app *config.App, obs feishu.Observer) (*feishu.Client, error) {
	c, err := feishu.NewClient(feishu.Config{
		BaseURL:             app.BaseURL,
		AppID:               app.AppID,
		AppSecret:           app.Secret(),
		UserAccessTokenFile: app.UserAccessTokenFile,
		Timeout:             o.Timeout,
		MaxConcurrency:      o.Concurrency,
		PageSize:            o.PageSize,
		RateLimit:           o.RateLimit,
		Observer:            obs,
		Now:                 o.now,
	})
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app.Name, err)
	}
	return c, nil
}

// clientKey is what a client is built from besides the flags. While it stays
// the same across a reload the client is kept, and with it its cached token
// and its rate limiter's state.
type clientKey struct {
	baseURL       string
	appID         string
	secret        feishu.Secret
	userTokenFile string
}

func keyOf(app *config.App) clientKey {
	return clientKey{app.BaseURL, app.AppID, app.Secret(), app.UserAccessTokenFile}
}

type appClient struct {
	key    clientKey
	client *feishu.Client
}

// Options are New's inputs; the unexported ones are for tests.
type Options struct {
	Logger log.Logger
	// source loads the configuration: config.Load of --config.file, or the
	// demo simulator's apps.
	Source  func() (*config.Config, error)
	Clients ClientOptions
	// watch are the polling policy and the histograms' buckets, collector
	// the collector's own options.
	Watch     watch.Options
	collector collector.Options
	// onReload, when set, is told the result of every reload (tests).
	onReload func(error)
	// storage, when set, is the state on disk (--storage.path).
	Storage *Storage
	// dailyBudget is --poll.daily-budget, what an app without daily_budget
	// may spend a day; 0 no cap.
	DailyBudget float64
	// discoveryTimeout bounds one fetch of a sessions_url; 0: the
	// discovery package's default (tests shorten it).
	discoveryTimeout time.Duration
	// shard is what this exporter watches of the configuration; the zero
	// value is the only shard.
	Shard sharding.Shard
}

// Exporter holds the loaded configuration, the Feishu clients built from it,
// the watcher of its sessions (which owns their counts) and the collector
// that serves them as metrics.
type Exporter struct {
	logger    log.Logger
	source    func() (*config.Config, error)
	clientOpt ClientOptions
	watcher   *watch.Watcher
	collector *collector.Collector
	// usage is the apps' use of the API, which the collector's client
	// observers write and the status page reads.
	usage    *apiusage.Book
	onReload func(error)
	storage  *Storage
	// dailyBudget is --poll.daily-budget.
	dailyBudget float64
	// discoveryTimeout bounds one fetch of a sessions_url.
	discoveryTimeout time.Duration
	// shard is what this exporter watches of the configuration.
	shard sharding.Shard

	// ctx ends the goroutines of the sessions_url sources (close), each of
	// which sources counts.
	ctx         context.Context
	stopSources context.CancelFunc
	sources     sync.WaitGroup

	// started is when the exporter was made, lastScrape the UnixNano of the
	// last request for the metrics (0 before the first): polling is driven
	// by scrapes, and /status says when none has come yet.
	started    time.Time
	lastScrape atomic.Int64

	reloadSuccess   prometheus.Gauge
	reloadTimestamp prometheus.Gauge
	// reloads carries /-/reload requests to runReloader, which answers on
	// the channel sent.
	reloads chan chan error

	// mu guards the fields below: reloads, the per-scrape sessions_file
	// check and /config all use them.
	mu      sync.Mutex
	cfg     *config.Config
	clients map[string]appClient // by app name
	// sessionsFileErr is, per app, the problem last logged with its
	// sessions_file, so that it is logged when it changes, not every scrape.
	sessionsFileErr map[string]string
	// discoveries are the sessions_url sources, by app name.
	discoveries map[string]*appDiscovery
}

// New builds the exporter; Reload loads its first configuration.
func New(o Options) *Exporter {
	if o.collector.Logger == nil {
		o.collector.Logger = o.Logger
	}
	if o.collector.Usage == nil {
		o.collector.Usage = apiusage.New()
	}
	if o.Watch.Logger == nil {
		o.Watch.Logger = o.Logger
	}
	if o.Storage != nil {
		o.Watch.Saver = o.Storage
	}
	w := watch.New(o.Watch)
	ctx, stop := context.WithCancel(context.Background())
	return &Exporter{
		ctx:              ctx,
		stopSources:      stop,
		discoveryTimeout: o.discoveryTimeout,
		logger:           o.Logger,
		source:           o.Source,
		clientOpt:        o.Clients,
		watcher:          w,
		collector:        collector.New(w, o.collector),
		usage:            o.collector.Usage,
		onReload:         o.onReload,
		storage:          o.Storage,
		dailyBudget:      o.DailyBudget,
		shard:            o.Shard,
		started:          time.Now(),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aily_exporter_config_last_reload_successful",
			Help: "Aily exporter config loaded successfully.",
		}),
		reloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aily_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
		reloads:         make(chan chan error),
		clients:         map[string]appClient{},
		sessionsFileErr: map[string]string{},
		discoveries:     map[string]*appDiscovery{},
	}
}

// RunReloader is the one goroutine through which reloads happen, whether
// asked by SIGHUP or by POST /-/reload, so that two never interleave.
func (e *Exporter) RunReloader(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := e.Reload(); err != nil {
				level.Error(e.logger).Log("msg", "Error reloading config", "trigger", "SIGHUP", "err", err)
			} else {
				level.Info(e.logger).Log("msg", "Reloaded config", "trigger", "SIGHUP")
			}
		case reply := <-e.reloads:
			err := e.Reload()
			if err != nil {
				level.Error(e.logger).Log("msg", "Error reloading config", "trigger", "/-/reload", "err", err)
			} else {
				level.Info(e.logger).Log("msg", "Reloaded config", "trigger", "/-/reload")
			}
			reply <- err
		}
	}
}

// requestReload asks runReloader for a reload and waits for its result.
func (e *Exporter) requestReload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case e.reloads <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reload loads the configuration and builds its clients and its
// sessions_url sources, and fetches the URLs new to it once; only if all of
// that succeeds does it swap them in and hand the apps to the watcher and
// the collector. Otherwise the running configuration stays. A first fetch
// that fails is no failure of the reload: the app goes on with its other
// sessions, and with the sessions its source fetches later.
func (e *Exporter) Reload() (err error) {
	defer func() {
		if err != nil {
			e.reloadSuccess.Set(0)
		} else {
			e.reloadSuccess.Set(1)
			e.reloadTimestamp.SetToCurrentTime()
		}
		if e.onReload != nil {
			e.onReload(err)
		}
	}()
	cfg, err := e.source()
	if err != nil {
		return err
	}
	if cfg == nil || len(cfg.Apps) == 0 {
		return errors.New("the configuration has no apps")
	}
	// The apps of other shards are not polled, exported, fetched from
	// their sessions_url or kept in the state. A shard may own none: it
	// still serves its shard metrics, so that no shard looks missing.
	owned := cfg.Apps[:0:0]
	for _, app := range cfg.Apps {
		if e.shard.OwnsApp(app.Name) {
			owned = append(owned, app)
		}
	}
	cfg.Apps = owned
	sources, fresh, err := e.discoverySources(cfg)
	if err != nil {
		return err
	}
	// Outside e.mu, so that scrapes go on meanwhile.
	e.firstFetch(fresh)

	e.mu.Lock()
	defer e.mu.Unlock()
	clients := make(map[string]appClient, len(cfg.Apps))
	for _, app := range cfg.Apps {
		key := keyOf(app)
		if old, ok := e.clients[app.Name]; ok && old.key == key {
			clients[app.Name] = old
			continue
		}
		c, err := e.clientOpt.newClient(app, e.collector.APIObserver(app.Name))
		if err != nil {
			return err
		}
		clients[app.Name] = appClient{key: key, client: c}
	}
	e.cfg, e.clients = cfg, clients
	e.swapDiscoveries(sources)
	apps := e.watchedApps()
	restored := e.storage.restore(e.watcher, apps, e.shard.Sharded())
	e.collector.SetApps(apps)
	if restored && e.shard.Sharded() {
		// The saved state may hold apps and sessions another shard owns
		// now, which SetApps dropped with the restored records of what is
		// not configured: write the state without them at once, so that
		// they cannot come back from this file should they return to this
		// shard later, with runs counted meanwhile by the other.
		if err := e.watcher.Save(); err != nil {
			level.Warn(e.logger).Log("msg", "Cannot save the state without the sessions of other shards", "err", err)
		}
	}
	for _, w := range cfg.Warnings() {
		level.Warn(e.logger).Log("msg", "Configuration accepted with a warning", "warning", w)
	}
	for _, a := range apps {
		logBudget(e.logger, a.Name, a.DailyBudget, len(a.Sessions))
	}
	if e.shard.Sharded() {
		sessions := 0
		for _, a := range apps {
			sessions += len(a.Sessions)
		}
		level.Info(e.logger).Log("msg", "Shard owns", "shard", e.shard.Ordinal, "total_shards", e.shard.Total,
			"key", e.shard.Key, "apps", len(apps), "sessions", sessions)
	}
	return nil
}

// watchedApps is the configuration as the watcher wants it. e.mu is held.
func (e *Exporter) watchedApps() []watch.App {
	apps := make([]watch.App, 0, len(e.cfg.Apps))
	for _, app := range e.cfg.Apps {
		apps = append(apps, watch.App{
			Name:        app.Name,
			API:         e.clients[app.Name].client,
			Sessions:    ownedSessions(e.shard, app.Name, app.AllSessions()),
			PerSession:  app.SeriesPerSession(),
			Identity:    appIdentity(app),
			DailyBudget: app.RequestBudget(e.dailyBudget) / e.shard.Divisor(),

			MetadataLabels:     app.MetadataLabels,
			MetadataLabelLimit: app.LabelLimit(),
		})
	}
	return apps
}

// ownedSessions are those of app's sessions that shard watches: all of
// them with app keys (the app is the shard's), its share with session keys.
func ownedSessions(shard sharding.Shard, app string, sessions []string) []string {
	if shard.Key != sharding.KeySession || !shard.Sharded() {
		return sessions
	}
	owned := make([]string, 0, len(sessions)/shard.Total+1)
	for _, id := range sessions {
		if shard.OwnsSession(app, id) {
			owned = append(owned, id)
		}
	}
	return owned
}

// refreshSessions re-reads every sessions_file, and takes the list each
// sessions_url source last fetched, before each scrape, and tells the
// collector if one changed. Checking at scrape time costs a read of a small
// file per app and needs no timer, and a change is seen by the very next
// scrape, the only moment it can matter. A file that cannot be read or
// parsed keeps the sessions last read from it; a URL that fails, those last
// fetched from it. Sessions that leave both are dropped as a reload drops
// them.
func (e *Exporter) refreshSessions() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg == nil {
		return
	}
	changed := false
	for _, app := range e.cfg.Apps {
		fromFile := e.refreshSessionsFile(app)
		fromURL := e.refreshURLSessions(app)
		if fromFile || fromURL {
			// As at a reload: the file or the URL may have taken the app
			// past the size.
			if w := app.SizeWarning(); w != "" {
				level.Warn(e.logger).Log("msg", "Configuration accepted with a warning", "app", app.Name, "warning", w)
			}
			changed = true
		}
	}
	if changed {
		e.collector.SetApps(e.watchedApps())
	}
}

// refreshSessionsFile re-reads app's sessions_file and reports whether its
// sessions changed. e.mu is held.
func (e *Exporter) refreshSessionsFile(app *config.App) bool {
	c, err := app.RefreshSessions()
	if err != nil {
		// Once per problem, not once per scrape: a file mounted late
		// would otherwise warn every few seconds until it appears.
		if msg := err.Error(); e.sessionsFileErr[app.Name] != msg {
			level.Warn(e.logger).Log("msg", "Keeping the sessions last read", "app", app.Name, "err", err)
			e.sessionsFileErr[app.Name] = msg
		} else {
			level.Debug(e.logger).Log("msg", "Keeping the sessions last read", "app", app.Name, "err", err)
		}
		return false
	}
	if _, failed := e.sessionsFileErr[app.Name]; failed {
		level.Info(e.logger).Log("msg", "Sessions file readable again", "app", app.Name, "file", app.SessionsFile)
		delete(e.sessionsFileErr, app.Name)
	}
	if c {
		level.Info(e.logger).Log("msg", "Sessions file changed", "app", app.Name, "file", app.SessionsFile,
			"sessions", len(app.AllSessions()))
	}
	return c
}

// redactedConfig is the running configuration for /config.
func (e *Exporter) redactedConfig() ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cfg == nil {
		return nil, errors.New("no configuration loaded")
	}
	return e.cfg.Redacted()
}

// logBudget tells, at start and at every reload, what an app may spend: its
// daily budget, the average rate it allows and what that gives each session.
func logBudget(logger log.Logger, app string, perDay float64, sessions int) {
	if perDay <= 0 {
		level.Info(logger).Log("msg", "Request budget", "app", app, "daily_budget", "none (only --feishu.rate-limit)", "sessions", sessions)
		return
	}
	perSecond := perDay / (24 * time.Hour).Seconds()
	level.Info(logger).Log("msg", "Request budget", "app", app, "daily_budget", perDay,
		"per_second", fmt.Sprintf("%.3g", perSecond), "sessions", sessions,
		"each_session_every", (time.Duration(float64(sessions) / perSecond * float64(time.Second))).Round(time.Second).String())
}
