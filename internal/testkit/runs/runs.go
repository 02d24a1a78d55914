// Package runs builds feishu.Run values for tests.
package runs

import (
	"math"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// None leaves a timestamp out of a run built by New.
var None = math.NaN()

// New builds a run of session "s1" of app "spring_a"; created, started and
// ended are seconds from testkit.T0, and None leaves the timestamp out.
func New(id string, st feishu.RunStatus, created, started, ended float64) feishu.Run {
	r := feishu.Run{ID: id, Status: st, SessionID: "s1", AppID: "spring_a"}
	set := func(dst *time.Time, v float64) {
		if !math.IsNaN(v) {
			*dst = testkit.At(v)
		}
	}
	set(&r.CreatedAt, created)
	set(&r.StartedAt, started)
	set(&r.EndedAt, ended)
	return r
}
