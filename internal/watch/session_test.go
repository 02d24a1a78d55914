package watch

import (
	"testing"
	"time"
)

func TestBackoffDoublesUpToTheIdleInterval(t *testing.T) {
	minInterval, idleInterval := 5*time.Second, 5*time.Minute
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, 5 * time.Second}, {2, 10 * time.Second}, {3, 20 * time.Second}, {6, 160 * time.Second}, {7, 300 * time.Second}, {50, 300 * time.Second}} {
		if got := backoff(minInterval, idleInterval, tc.n); got != tc.want {
			t.Errorf("after %d failures: %v, want %v", tc.n, got, tc.want)
		}
	}
	if got := backoff(0, time.Minute, 1); got != time.Second {
		t.Errorf("with no min interval: %v, want 1s", got)
	}
}
