//go:build unix

package dashboards

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// The window of the sums compared: longer than Prometheus has run, so that
// every series the exporter exposes begins inside it. increase() over such a
// window is the series' last value minus its first, with no extrapolation
// when the first value is 0 and the query is evaluated at a scrape's
// timestamp: a series that first appears at 0 gives its whole count, one that
// first appears above 0 loses what it started at.
const increaseWindow = "1h"

const (
	// increaseTolerance is how far apart the sums may be, relative to the
	// whole: a new error code's first failure is held for a scrape or two
	// while aily_runs_finished_total{status="FAILED"} already shows it, and
	// a run cancelled while queued has no duration.
	increaseTolerance = 0.03
	// minFailedRuns and minFailureSeries: enough failed runs, and error codes
	// new to their session, for a lost first increment per series to show.
	minFailedRuns    = 20
	minFailureSeries = 5
)

// checkIncreaseSeesEveryIncrement asserts that summed over error codes,
// increase(aily_run_failures_total) equals the increase of FAILED runs, and
// that increase(aily_run_duration_seconds_count) equals the increase of
// finished runs, within increaseTolerance: every series, including the
// (session, error_code) series that appeared during the test, gives
// increase() its first increment.
func checkIncreaseSeesEveryIncrement(t *testing.T, prom promAPI, procs []*process) {
	t.Helper()
	pairs := []struct{ what, parts, whole string }{
		{"failures by error code against FAILED runs",
			`sum(increase(aily_run_failures_total[` + increaseWindow + `]))`,
			`sum(increase(aily_runs_finished_total{status="FAILED"}[` + increaseWindow + `]))`},
		{"duration observations against finished runs",
			`sum(increase(aily_run_duration_seconds_count[` + increaseWindow + `]))`,
			`sum(increase(aily_runs_finished_total[` + increaseWindow + `]))`},
	}
	waitFor(t, fmt.Sprintf("%d failed runs over at least %d (session, error_code) series", minFailedRuns, minFailureSeries),
		120*time.Second, procs, func() error {
			failed, err := prom.scalar(`sum(aily_runs_finished_total{status="FAILED"})`)
			if err != nil {
				return err
			}
			series, err := prom.scalar(`count(aily_run_failures_total)`)
			if err != nil {
				return err
			}
			if failed < minFailedRuns || series < minFailureSeries {
				return fmt.Errorf("%v failed runs, %v failure series", failed, series)
			}
			return nil
		})
	var last string
	waitFor(t, "the sums to agree", 30*time.Second, procs, func() error {
		// At the timestamp of the latest scrape: no extrapolation to the
		// window's end.
		at, err := prom.scalar(`max(timestamp(aily_up))`)
		if err != nil {
			return err
		}
		last = ""
		apart := false
		for _, p := range pairs {
			parts, err := prom.scalarAt(p.parts, at)
			if err != nil {
				return err
			}
			whole, err := prom.scalarAt(p.whole, at)
			if err != nil {
				return err
			}
			last += fmt.Sprintf("\n%s: %s = %v, %s = %v: %.1f%% apart", p.what, p.parts, parts, p.whole, whole,
				100*math.Abs(parts-whole)/whole)
			apart = apart || !(math.Abs(parts-whole) <= increaseTolerance*whole)
		}
		if apart {
			return fmt.Errorf("more than %.0f%% apart:%s", 100*increaseTolerance, last)
		}
		return nil
	})
	t.Logf("over %s:%s", increaseWindow, last)
}

// scalarAt is scalar evaluated at the Unix time at.
func (p promAPI) scalarAt(expr string, at float64) (float64, error) {
	return p.scalarQuery(url.Values{"query": {expr}, "time": {strconv.FormatFloat(at, 'f', 3, 64)}})
}
