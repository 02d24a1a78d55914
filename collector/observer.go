package collector

import (
	"sync"
	"time"

	"github.com/go-kit/log/level"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// APIObserver returns the feishu.Observer to give the client of the named app:
// it feeds aily_api_requests_total, aily_api_request_duration_seconds and
// aily_api_rate_limited_total. It is safe for concurrent use and cheap (a
// shared read lock and a label lookup per call). Calls are ignored while the
// app is not configured by SetApps, so that a request still in flight after a
// reload removed the app cannot bring its series back.
func (c *Collector) APIObserver(app string) feishu.Observer {
	return apiObserver{c: c, app: app}
}

type apiObserver struct {
	c   *Collector
	app string
}

func (o apiObserver) ObserveRequest(ep feishu.Endpoint, code string, took time.Duration) {
	o.c.apiMu.RLock()
	defer o.c.apiMu.RUnlock()
	if !o.c.apiApps[o.app] {
		return
	}
	o.c.m.apiRequests.WithLabelValues(o.app, string(ep), code).Inc()
	o.c.m.apiDuration.WithLabelValues(o.app, string(ep)).Observe(max(took.Seconds(), 0))
	o.c.opts.Usage.Request(o.app, o.c.now())
}

func (o apiObserver) ObserveRateLimited(feishu.Endpoint, time.Duration) {
	o.c.apiMu.RLock()
	defer o.c.apiMu.RUnlock()
	if !o.c.apiApps[o.app] {
		return
	}
	o.c.m.apiThrottled.WithLabelValues(o.app).Inc()
	o.c.opts.Usage.RateLimited(o.app)
}

// ObserveTokenRenewal keeps the outcome of the app's last token attempt,
// which aily_app_token_up and the status page's token state show (the status
// page with the error). The client's errors never hold a secret.
func (o apiObserver) ObserveTokenRenewal(err error) {
	o.c.opts.Usage.TokenRenewal(o.app, err, o.c.now())
}

// ObserveMalformedRun logs at debug level, once per run: the run is still
// counted in the status metrics, and only the histograms miss it.
func (o apiObserver) ObserveMalformedRun(sessionID, runID string, err error) {
	if !o.c.malformed.first(o.app + "\x00" + sessionID + "\x00" + runID) {
		return
	}
	level.Debug(o.c.opts.Logger).Log("msg", "run with a malformed field", "app", o.app,
		"session_id", sessionID, "run_id", runID, "err", err)
}

// maxMalformedLogged bounds the runs remembered as logged malformed; past it
// the memory starts again, and a run may be logged once more.
const maxMalformedLogged = 10000

// onceSet tells, for a key, whether it is seen for the first time.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (s *onceSet) first(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[key]; ok {
		return false
	}
	if s.seen == nil || len(s.seen) >= maxMalformedLogged {
		s.seen = make(map[string]struct{})
	}
	s.seen[key] = struct{}{}
	return true
}
