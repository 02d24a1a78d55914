package watch

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// BenchmarkFreshness simulates, on a fake clock, bursty sessions (quiet for
// 2–20 minutes, then 2–5 runs of 1–20 s one after another) scraped every
// 10 s under a daily budget, and reports the time from a run's end to its
// count, p50 and p99, against the round-robin bound: max(scrape interval,
// sessions ÷ requests a second spent). Run it once per case:
//
//	go test -run '^$' -bench Freshness -benchtime 1x ./internal/watch/
func BenchmarkFreshness(b *testing.B) {
	for _, sessions := range []int{40, 1000, 10000} {
		for _, perDay := range []float64{21600, 100000, 1000000} {
			b.Run(fmt.Sprintf("sessions=%d/budget=%.0f", sessions, perDay), func(b *testing.B) {
				for range b.N {
					r := simulateFreshness(sessions, perDay, 10*time.Second)
					b.ReportMetric(r.p50, "p50_s")
					b.ReportMetric(r.p99, "p99_s")
					b.ReportMetric(r.bound, "bound_s")
					b.ReportMetric(r.p99/r.bound, "p99/bound")
					b.ReportMetric(r.spentPerDay, "spent/day")
					b.ReportMetric(float64(r.counted), "runs")
				}
			})
		}
	}
}

type freshness struct {
	p50, p99, bound, spentPerDay float64
	counted                      int
}

// simEvent is a run's creation or end in the simulation.
type simEvent struct {
	at  time.Time
	run feishu.Run
	// next: on a burst's last run's end, when the session's next burst
	// begins; zero otherwise.
	next time.Time
}

type simEvents []simEvent

func (e simEvents) Len() int           { return len(e) }
func (e simEvents) Less(i, j int) bool { return e[i].at.Before(e[j].at) }
func (e simEvents) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *simEvents) Push(x any)        { *e = append(*e, x.(simEvent)) }
func (e *simEvents) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

// delayRecorder notes, for each run counted finished, how long after its
// end it was counted.
type delayRecorder struct {
	mu     sync.Mutex
	now    func() time.Time
	from   time.Time
	delays []float64
}

func (d *delayRecorder) Record(_ *Session, obs *Observation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for _, f := range obs.Finished {
		if f.Run.EndedAt.After(d.from) {
			d.delays = append(d.delays, now.Sub(f.Run.EndedAt).Seconds())
		}
	}
}

func simulateFreshness(n int, perDay float64, scrapeEvery time.Duration) freshness {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(perDay)))
	clk := feishufake.NewClock(t0)
	// Pages of 50, --feishu.page-size's default.
	mem := newMemAPI(newestFirst, 50)
	ids := make([]string, n)
	events := &simEvents{}
	quiet := func() time.Duration { return 2*time.Minute + time.Duration(rng.Float64()*float64(18*time.Minute)) }
	seq := 0
	// burst queues the runs of a burst starting at start.
	burst := func(session string, start time.Time) {
		runs := 2 + rng.IntN(4)
		at := start
		for i := range runs {
			seq++
			r := feishu.Run{ID: fmt.Sprintf("r%d", seq), SessionID: session, Status: feishu.StatusInProgress, CreatedAt: at, StartedAt: at}
			heap.Push(events, simEvent{at: at, run: r})
			end := at.Add(time.Second + time.Duration(rng.Float64()*float64(19*time.Second)))
			fin := r
			fin.Status, fin.EndedAt = feishu.StatusCompleted, end
			ev := simEvent{at: end, run: fin}
			if i == runs-1 {
				ev.next = end.Add(quiet())
			}
			heap.Push(events, ev)
			at = end.Add(time.Duration(rng.Float64() * float64(5*time.Second)))
		}
	}
	for i := range ids {
		ids[i] = fmt.Sprintf("s%05d", i)
		// A run of history, and the first burst somewhere in the first
		// quiet spell.
		old := t0.Add(-time.Hour)
		mem.put(feishu.Run{ID: ids[i] + "/h", SessionID: ids[i], Status: feishu.StatusCompleted, CreatedAt: old, StartedAt: old, EndedAt: old})
		burst(ids[i], t0.Add(time.Duration(rng.Float64()*float64(20*time.Minute))))
	}

	rate := perDay / (24 * 60 * 60)
	bound := max(scrapeEvery.Seconds(), float64(n)/rate)
	warmup := time.Duration(max(1800, bound) * float64(time.Second))
	measure := time.Duration(max(3600, 2*bound) * float64(time.Second))
	rec := &delayRecorder{now: clk.Now, from: t0.Add(warmup)}
	w := NewRecorded(Options{MinInterval: flagMinInterval, Now: clk.Now, RateLimit: 20}, rec)
	w.SetApps([]App{{Name: "a", API: mem, Sessions: ids, DailyBudget: perDay}})

	end := t0.Add(warmup + measure)
	for now := t0; now.Before(end); now = now.Add(scrapeEvery) {
		clk.Advance(now.Sub(clk.Now()))
		for events.Len() > 0 && !(*events)[0].at.After(now) {
			ev := heap.Pop(events).(simEvent)
			mem.put(ev.run)
			if !ev.next.IsZero() {
				burst(ev.run.SessionID, ev.next)
			}
		}
		if now.Equal(t0.Add(warmup)) {
			mem.requests() // from here on, what is spent is measured
		}
		pollWithin(w, 10*time.Second)
	}
	lists, gets := mem.requests()
	spent := float64(lists+gets) / measure.Seconds()
	// The bound with what was spent: a round robin over every session.
	bound = max(scrapeEvery.Seconds(), float64(n)/spent)
	var delays []float64
	rec.mu.Lock()
	delays = append(delays, rec.delays...)
	rec.mu.Unlock()
	slices.Sort(delays)
	q := func(p float64) float64 {
		if len(delays) == 0 {
			return 0
		}
		return delays[min(int(p*float64(len(delays))), len(delays)-1)]
	}
	return freshness{p50: q(0.5), p99: q(0.99), bound: bound, spentPerDay: spent * 86400, counted: len(delays)}
}
