package collector

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/watch"
)

// MaxFailedRuns is how many of an app's most recent failed runs the collector
// keeps for the status page.
const MaxFailedRuns = 100

// maxFailedMessageBytes bounds the error message kept of a failed run, so
// that the memory of the failed runs stays bounded whatever the API sends.
const maxFailedMessageBytes = 1024

// FailedRun is a FAILED run the collector counted, as the status page shows it.
type FailedRun struct {
	// Time is when the exporter counted it.
	Time      time.Time
	App       string
	SessionID string
	RunID     string
	// Code and Message are the run's error.code and error.message as the
	// API sent them (Message cut to 1 KiB); both empty when it had none.
	Code    string
	Message string
	// Duration is ended_at − started_at; Timed is false when a timestamp
	// was missing.
	Duration time.Duration
	Timed    bool
}

// failedRing is an app's most recent failed runs, at most MaxFailedRuns.
type failedRing struct {
	runs []FailedRun // in ring order once full
	next int         // where the next run goes once full
}

func (r *failedRing) add(f FailedRun) {
	if len(r.runs) < MaxFailedRuns {
		r.runs = append(r.runs, f)
		return
	}
	r.runs[r.next] = f
	r.next = (r.next + 1) % MaxFailedRuns
}

// newestFirst returns a copy of the runs, the most recent first.
func (r *failedRing) newestFirst() []FailedRun {
	out := make([]FailedRun, 0, len(r.runs))
	for i := range r.runs {
		out = append(out, r.runs[(r.next+len(r.runs)-1-i)%len(r.runs)])
	}
	return out
}

// FailedRuns returns the most recent failed runs of the app, at most
// MaxFailedRuns, the most recent first; of every app when app is "".
func (c *Collector) FailedRuns(app string) []FailedRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []FailedRun
	for name, r := range c.failed {
		if app == "" || name == app {
			out = append(out, r.newestFirst()...)
		}
	}
	slices.SortStableFunc(out, func(a, b FailedRun) int { return b.Time.Compare(a.Time) })
	return out
}

// noteFailed keeps a failed run for the status page and logs it. c.mu is held.
func (c *Collector) noteFailed(app, sessionID string, f *watch.RunTiming, now time.Time) {
	fr := FailedRun{
		Time: now, App: app, SessionID: sessionID, RunID: labelValue(f.Run.ID),
		Duration: time.Duration(f.Seconds * float64(time.Second)), Timed: f.Timed,
	}
	if e := f.Run.Error; e != nil {
		fr.Code, fr.Message = labelValue(e.Code), truncateBytes(e.Message, maxFailedMessageBytes)
	}
	r := c.failed[app]
	if r == nil {
		r = &failedRing{}
		c.failed[app] = r
	}
	r.add(fr)
	c.failLog.log(&fr, now)
}

// truncateBytes returns s cut to at most n bytes on a rune boundary, with a
// marker when cut.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const marker = "…"
	cut := n - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

// maxLoggedMessageBytes bounds the error_message of a failed run's log line.
const maxLoggedMessageBytes = 256

// failedRunsLoggedPerSecond is how many failed runs of an app are logged in a
// second; the others are summarised in one line.
const failedRunsLoggedPerSecond = 10

// failureLog logs failed runs at info level, at most failedRunsLoggedPerSecond
// per app and second; the runs left out are summarised in one line when
// their second has passed (at the next failed run or scrape). Callers lock.
type failureLog struct {
	logger log.Logger
	apps   map[string]*failureWindow
}

// failureWindow is an app's current second of failed-run logging.
type failureWindow struct {
	start   time.Time
	logged  int
	skipped int
}

func (l *failureLog) log(f *FailedRun, now time.Time) {
	if l.apps == nil {
		l.apps = make(map[string]*failureWindow)
	}
	w := l.apps[f.App]
	if w == nil || now.Sub(w.start) >= time.Second || now.Before(w.start) {
		if w != nil {
			l.summarise(f.App, w)
		}
		w = &failureWindow{start: now}
		l.apps[f.App] = w
	}
	if w.logged >= failedRunsLoggedPerSecond {
		w.skipped++
		return
	}
	w.logged++
	duration := "unknown"
	if f.Timed {
		duration = f.Duration.String()
	}
	level.Info(l.logger).Log("msg", "Run failed", "app", f.App, "session_id", f.SessionID, "run_id", f.RunID,
		"error_code", escapeControl(f.Code, maxLabelBytes), "error_message", escapeControl(f.Message, maxLoggedMessageBytes),
		"duration", duration)
}

// flush summarises the windows whose second has passed by now.
func (l *failureLog) flush(now time.Time) {
	for app, w := range l.apps {
		if now.Sub(w.start) >= time.Second || now.Before(w.start) {
			l.summarise(app, w)
			delete(l.apps, app)
		}
	}
}

func (l *failureLog) summarise(app string, w *failureWindow) {
	if w.skipped == 0 {
		return
	}
	level.Info(l.logger).Log("msg", fmt.Sprintf("%d more failed runs of app %s in the last second", w.skipped, app),
		"app", app, "not_logged", w.skipped, "since", w.start.UTC().Format(time.RFC3339Nano))
	w.skipped = 0
}

