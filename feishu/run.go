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

// FinalStatuses returns the documented final statuses, in the order of
// their FinalIndex.
func FinalStatuses() []RunStatus {
	return []RunStatus{StatusCompleted, StatusFailed, StatusCancelled, StatusExpired}
}

// FinalIndex is the place of a final status in FinalStatuses: what counts by
// final status (ByFinal) are indexed by.
type FinalIndex int

// The final statuses' indices, and how many there are.
const (
	FinalCompleted FinalIndex = iota
	FinalFailed
	FinalCancelled
	FinalExpired
	NumFinal = 4
)

// Status returns the final status of the index.
func (i FinalIndex) Status() RunStatus { return FinalStatuses()[i] }

// FinalIndexOf returns the index of a final status; false for a status that
// is not final.
func FinalIndexOf(st RunStatus) (FinalIndex, bool) {
	switch st {
	case StatusCompleted:
		return FinalCompleted, true
	case StatusFailed:
		return FinalFailed, true
	case StatusCancelled:
		return FinalCancelled, true
	case StatusExpired:
		return FinalExpired, true
	}
	return 0, false
}

// ByFinal holds one value per final status, indexed by FinalIndex. It
// encodes in JSON as an array in the order of FinalStatuses.
type ByFinal[T any] [NumFinal]T

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
