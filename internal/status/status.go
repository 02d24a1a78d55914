// Package status assembles what the exporter's status page shows: per app,
// its sessions by state, its use of the Feishu API, its token's health and
// how the fetches of its sessions_url go;
// per session, its state, freshness, last error and runs; and the most recent
// failed runs. The same Page is rendered as HTML (/status) and JSON
// (/status.json).
package status

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/apiusage"
	"github.com/aily-exporter/aily_exporter/internal/discovery"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// defaultPerPage is how many sessions a page lists.
const defaultPerPage = 100

// Options are what the page knows besides the watcher and the API's use.
type Options struct {
	// RateLimit is each app's request budget in requests per second
	// (--feishu.rate-limit); 0 means none.
	RateLimit float64
	// PerPage is how many sessions a page lists; default DefaultPerPage.
	PerPage int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Started is when the exporter started; LastScrape when the metrics
	// were last scraped, zero before the first scrape. Polling is driven by
	// scrapes, so before the first one nothing has been polled.
	Started    time.Time
	LastScrape time.Time
	// TelemetryPath is where the metrics are served (--web.telemetry-path);
	// default /metrics.
	TelemetryPath string
	// Discovery is, by app, how the fetches of its sessions_url go; apps
	// without one are not in it.
	Discovery map[string]discovery.Status
}

// Query is what the page is asked for: ?app=, ?sort=, ?page=.
type Query struct {
	// App filters sessions and failed runs to one app; "" for all.
	App string `json:"app"`
	// Sort is "state" (failing first, then pending, active, idle) or ""
	// (by app and session ID).
	Sort string `json:"sort"`
	// Page is the page of sessions, from 1.
	Page int `json:"page"`
}

// Page is the status page's data.
type Page struct {
	Generated time.Time `json:"generated"`
	Query     Query     `json:"query"`
	// Started is when the exporter started. LastScrape is when the metrics
	// were last scraped, nil before the first scrape; Notice then says what
	// that means and what to check.
	Started    time.Time  `json:"started"`
	LastScrape *time.Time `json:"last_scrape"`
	Notice     string     `json:"notice,omitempty"`
	Apps       []App      `json:"apps"`
	// FailedRuns are the most recent failed runs (at most
	// watch.MaxFailedRuns per app), of the app asked for or of all,
	// the most recent first.
	FailedRuns []FailedRun `json:"failed_runs"`
	// Sessions are the page's sessions; SessionsTotal how many match the
	// query over all pages.
	Sessions      []Session `json:"sessions"`
	SessionsTotal int       `json:"sessions_total"`
	Pages         int       `json:"pages"`
	PerPage       int       `json:"per_page"`
}

// App is an app's line.
type App struct {
	Name string `json:"name"`
	// Sessions counts its sessions by state: pending, active, idle, failing.
	Sessions map[watch.SessionState]int `json:"sessions"`
	// RequestsLastMinute are the HTTP requests to Feishu in the last 60 s;
	// BudgetPerMinute what --feishu.rate-limit allows in 60 s (0: no limit).
	RequestsLastMinute int     `json:"requests_last_minute"`
	BudgetPerMinute    float64 `json:"budget_per_minute"`
	// Overdue are the sessions never polled or past the staleness target
	// that the last scrape could not poll.
	Overdue int `json:"overdue"`
	// DailyBudget is the app's daily request budget (0: no average cap);
	// ProjectedPerDay the spend a day at the last hour's pace.
	DailyBudget     float64 `json:"daily_budget"`
	ProjectedPerDay float64 `json:"projected_requests_per_day"`
	// StalenessMedianSeconds and StalenessMaxSeconds are the median and the
	// largest age of its sessions' last successful poll; nil before any.
	StalenessMedianSeconds *float64 `json:"staleness_median_seconds"`
	StalenessMaxSeconds    *float64 `json:"staleness_max_seconds"`
	// RateLimited are the "slow down" answers since the exporter started.
	RateLimited uint64 `json:"rate_limited"`
	// Token is the health of its access token.
	Token Token `json:"token"`
	// SessionsURL is how the fetches of its sessions_url go; nil for an
	// app without one.
	SessionsURL *SessionsURL `json:"sessions_url,omitempty"`
}

// SessionsURL is where an app's sessions_url stands: the URL (it never
// holds credentials: they are refused in it), when a fetch last succeeded,
// the error of the most recent fetch if it failed, and how many sessions
// the list in force (the last one fetched well) holds.
type SessionsURL struct {
	URL                    string     `json:"url"`
	RefreshIntervalSeconds float64    `json:"refresh_interval_seconds"`
	Up                     bool       `json:"up"`
	LastAttempt            *time.Time `json:"last_attempt"`
	LastSuccess            *time.Time `json:"last_success"`
	LastError              string     `json:"last_error,omitempty"`
	Sessions               int        `json:"sessions"`
}

