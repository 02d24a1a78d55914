package collector

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// A scrape answers after its polls: it saves the state, then the collector
// reads every session, the registry gathers, checks and sorts every series
// and promhttp encodes, compresses and sends them. With many sessions that
// takes seconds, so the time it takes is reserved out of the scrape's
// deadline, as measured by the scrapes before, and the polls get what is
// left; when nothing is left they get no time and the scrape serves the last
// state (docs/performance.md).
//
// The time to answer is reckoned per series answered, and per configured
// session: every answer reads every session, whether it has series of its
// own (per_session: true) or is summed into its app's (per_session: false).
// A session counts as 1/sessionsPerSeries of a series.

// DefaultSecondsPerSeries is the time answering a scrape is assumed to take
// per series until a scrape has measured it: BenchmarkAnswer measures 9 to
// 18 µs a series on a 2 vCPU VM, 10.6 to 17.7 µs at 100,000 sessions with
// per_session: true (docs/performance.md).
const DefaultSecondsPerSeries = 13e-6

// defaultSaveSecondsPerSession is the time saving the state is assumed to
// take per configured session until a save has measured it:
// BenchmarkSaveState's figure for 10,000 sessions with 10 runs in flight
// each, rounded up.
const defaultSaveSecondsPerSession = 20e-6

// sessionsPerSeries is how many configured sessions take as long to read
// as a series takes to answer: BenchmarkAnswer reads a session of an app
// with per_session: false in 0.45 to 1.1 µs, and answers a series in 9 to
// 18 µs.
const sessionsPerSeries = 16

// Series expected of a session of an app with per_session: true, and of an
// app, before a scrape has counted them: a session of BenchmarkAnswer, and
// an app with per_session: false and a few error codes.
const (
	guessSeriesPerSession = 25
	guessSeriesPerApp     = 30
)

// answerCost estimates how long a scrape takes to answer after its polls,
// from what the answers before took.
type answerCost struct {
	mu sync.Mutex
	// encode is per series answered (sessions included, see above), save
	// per configured session.
	encode, save rate
	// saving is whether a save may follow the polls (a Saver is set).
	saving bool
	// sessions are those configured; guess the series expected of the
	// configuration, series those of the last answer since it changed (0
	// before one).
	sessions, guess, series int
	// warned is whether the polls were last left no time by a measured
	// answer, and it was logged; told again when they get time again.
	warned bool
	// now is the clock answers and saves are timed by.
	now func() time.Time
}

func newAnswerCost(secondsPerSeries float64, saving bool) *answerCost {
	return &answerCost{
		encode: rate{perUnit: secondsPerSeries},
		save:   rate{perUnit: defaultSaveSecondsPerSession},
		saving: saving,
		now:    time.Now,
	}
}

