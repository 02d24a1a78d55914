// Package apiusage keeps, per app, what the exporter shows of the app's use
// of the Feishu API beyond its metrics: the requests of the last minute and
// the rate-limit answers (the status page), and where its token stands
// (aily_app_token_up and the status page). The collector's client observer
// writes it; the collector and the status page read it.
package apiusage

import (
	"sync"
	"time"
)

// Book is the usage of every configured app. It is safe for concurrent use.
type Book struct {
	mu   sync.RWMutex
	apps map[string]*usage
}

// New returns a Book of no app.
func New() *Book { return &Book{apps: map[string]*usage{}} }

// usage is one app's, behind its own lock so that the apps' clients do not
// contend.
type usage struct {
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

// SetApps keeps the usage of the named apps that were configured before,
// starts afresh for the new ones and forgets the others.
func (b *Book) SetApps(names []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	apps := make(map[string]*usage, len(names))
	for _, name := range names {
		if u := b.apps[name]; u != nil {
			apps[name] = u
		} else {
			apps[name] = &usage{}
		}
	}
	b.apps = apps
}

// of returns the app's usage, nil when it is not configured (a request still
// in flight after a reload removed it).
func (b *Book) of(app string) *usage {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.apps[app]
}

// Request notes an HTTP request of the app's client at now.
func (b *Book) Request(app string, now time.Time) {
	u := b.of(app)
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	sec := now.Unix()
	c := &u.window[sec%int64(len(u.window))]
	if c.sec != sec {
		*c = secondCount{sec: sec}
	}
	c.n++
}

// RateLimited notes a "slow down" answer to the app's client.
func (b *Book) RateLimited(app string) {
	if u := b.of(app); u != nil {
		u.mu.Lock()
		u.rateLimited++
		u.mu.Unlock()
	}
}

// TokenRenewal notes the outcome of the app's token attempt at now: err nil
// when it worked. The client's errors never hold a secret.
func (b *Book) TokenRenewal(app string, err error, now time.Time) {
	u := b.of(app)
	if u == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.tokenErr, u.tokenErrAt = err.Error(), now
		return
	}
	u.tokenOKAt = now
	u.tokenErr, u.tokenErrAt = "", time.Time{}
}

// Usage is what an app's client did.
type Usage struct {
	// RequestsLastMinute are the HTTP requests made in the last 60 s.
	RequestsLastMinute int
	// RateLimited are the "slow down" answers since the exporter started.
	RateLimited uint64
	// TokenError is the error of the last token attempt when it failed,
	// TokenErrorAt when; TokenRenewedAt is when an attempt last worked.
	TokenError     string
	TokenErrorAt   time.Time
	TokenRenewedAt time.Time
}

// Usage returns what the app's client did, by the clock now; the zero Usage
// for an app not configured.
func (b *Book) Usage(app string, now time.Time) Usage {
	u := b.of(app)
	if u == nil {
		return Usage{}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	out := Usage{RateLimited: u.rateLimited, TokenError: u.tokenErr, TokenErrorAt: u.tokenErrAt, TokenRenewedAt: u.tokenOKAt}
	sec := now.Unix()
	for _, c := range u.window {
		if c.sec > sec-int64(len(u.window)) && c.sec <= sec {
			out.RequestsLastMinute += c.n
		}
	}
	return out
}

// TokenState is where an app's token stands, as /status.json spells it.
type TokenState string

// The token states. A token is fetched (or a user token file read) at the
// first poll that needs it, and polls come only with scrapes, so the first
// state is TokenNotFetched, which is neither good nor bad news.
const (
	// TokenNotFetched: no attempt yet; aily_app_token_up is absent.
	TokenNotFetched TokenState = "not fetched yet"
	// TokenOK: the last attempt worked; aily_app_token_up 1.
	TokenOK TokenState = "ok"
	// TokenFailed: the last attempt failed, or the API refused the token
	// just obtained; aily_app_token_up 0.
	TokenFailed TokenState = "failed"
)

// Token returns where the app's token stands.
func (u Usage) Token() TokenState {
	switch {
	case u.TokenError != "":
		return TokenFailed
	case u.TokenRenewedAt.IsZero():
		return TokenNotFetched
	}
	return TokenOK
}