// forget drops the logging state of apps no longer configured, summarising
// what they left out.
func (l *failureLog) forget(keep func(app string) bool) {
	for app, w := range l.apps {
		if !keep(app) {
			l.summarise(app, w)
			delete(l.apps, app)
		}
	}
}

// escapeControl returns s with control characters and invalid UTF-8 escaped
// as in a Go string literal (\n, \x1b, \u2028), cut to at most n bytes on an
// escape's boundary, with a marker when cut.
func escapeControl(s string, n int) string {
	const marker = "…"
	out := make([]byte, 0, min(len(s), n))
	cutAt := -1 // the length of out at the last escape that leaves room for the marker
	for i, r := range s {
		var piece string
		switch {
		case r == utf8.RuneError && !validRuneAt(s, i):
			piece = fmt.Sprintf(`\x%02x`, s[i])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			q := strconv.QuoteRune(r)
			piece = q[1 : len(q)-1]
		default:
			piece = s[i : i+utf8.RuneLen(r)]
		}
		if cutAt < 0 && len(out)+len(piece) > n-len(marker) {
			cutAt = len(out)
		}
		out = append(out, piece...)
		if len(out) > n {
			return string(out[:cutAt]) + marker
		}
	}
	return string(out)
}

// validRuneAt reports whether s holds a valid encoding at i (a literal
// U+FFFD rather than an invalid byte).
func validRuneAt(s string, i int) bool {
	r, size := utf8.DecodeRuneInString(s[i:])
	return r != utf8.RuneError || size == 3
}

// apiStats is what the status page shows of an app's Feishu API use.
type apiStats struct {
	mu          sync.Mutex
	window      [60]secondCount // requests per second over the last minute
	rateLimited uint64
	tokenErr    string
	tokenErrAt  time.Time
	tokenOKAt   time.Time
}

type secondCount struct {
	sec int64
	n   int
}

func (s *apiStats) request(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := now.Unix()
	b := &s.window[sec%int64(len(s.window))]
	if b.sec != sec {
		*b = secondCount{sec: sec}
	}
	b.n++
}

// APIStatus is what the status page shows of an app's use of the Feishu API.
type APIStatus struct {
	// RequestsLastMinute are the HTTP requests made in the last 60 s.
	RequestsLastMinute int
	// RateLimited are the "slow down" answers since the exporter started.
	RateLimited uint64
	// TokenError is the error of the last token renewal when it failed,
	// TokenErrorAt when; TokenRenewedAt is when a renewal last succeeded.
	TokenError     string
	TokenErrorAt   time.Time
	TokenRenewedAt time.Time
}

// TokenState is where an app's token stands: aily_app_token_up and the
// status page both read it.
type TokenState int

// The token states. A token is fetched (or a user token file read) at the
// first poll that needs it, and polls come only with scrapes.
const (
	// TokenNotFetched: no attempt yet; aily_app_token_up is absent.
	TokenNotFetched TokenState = iota
	// TokenOK: the last attempt worked; aily_app_token_up 1.
	TokenOK
	// TokenFailed: the last attempt failed, or the API refused the token
	// just obtained; aily_app_token_up 0.
	TokenFailed
)

// Token returns where the app's token stands.
func (s APIStatus) Token() TokenState {
	switch {
	case s.TokenError != "":
		return TokenFailed
	case s.TokenRenewedAt.IsZero():
		return TokenNotFetched
	}
	return TokenOK
}

// APIStatus returns what the app's Feishu client did, by the clock now.
func (c *Collector) APIStatus(app string, now time.Time) APIStatus {
	c.apiMu.RLock()
	s := c.apiStats[app]
	c.apiMu.RUnlock()
	if s == nil {
		return APIStatus{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := APIStatus{RateLimited: s.rateLimited, TokenError: s.tokenErr, TokenErrorAt: s.tokenErrAt, TokenRenewedAt: s.tokenOKAt}
	sec := now.Unix()
	for _, b := range s.window {
		if b.sec > sec-int64(len(s.window)) && b.sec <= sec {
			st.RequestsLastMinute += b.n
		}
	}
	return st
}

// FinishedBySession returns, per session, the runs seen reaching each final
// status (in the order of feishu.FinalStatuses()) since its watch began; a
// session of an app with per_session: false, since the exporter started.
// Runs whose count /metrics does not show yet (held until the series has
// been served at zero) are included.
func (c *Collector) FinishedBySession() map[watch.SessionKey][4]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[watch.SessionKey][4]float64, len(c.counts)+len(c.finishedOnly))
	for k, cs := range c.counts {
		f := cs.finished
		if cs.held != nil {
			for i, n := range cs.held.finished {
				f[i] += n
			}
		}
		out[watch.SessionKey{App: k.app, ID: k.id}] = f
	}
	for k, f := range c.finishedOnly {
		out[watch.SessionKey{App: k.app, ID: k.id}] = f
	}
	return out
}

// finalIndex returns the index of st in feishu.FinalStatuses(), or -1.
func finalIndex(st feishu.RunStatus) int { return slices.Index(feishu.FinalStatuses(), st) }

// AppNames returns the names of the configured apps, sorted.
func (c *Collector) AppNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.apps))
	for name := range c.apps {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
