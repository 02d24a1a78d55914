package feishu

import "time"

// Endpoint names a Feishu API endpoint the client calls, as used in metrics.
type Endpoint string

// The endpoints the client calls.
const (
	EndpointTenantToken Endpoint = "tenant_token"
	EndpointListRuns    Endpoint = "list_runs"
	EndpointGetRun      Endpoint = "get_run"
)

// Observer is told what the client does, so that the exporter can count it
// without this package knowing about Prometheus. Implementations must be safe
// for concurrent use and must not block.
type Observer interface {
	// ObserveRequest is called once per HTTP attempt. code is the API's code
	// ("0", "99991400", …), or "http_<status>" when the body carried no code,
	// or "canceled" when the caller's context was cancelled or passed its
	// deadline before the answer was read, or "transport" when no response
	// arrived for another reason.
	ObserveRequest(endpoint Endpoint, code string, took time.Duration)
	// ObserveRateLimited is called when the API said "slow down" (HTTP 429 or
	// code 99991400); wait is how long the client will wait before retrying.
	ObserveRateLimited(endpoint Endpoint, wait time.Duration)
	// ObserveTokenRenewal is called after each attempt to obtain a new token
	// (a renewal, a read of the user access token file), and when the API
	// refuses a token just obtained; err is nil on success, else a
	// *CredentialError. Requests failed at once during a back-off after a
	// failed renewal are not attempts.
	ObserveTokenRenewal(err error)
	// ObserveMalformedRun is called for a run whose fields could not all be
	// decoded (e.g. a timestamp that is not milliseconds, or one before 2020
	// or more than a day after Config.Now). The run is still returned, with
	// the bad field zero.
	ObserveMalformedRun(sessionID, runID string, err error)
}

// NopObserver ignores everything.
type NopObserver struct{}

// ObserveRequest does nothing.
func (NopObserver) ObserveRequest(Endpoint, string, time.Duration) {}

// ObserveRateLimited does nothing.
func (NopObserver) ObserveRateLimited(Endpoint, time.Duration) {}

// ObserveTokenRenewal does nothing.
func (NopObserver) ObserveTokenRenewal(error) {}

// ObserveMalformedRun does nothing.
func (NopObserver) ObserveMalformedRun(string, string, error) {}