// Token is an app's token health: whether a token was fetched yet, the error
// of its last renewal if that failed, and when a renewal last succeeded.
type Token struct {
	State TokenState `json:"state"`
	// Healthy is State == TokenOK.
	Healthy   bool       `json:"healthy"`
	Error     string     `json:"error,omitempty"`
	ErrorAt   *time.Time `json:"error_at,omitempty"`
	RenewedAt *time.Time `json:"renewed_at,omitempty"`
}

// TokenState is where an app's token stands: apiusage's, the one meaning
// of the name.
type TokenState = apiusage.TokenState

// The token states, as apiusage defines them.
const (
	TokenNotFetched = apiusage.TokenNotFetched
	TokenOK         = apiusage.TokenOK
	TokenFailed     = apiusage.TokenFailed
)

// Session is a session's line.
type Session struct {
	App   string             `json:"app"`
	ID    string             `json:"id"`
	State watch.SessionState `json:"state"`
	// LastSuccess is when its last successful poll began, AgeSeconds how
	// long ago; nil before its first.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	AgeSeconds  *float64   `json:"last_success_age_seconds,omitempty"`
	// Error is its most recent poll's error, in words; "" when it worked.
	Error string `json:"error,omitempty"`
	// InFlight counts its runs not final by status; OldestSeconds is the
	// age of the oldest of them. Both as of its last successful poll.
	InFlight      map[feishu.RunStatus]int `json:"in_flight"`
	OldestSeconds *float64                 `json:"oldest_in_flight_seconds,omitempty"`
	// Finished counts the runs seen reaching each final status since its
	// watch began.
	Finished map[feishu.RunStatus]int `json:"finished"`
}

// FailedRun is a failed run's line.
type FailedRun struct {
	Time      time.Time `json:"time"`
	App       string    `json:"app"`
	SessionID string    `json:"session_id"`
	RunID     string    `json:"run_id"`
	Code      string    `json:"error_code"`
	Message   string    `json:"error_message"`
	// DurationSeconds is ended_at − started_at; nil when not known.
	DurationSeconds *float64 `json:"duration_seconds,omitempty"`
}

// stateOrder is the order of sort=state: what needs attention first.
var stateOrder = map[watch.SessionState]int{watch.Failing: 0, watch.Pending: 1, watch.Active: 2, watch.Idle: 3}

// UnknownAppError is Build's error when the query asks for an app that is
// not configured: a typo, or an app a reload removed.
type UnknownAppError struct {
	App string `json:"app"`
	// Apps are the configured apps, sorted.
	Apps []string `json:"apps"`
}

func (e *UnknownAppError) Error() string {
	return fmt.Sprintf("no app %q is configured; the configured apps are: %s", e.App, strings.Join(e.Apps, ", "))
}

// UsageSource tells an app's use of the Feishu API (an *apiusage.Book).
type UsageSource interface {
	Usage(app string, now time.Time) apiusage.Usage
}

