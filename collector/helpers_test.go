package collector

import (
	"context"
	"testing"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/watch"
	"github.com/prometheus/client_golang/prometheus"
)

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

// timed is c as one prometheus.Collector whose every collection is a
// scrape with the watcher's timeout as its deadline: the tests register
// and lint it without making a scrape per gathering.
type timed struct{ c *Collector }

// Describe sends nothing: the collector is unchecked (see Collector).
func (t timed) Describe(chan<- *prometheus.Desc) {}

func (t timed) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), t.c.w.Timeout())
	defer cancel()
	t.c.collect(ctx, ch, nil)
}