// configure takes the apps and sessions configured now: until a scrape
// answers, the series expected are guessed from them.
func (a *answerCost) configure(apps []watch.App) {
	sessions, guess := 0, 0
	for _, app := range apps {
		sessions += len(app.Sessions)
		guess += guessSeriesPerApp
		if app.PerSession {
			guess += guessSeriesPerSession * len(app.Sessions)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions != sessions || a.guess != guess {
		a.series = 0
	}
	a.sessions, a.guess = sessions, guess
}

// expected returns the series the next answer is expected to have, and the
// time to keep out of a scrape's deadline for answering after its polls.
// a.mu is held.
func (a *answerCost) expected() (series int, reserve time.Duration) {
	series = a.series
	if series == 0 {
		series = a.guess
	}
	reserve = a.encode.of(a.units(series)) + a.savingTime()
	return series, reserve
}

// savingTime returns the part of the reserve for saving the state. a.mu is
// held.
func (a *answerCost) savingTime() time.Duration {
	if !a.saving {
		return 0
	}
	return a.save.of(float64(a.sessions))
}

// units is the work of an answer of series series: those, and the
// configured sessions read. a.mu is held.
func (a *answerCost) units(series int) float64 {
	return float64(series) + float64(a.sessions)/sessionsPerSeries
}

// answered records an answer of series series that took took after the
// polls and the save.
func (a *answerCost) answered(series int, took time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.encode.observe(a.units(series), took)
	a.series = series
}

// saved records a save of the state of sessions sessions that took took.
func (a *answerCost) saved(sessions int, took time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.save.observe(float64(max(sessions, 1)), took)
}

// rate is a running estimate of the seconds a unit of work takes (a series
// answered, a session saved). It follows a measurement above it at once,
// since an answer that comes too late is lost, and one below it halfway, so
// that a slow answer (a long GC, a slow reader) is forgotten within a few
// scrapes.
type rate struct{ perUnit float64 }

func (r *rate) observe(units float64, took time.Duration) {
	if !(units > 0) || took < 0 {
		return
	}
	v := took.Seconds() / units
	if v >= r.perUnit {
		r.perUnit = v
	} else {
		r.perUnit = (r.perUnit + v) / 2
	}
}

func (r rate) of(units float64) time.Duration {
	return time.Duration(r.perUnit * units * float64(time.Second))
}

// pollContext returns the context of a scrape's polls: ctx with its
// deadline (or the watcher's timeout from now) less the time reserved for
// answering. ok is false when that leaves the polls no time.
func (c *Collector) pollContext(ctx context.Context) (pctx context.Context, cancel context.CancelFunc, ok bool) {
	now := time.Now()
	deadline, has := ctx.Deadline()
	if !has {
		deadline = now.Add(c.w.Timeout())
	}
	c.cost.mu.Lock()
	series, reserve := c.cost.expected()
	pollDeadline := deadline.Add(-reserve)
	starved := !pollDeadline.After(now)
	// A reserve guessed from a new configuration, before an answer is
	// measured, may be too large (sessions that were never polled have few
	// series): it is followed, but warns only once measured.
	warn := starved && c.cost.series > 0 && !c.cost.warned
	relief := !starved && c.cost.warned
	c.cost.warned = (c.cost.warned || warn) && !relief
	c.cost.mu.Unlock()
	switch {
	case warn:
		level.Warn(c.opts.Logger).Log("msg", "No time left for polling: answering the scrape is expected to take all of its deadline, so sessions keep their last state; set per_session: false for apps with many sessions, shard them over several exporters, or raise scrape_timeout",
			"deadline", deadline.Sub(now).Round(time.Millisecond), "reserved_for_answering", reserve.Round(time.Millisecond), "series", series)
	case relief:
		level.Info(c.opts.Logger).Log("msg", "Polling again: the scrape's deadline leaves time for it",
			"deadline", deadline.Sub(now).Round(time.Millisecond), "reserved_for_answering", reserve.Round(time.Millisecond))

	}
	if starved {
		return nil, nil, false
	}
	pctx, cancel = context.WithDeadline(ctx, pollDeadline)
	return pctx, cancel, true
}

// Scrape is the prometheus.Collector of one scrape (see ForScrape).
type Scrape struct {
	c   *Collector
	ctx context.Context

	mu sync.Mutex
	// answering is when the polls and the save were done and the answer
	// began; zero until Collect has got there.
	answering time.Time
}

// Describe sends nothing: the collector is unchecked (see Collector).
func (s *Scrape) Describe(chan<- *prometheus.Desc) {}

// Collect polls what is due within the scrape's deadline, less the time
// reserved for answering, and sends every series.
func (s *Scrape) Collect(ch chan<- prometheus.Metric) { s.c.collect(s.ctx, ch, s) }

// Answered tells that the scrape's answer, of series series, has been sent.
// The time it took since the polls and the save, per series, is what the
// next scrapes reserve for answering. Call it only for an answer sent in
// full: one cut short says nothing of the time a whole one takes.
func (s *Scrape) Answered(series int) {
	s.mu.Lock()
	start := s.answering
	s.mu.Unlock()
	if start.IsZero() {
		return
	}
	s.c.cost.answered(series, s.c.cost.now().Sub(start))
}

// startAnswer notes that the polls and the save are done.
func (s *Scrape) startAnswer() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answering = s.c.cost.now()
}

// AnswerCost is what the collector expects answering a scrape to take after
// its polls.
type AnswerCost struct {
	// Series are those of the last answer, or those expected of the
	// configuration until one is measured.
	Series int
	// SecondsPerSeries is the running estimate of answering a series, each
	// configured session counting as one series more.
	SecondsPerSeries float64
	// Reserve is what the next scrape keeps out of its deadline for
	// answering: its series and sessions, and saving the state when there
	// is one.
	Reserve time.Duration
}

// AnswerCost returns what the collector expects answering a scrape to take.
func (c *Collector) AnswerCost() AnswerCost {
	c.cost.mu.Lock()
	defer c.cost.mu.Unlock()
	series, reserve := c.cost.expected()
	return AnswerCost{Series: series, SecondsPerSeries: c.cost.encode.perUnit, Reserve: reserve}
}
