package collector

import (
	"sync"
	"time"
)

// apiStats is what the status page shows of an app's Feishu API use.
type apiStats struct {
	mu          sync.Mutex
	window      [60]secondCount // requests per second over the last minute
	rateLimited uint64
	tokenErr    string
	tokenErrAt  time.Time
	tokenOKAt   time.Time
}

type secondCount struct {
	sec int64
	n   int
}

func (s *apiStats) request(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := now.Unix()
	b := &s.window[sec%int64(len(s.window))]
	if b.sec != sec {
		*b = secondCount{sec: sec}
	}
	b.n++
}

// APIStatus is what the status page shows of an app's use of the Feishu API.
type APIStatus struct {
	// RequestsLastMinute are the HTTP requests made in the last 60 s.
	RequestsLastMinute int
	// RateLimited are the "slow down" answers since the exporter started.
	RateLimited uint64
	// TokenError is the error of the last token renewal when it failed,
	// TokenErrorAt when; TokenRenewedAt is when a renewal last succeeded.
	TokenError     string
	TokenErrorAt   time.Time
	TokenRenewedAt time.Time
}

// TokenState is where an app's token stands: aily_app_token_up and the
// status page both read it.
type TokenState int

// The token states. A token is fetched (or a user token file read) at the
// first poll that needs it, and polls come only with scrapes.
const (
	// TokenNotFetched: no attempt yet; aily_app_token_up is absent.
	TokenNotFetched TokenState = iota
	// TokenOK: the last attempt worked; aily_app_token_up 1.
	TokenOK
	// TokenFailed: the last attempt failed, or the API refused the token
	// just obtained; aily_app_token_up 0.
	TokenFailed
)

// Token returns where the app's token stands.
func (s APIStatus) Token() TokenState {
	switch {
	case s.TokenError != "":
		return TokenFailed
	case s.TokenRenewedAt.IsZero():
		return TokenNotFetched
	}
	return TokenOK
}

// APIStatus returns what the app's Feishu client did, by the clock now.
func (c *Collector) APIStatus(app string, now time.Time) APIStatus {
	c.apiMu.RLock()
	s := c.apiStats[app]
	c.apiMu.RUnlock()
	if s == nil {
		return APIStatus{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := APIStatus{RateLimited: s.rateLimited, TokenError: s.tokenErr, TokenErrorAt: s.tokenErrAt, TokenRenewedAt: s.tokenOKAt}
	sec := now.Unix()
	for _, b := range s.window {
		if b.sec > sec-int64(len(s.window)) && b.sec <= sec {
			st.RequestsLastMinute += b.n
		}
	}
	return st
}
