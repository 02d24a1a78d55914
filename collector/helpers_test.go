package collector

import (
	"context"
	"testing"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/watch"
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
