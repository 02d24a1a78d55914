package watch

import (
	"math"
	"sync"
	"time"
)

// burstShare is the daily budget's burst allowance: how many seconds' worth
// of the day's budget may be spent at once, for a baseline or a catch-up
// after an outage. Any hour then spends at most its share plus this much
// (5 minutes' worth, 8⅓% of the hourly share), and any 24 hours at most
// the budget.
const burstShare = 5 * time.Minute

// dailyBudget is one app's request budget per day: a token bucket whose
// depth is the burst allowance and whose refill keeps any 24 hours within
// the budget. It starts full, so that a fresh exporter lists its sessions
// at once. Safe for concurrent use.
type dailyBudget struct {
	mu     sync.Mutex
	capped bool    // false: no average cap
	perDay float64 // 0 when not capped
	rate   float64 // refill, per second
	depth  float64
	tokens float64
	at     time.Time // when tokens was last brought up to date
	spent  spendLog
}

// newDailyBudget returns a full bucket for perDay requests a day; perDay 0
// (or less) is no cap.
func newDailyBudget(perDay float64, now time.Time) *dailyBudget {
	b := &dailyBudget{at: now, spent: spendLog{start: now}}
	b.set(perDay, now)
	return b
}

// set changes the budget (a reload), keeping the tokens saved up so far
// within the new depth.
func (b *dailyBudget) set(perDay float64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if !(perDay > 0) || math.IsInf(perDay, 0) {
		b.capped, b.perDay, b.rate, b.depth, b.tokens = false, 0, 0, 0, 0
		return
	}
	fresh := !b.capped
	b.capped, b.perDay = true, perDay
	b.depth = max(perDay*burstShare.Seconds()/(24*time.Hour).Seconds(), 1)
	b.rate = max(perDay-b.depth, 0) / (24 * time.Hour).Seconds()
	if fresh {
		b.tokens = b.depth
	}
	b.tokens = min(b.tokens, b.depth)
}

// refill brings the tokens up to now. b.mu is held.
func (b *dailyBudget) refill(now time.Time) {
	// A clock going back refills nothing.
	b.tokens = min(b.tokens+max(now.Sub(b.at).Seconds(), 0)*b.rate, b.depth)
	b.at = later(b.at, now)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// reserve takes up to want requests out of the budget for one scrape and
// returns how many it got; unlimited reports no cap. What a scrape does not
// spend it gives back with settle.
func (b *dailyBudget) reserve(want int, now time.Time) (got int, unlimited bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.capped {
		return want, true
	}
	b.refill(now)
	got = min(want, int(b.tokens))
	b.tokens -= float64(got)
	return got, false
}

// settle records the requests a scrape spent and gives back the rest of
// what it reserved.
func (b *dailyBudget) settle(reserved, spent int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.capped {
		b.tokens = min(b.tokens+float64(max(reserved-spent, 0)), b.depth)
	}
	b.spent.add(spent, now)
}

// BudgetStatus is what an app's daily budget stands at.
type BudgetStatus struct {
	// PerDay is the budget in force, requests a day; 0 when there is none.
	PerDay float64
	// ProjectedPerDay is the spend projected over a day from the last hour
	// (from the time since start, during the first hour).
	ProjectedPerDay float64
	// Available is what may be spent at once now.
	Available float64
}

func (b *dailyBudget) status(now time.Time) BudgetStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return BudgetStatus{PerDay: b.perDay, ProjectedPerDay: b.spent.projected(now), Available: b.tokens}
}

// spendLog counts requests per minute over the last hour.
type spendLog struct {
	start   time.Time
	minutes [60]struct {
		at int64 // Unix minute the slot holds
		n  int
	}
}

func (l *spendLog) add(n int, now time.Time) {
	m := now.Unix() / 60
	s := &l.minutes[m%60]
	if s.at != m {
		s.at, s.n = m, 0
	}
	s.n += n
}

// projected returns the requests a day at the last hour's pace: over the
// time since start while that is shorter than an hour (at least a minute).
func (l *spendLog) projected(now time.Time) float64 {
	m := now.Unix() / 60
	total := 0
	for _, s := range l.minutes {
		if s.at > m-60 && s.at <= m {
			total += s.n
		}
	}
	window := min(max(now.Sub(l.start), time.Minute), time.Hour)
	return float64(total) * (24 * time.Hour).Seconds() / window.Seconds()
}
