package collector

import (
	"context"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// t0 is when the sessions began to be watched in these tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 shifted by the given seconds.
func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// run builds a run; created, started and ended are seconds from t0, and NaN
// leaves the timestamp out.
func run(id string, st feishu.RunStatus, created, started, ended float64) feishu.Run {
	r := feishu.Run{ID: id, Status: st, SessionID: "s1", AppID: "spring_a"}
	set := func(dst *time.Time, v float64) {
		if v == v { // not NaN
			*dst = at(v)
		}
	}
	set(&r.CreatedAt, created)
	set(&r.StartedAt, started)
	set(&r.EndedAt, ended)
	return r
}

var none = nan()

func nan() float64 { z := 0.0; return z / z }

const (
	queued     = feishu.StatusQueued
	inProgress = feishu.StatusInProgress
	completed  = feishu.StatusCompleted
	failed     = feishu.StatusFailed
)

type watchKey = watch.SessionKey

// baselineServedTwice scrapes c twice: the sessions' baseline, and a second
// scrape, so that their known series have been served at zero in two
// scrapes. With no min interval (newTestCollector's default), the next
// scrape then shows at once what it counts for them; an error code new to a
// session is still served at zero first.
func baselineServedTwice(t *testing.T, c *Collector) {
	t.Helper()
	gather(t, context.Background(), c)
	gather(t, context.Background(), c)
}
