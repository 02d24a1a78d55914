// Package feishu is a small, exact client for the Feishu (Lark) Open Platform's
// Aily runs API: tenant tokens, paging, rate limits, retries and typed errors.
// It knows nothing about Prometheus; the exporter observes it through Observer.
package feishu

import (
	"fmt"
	"strconv"
	"time"
)

// RunStatus is a run's status as the API spells it. Values the API adds later
// are kept as they are.
type RunStatus string

// The run statuses of the official SDKs' RunRunStatusEnum.
const (
	StatusQueued          RunStatus = "QUEUED"
	StatusInProgress      RunStatus = "IN_PROGRESS"
	StatusRequiresMessage RunStatus = "REQUIRES_MESSAGE"
	StatusCompleted       RunStatus = "COMPLETED"
	StatusFailed          RunStatus = "FAILED"
	StatusCancelled       RunStatus = "CANCELLED"
	StatusExpired         RunStatus = "EXPIRED"
)

// Final reports whether a run in this status will not change any more.
// No source states which statuses are terminal; COMPLETED, FAILED, CANCELLED
// and EXPIRED are by their meaning. Unknown statuses are not final, so a run in
// a status the API adds later is remembered rather than counted too early.
func (s RunStatus) Final() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// KnownStatuses returns every documented status, non-final ones first.
func KnownStatuses() []RunStatus {
	return []RunStatus{
		StatusQueued, StatusInProgress, StatusRequiresMessage,
		StatusCompleted, StatusFailed, StatusCancelled, StatusExpired,
	}
}

// FinalStatuses returns the documented final statuses.
func FinalStatuses() []RunStatus {
	return []RunStatus{StatusCompleted, StatusFailed, StatusCancelled, StatusExpired}
}

// Run is one run of an Aily session, decoded from the API's wire form.
// Timestamps are zero when the API left them out or sent a malformed value,
// or one outside the plausible window (before 2020, or more than a day after
// the client's clock).
type Run struct {
	ID        string
	AppID     string // the Aily app (spring_…), not the Feishu credential app (cli_…)
	SessionID string
	Status    RunStatus
	CreatedAt time.Time
	StartedAt time.Time
	EndedAt   time.Time
	Error     *RunError // set on failed runs
	Metadata  string
}

// RunError is the error a failed run carries. Code is a string such as
// "sp_ec_sm_900101", not the platform's integer code.
type RunError struct {
	Code    string
	Message string
}

// ParseMillis parses the API's timestamp form: decimal Unix milliseconds in a
// string. An empty string is the zero time and no error.
func ParseMillis(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 {
		return time.Time{}, fmt.Errorf("timestamp %q is not Unix milliseconds", truncate(s, 32))
	}
	return time.UnixMilli(ms), nil
}

// FormatMillis is the inverse of ParseMillis; the zero time formats as "".
func FormatMillis(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}
