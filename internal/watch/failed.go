package watch

import (
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// MaxFailedRuns is how many of an app's most recent failed runs the watcher
// keeps for the status page.
const MaxFailedRuns = 100

// MaxFailedMessageBytes bounds the error message kept of a failed run, so
// that the memory of the failed runs stays bounded whatever the API sends.
const MaxFailedMessageBytes = 1024

// FailedRun is a FAILED run the watcher counted, as the status page shows it.
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
func (w *Watcher) FailedRuns(app string) []FailedRun {
	w.mu.Lock()
	apps := w.apps
	w.mu.Unlock()
	w.countMu.Lock()
	defer w.countMu.Unlock()
	var out []FailedRun
	for name, a := range apps {
		if app == "" || name == app {
			out = append(out, a.failed.newestFirst()...)
		}
	}
	slices.SortStableFunc(out, func(a, b FailedRun) int { return b.Time.Compare(a.Time) })
	return out
}

// noteFailed keeps a failed run for the status page and logs it. w.countMu
// is held.
func (w *Watcher) noteFailed(a *app, sessionID string, f *runTiming, now time.Time) {
	fr := FailedRun{
		Time: now, App: a.name, SessionID: sessionID, RunID: BoundedValue(f.Run.ID),
		Duration: time.Duration(f.Seconds * float64(time.Second)), Timed: f.Timed,
	}
	if e := f.Run.Error; e != nil {
		fr.Code, fr.Message = BoundedValue(e.Code), truncateBytes(e.Message, MaxFailedMessageBytes)
	}
	a.failed.add(fr)
	w.failLog.log(&fr, now)
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

// FailedRunsLoggedPerSecond is how many failed runs of an app are logged in a
// second; the others are summarised in one line.
const FailedRunsLoggedPerSecond = 10

// failureLog logs failed runs at info level, at most FailedRunsLoggedPerSecond
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
	if w.logged >= FailedRunsLoggedPerSecond {
		w.skipped++
		return
	}
	w.logged++
	duration := "unknown"
	if f.Timed {
		duration = f.Duration.String()
	}
	level.Info(l.logger).Log("msg", "Run failed", "app", f.App, "session_id", f.SessionID, "run_id", f.RunID,
		"error_code", escapeControl(f.Code, maxValueBytes), "error_message", escapeControl(f.Message, maxLoggedMessageBytes),
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

// maxValueBytes bounds a value taken from the API that becomes a label or a
// key (an error code, a status, a run ID), so that one odd answer cannot put
// kilobytes into every series and into memory.
const maxValueBytes = 128

// BoundedValue returns s, cut to MaxValueBytes on a rune boundary with a
// marker.
func BoundedValue(s string) string {
	if len(s) <= maxValueBytes {
		return s
	}
	const marker = "…"
	cut := maxValueBytes - len(marker)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + marker
}