// Build returns the page for q from what the watcher holds and api tells
// now, or an *UnknownAppError when q.App is not a configured app.
func Build(w *watch.Watcher, api UsageSource, o Options, q Query) (*Page, error) {
	if o.PerPage <= 0 {
		o.PerPage = defaultPerPage
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TelemetryPath == "" {
		o.TelemetryPath = "/metrics"
	}
	names := w.AppNames()
	if q.App != "" && !slices.Contains(names, q.App) {
		// An empty page would read as "this app is fine, nothing failed".
		return nil, &UnknownAppError{App: q.App, Apps: names}
	}
	now := o.Now()
	p := &Page{Generated: now, Query: q, Started: o.Started, PerPage: o.PerPage, FailedRuns: []FailedRun{}, Sessions: []Session{}}
	if o.LastScrape.IsZero() {
		p.Notice = noScrapeYet(o.TelemetryPath, o.Started, now)
	} else {
		t := o.LastScrape
		p.LastScrape = &t
	}

	overdue := w.Overdue()
	budgets := w.Budgets()
	apps := map[string]*App{}
	for _, name := range names {
		api := api.Usage(name, now)
		a := App{
			Name:               name,
			Sessions:           map[watch.SessionState]int{},
			RequestsLastMinute: api.RequestsLastMinute,
			BudgetPerMinute:    o.RateLimit * 60,
			Overdue:            overdue[name],
			DailyBudget:        budgets[name].PerDay,
			ProjectedPerDay:    budgets[name].ProjectedPerDay,
			RateLimited:        api.RateLimited,
			Token:              Token{State: TokenOK, Healthy: true},
		}
		switch api.Token() {
		case TokenFailed:
			a.Token = Token{State: TokenFailed, Error: api.TokenError}
		case TokenNotFetched:
			a.Token = Token{State: TokenNotFetched}
		}
		for _, st := range watch.SessionStates() {
			a.Sessions[st] = 0
		}
		if !api.TokenErrorAt.IsZero() {
			a.Token.ErrorAt = &api.TokenErrorAt
		}
		if !api.TokenRenewedAt.IsZero() {
			a.Token.RenewedAt = &api.TokenRenewedAt
		}
		if d, ok := o.Discovery[name]; ok {
			a.SessionsURL = sessionsURL(d)
		}
		p.Apps = append(p.Apps, a)
	}
	for i := range p.Apps {
		apps[p.Apps[i].Name] = &p.Apps[i]
	}

	finished := w.FinishedBySession()
	var sessions []Session
	ages := map[string][]time.Duration{}
	w.EachSnapshot(func(s *watch.Snapshot) {
		if a := apps[s.App]; a != nil {
			a.Sessions[s.State]++
		}
		if !s.LastSuccess.IsZero() {
			ages[s.App] = append(ages[s.App], now.Sub(s.LastSuccess))
		}
		if q.App != "" && s.App != q.App {
			return
		}
		sessions = append(sessions, session(s, finished[watch.SessionKey{App: s.App, ID: s.ID}], now))
	})
	for name, a := range apps {
		if d := ages[name]; len(d) > 0 {
			slices.Sort(d)
			a.StalenessMedianSeconds, a.StalenessMaxSeconds = seconds(d[len(d)/2]), seconds(d[len(d)-1])
		}
	}
	if q.Sort == "state" {
		slices.SortStableFunc(sessions, func(a, b Session) int {
			return cmp.Compare(stateOrder[a.State], stateOrder[b.State])
		})
	}
	p.SessionsTotal = len(sessions)
	p.Pages = max((len(sessions)+o.PerPage-1)/o.PerPage, 1)
	p.Query.Page = min(max(q.Page, 1), p.Pages)
	from := (p.Query.Page - 1) * o.PerPage
	p.Sessions = append(p.Sessions, sessions[from:min(from+o.PerPage, len(sessions))]...)

	for _, f := range w.FailedRuns(q.App) {
		fr := FailedRun{Time: f.Time, App: f.App, SessionID: f.SessionID, RunID: f.RunID, Code: f.Code, Message: f.Message}
		if f.Timed {
			fr.DurationSeconds = seconds(f.Duration)
		}
		p.FailedRuns = append(p.FailedRuns, fr)
	}
	return p, nil
}

// sessionsURL returns an app's line of its sessions_url.
func sessionsURL(d discovery.Status) *SessionsURL {
	out := &SessionsURL{URL: d.URL, RefreshIntervalSeconds: d.RefreshInterval.Seconds(), Up: d.Up(),
		LastError: d.LastError, Sessions: d.Sessions}
	if !d.LastAttempt.IsZero() {
		t := d.LastAttempt
		out.LastAttempt = &t
	}
	if !d.LastSuccess.IsZero() {
		t := d.LastSuccess
		out.LastSuccess = &t
	}
	return out
}

// noScrapeYet is the page's notice before the first scrape.
func noScrapeYet(telemetryPath string, started, now time.Time) string {
	since := ""
	if !started.IsZero() {
		since = " " + max(now.Sub(started), 0).Round(time.Second).String() + " ago"
	}
	return fmt.Sprintf("No scrape of %s has come since the exporter started%s. "+
		"Sessions are polled only when Prometheus scrapes %s: until the first scrape every session stays pending, "+
		"no token is fetched and no run is counted. If this lasts longer than a scrape interval, "+
		"check the Prometheus scrape configuration (a job whose target is this exporter's address and port, "+
		"as in dashboards/prometheus.yml; see Prometheus configuration in docs/alerts.md) "+
		"and the target's state on Prometheus' Targets page.",
		telemetryPath, since, telemetryPath)
}

// session returns the line of a session.
func session(s *watch.Snapshot, finished feishu.ByFinal[float64], now time.Time) Session {
	out := Session{App: s.App, ID: s.ID, State: s.State, InFlight: map[feishu.RunStatus]int{}, Finished: map[feishu.RunStatus]int{}}
	if !s.LastSuccess.IsZero() {
		t := s.LastSuccess
		out.LastSuccess, out.AgeSeconds = &t, seconds(now.Sub(t))
	}
	if s.Err != nil {
		out.Error = s.Err.Error()
	}
	for i, st := range feishu.FinalStatuses() {
		out.Finished[st] = int(finished[i])
	}
	if s.Runs != nil {
		var oldest time.Time
		for st, n := range s.Runs.InFlight {
			out.InFlight[st] = n
			if o := s.Runs.Oldest[st]; !o.IsZero() && (oldest.IsZero() || o.Before(oldest)) {
				oldest = o
			}
		}
		if !oldest.IsZero() {
			out.OldestSeconds = seconds(now.Sub(oldest))
		}
	}
	return out
}

func seconds(d time.Duration) *float64 {
	s := max(d, 0).Round(time.Millisecond).Seconds()
	return &s
}

// ParseQuery reads ?app=, ?sort= and ?page=; a page that is not a number is
// the first.
func ParseQuery(get func(string) string) Query {
	q := Query{App: get("app"), Page: 1}
	if get("sort") == "state" {
		q.Sort = "state"
	}
	if n, err := strconv.Atoi(get("page")); err == nil {
		q.Page = n
	}
	return q
}
