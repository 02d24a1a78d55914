// Package discovery fetches the session IDs an app watches from a URL, as
// Prometheus' http_sd fetches targets. The Feishu API cannot list an app's
// sessions; the agent's own code, which creates them, knows their IDs and
// can publish them (docs/discovery.md).
//
// A Source fetches one URL, keeps the last list it could read, and tells
// how its fetches go. It knows nothing of polling or of Prometheus metrics:
// the caller merges the list into the app's sessions and reports it.
package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	promconfig "github.com/prometheus/common/config"

	"github.com/aily-exporter/aily_exporter/internal/config"
)

// maxAnswerBytes is the most read of one answer, some 130,000 session IDs:
// a larger answer is refused, so that a wrong URL (a log file, a download)
// cannot fill the memory.
const maxAnswerBytes = 4 << 20

// defaultTimeout is how long one fetch may take, reading the answer
// included, unless the refresh interval is shorter.
const defaultTimeout = 10 * time.Second

// Options are a Source's settings.
type Options struct {
	// App names the app in the logs.
	App string
	// URL is fetched with GET; an absolute http(s) URL without user info.
	URL string
	// HTTP are the client settings (credentials, TLS, proxy) as
	// prometheus/common/config takes them; start from its
	// DefaultHTTPClientConfig (the zero value follows no redirect).
	HTTP promconfig.HTTPClientConfig
	// RefreshInterval is how often Run fetches URL; default
	// config.DefaultSessionsRefreshInterval.
	RefreshInterval time.Duration
	// Timeout bounds one fetch; default DefaultTimeout, and never more than
	// RefreshInterval.
	Timeout time.Duration
	// MaxBytes is the most read of an answer; default MaxAnswerBytes.
	MaxBytes int64
	// UserAgent is sent with each fetch.
	UserAgent string
	// Logger gets a warning when fetches start failing or fail
	// differently, and a line when they work again or the list changes.
	Logger log.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Status is how a Source's fetches go, for /status and the metrics.
type Status struct {
	// URL is the URL fetched, without user info.
	URL             string
	RefreshInterval time.Duration
	// LastAttempt is when the most recent fetch began, LastSuccess when
	// the most recent one that succeeded did; zero before any.
	LastAttempt time.Time
	LastSuccess time.Time
	// LastError is the most recent fetch's error; "" when it succeeded.
	LastError string
	// Sessions is how many session IDs the list in force holds: the last
	// good one.
	Sessions int
}

// Up reports whether the most recent fetch succeeded.
func (s Status) Up() bool { return !s.LastAttempt.IsZero() && s.LastError == "" }

// Source fetches one app's sessions_url. Its methods are safe for
// concurrent use.
type Source struct {
	opts   Options
	client *http.Client
	url    string // opts.URL as shown

	fetching sync.Mutex // one fetch at a time

	mu      sync.Mutex
	ids     []string
	version uint64
	status  Status
}

// New returns a Source of o. It makes no request; it fails when o's URL
// or client settings cannot be used (a TLS file missing, say).
func New(o Options) (*Source, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, errors.New("sessions_url must be an absolute http(s) URL")
	case u.User != nil:
		return nil, fmt.Errorf("sessions_url %s must not hold user info: set basic_auth instead", u.Redacted())
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = config.DefaultSessionsRefreshInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	o.Timeout = min(o.Timeout, o.RefreshInterval)
	if o.MaxBytes <= 0 {
		o.MaxBytes = maxAnswerBytes
	}
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var opts []promconfig.HTTPClientOption
	if o.UserAgent != "" {
		opts = append(opts, promconfig.WithUserAgent(o.UserAgent))
	}
	client, err := promconfig.NewClientFromConfig(o.HTTP, "sessions_url", opts...)
	if err != nil {
		return nil, fmt.Errorf("sessions_http_config: %w", err)
	}
	s := &Source{opts: o, client: client, url: u.String()}
	s.status = Status{URL: s.url, RefreshInterval: o.RefreshInterval}
	return s, nil
}

// Sessions returns the list in force, the last one fetched well (none
// before), and its version, which changes whenever the list does: a caller
// that saw the version needs not look at the list again.
func (s *Source) Sessions() (ids []string, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids, s.version
}

// Status returns how the fetches go.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Run fetches the URL every RefreshInterval until ctx ends. It does not
// fetch at once: the first fetch is the caller's Refresh, at start, so that
// the sessions are known before the first scrape.
func (s *Source) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.RefreshInterval)
	defer t.Stop()
	defer s.client.CloseIdleConnections()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.Refresh(ctx)
		}
	}
}

// Refresh fetches the URL once. A list read well replaces the list in
// force; on an error the list in force stays, and the error is returned
// and kept in the Status. A failure is logged as a warning when it starts
// or its error changes, its repeats at debug level.
func (s *Source) Refresh(ctx context.Context) error {
	s.fetching.Lock()
	defer s.fetching.Unlock()
	start := s.opts.Now()
	ids, err := s.fetch(ctx)

	s.mu.Lock()
	was := s.status
	s.status.LastAttempt = start
	var added, removed int
	if err != nil {
		s.status.LastError = err.Error()
	} else {
		s.status.LastSuccess, s.status.LastError, s.status.Sessions = start, "", len(ids)
		added, removed = difference(s.ids, ids)
		if added+removed > 0 {
			s.ids = ids
			s.version++
		}
	}
	kept := len(s.ids)
	s.mu.Unlock()

	logger := log.With(s.opts.Logger, "app", s.opts.App, "url", s.url)
	switch {
	case err != nil && err.Error() != was.LastError:
		level.Warn(logger).Log("msg", "Cannot fetch the sessions of sessions_url; keeping the last list",
			"sessions_kept", kept, "err", err)
	case err != nil:
		level.Debug(logger).Log("msg", "Cannot fetch the sessions of sessions_url; keeping the last list",
			"sessions_kept", kept, "err", err)
	case was.LastError != "":
		level.Info(logger).Log("msg", "Fetching sessions_url works again", "sessions", len(ids))
	}
	if added+removed > 0 {
		level.Info(logger).Log("msg", "Sessions from sessions_url changed", "sessions", len(ids),
			"added", added, "removed", removed)
	}
	return err
}

// difference counts the IDs of next not in last, and those of last not in
// next.
func difference(last, next []string) (added, removed int) {
	in := make(map[string]bool, len(last))
	for _, id := range last {
		in[id] = true
	}
	for _, id := range next {
		if !in[id] {
			added++
		}
		delete(in, id)
	}
	return added, len(in)
}

// fetch GETs the URL and reads the list in its answer.
func (s *Source) fetch(ctx context.Context) ([]string, error) {
	fctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(fctx, http.MethodGet, s.opts.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, text/plain;q=0.9")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, s.requestError(ctx, fctx, "GET", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s: want 200 and the list of session IDs", resp.Status)
	}
	parse, err := parserFor(resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > s.opts.MaxBytes {
		return nil, fmt.Errorf("the answer is %d bytes, more than %s, the most read from sessions_url", resp.ContentLength, size(s.opts.MaxBytes))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxBytes+1))
	if err != nil {
		return nil, s.requestError(ctx, fctx, "reading the answer", err)
	}
	if int64(len(body)) > s.opts.MaxBytes {
		return nil, fmt.Errorf("the answer is larger than %s, the most read from sessions_url", size(s.opts.MaxBytes))
	}
	return parse(body)
}

// requestError words an error of the request or of reading its answer:
// the timeout by its length, the rest without the URL (the caller shows it
// beside).
func (s *Source) requestError(ctx, fctx context.Context, doing string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: canceled: %w", doing, ctx.Err())
	case errors.Is(fctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: no complete answer within %v, the fetch's timeout", doing, s.opts.Timeout)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// parserFor returns how to read an answer of the Content-Type ct.
func parserFor(ct string) (func([]byte) ([]string, error), error) {
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err == nil && mt == "application/json":
		return parseJSON, nil
	case err == nil && mt == "text/plain":
		return parseText, nil
	}
	return nil, fmt.Errorf("Content-Type %.100q is neither application/json (a JSON array of session IDs) "+
		"nor text/plain (one session ID a line, as in a sessions_file)", ct)
}

// parseText reads the sessions_file format.
func parseText(b []byte) ([]string, error) {
	ids, err := config.ParseSessions(b)
	if err != nil {
		return nil, fmt.Errorf("text/plain answer: %w", err)
	}
	return ids, nil
}

// parseJSON reads a JSON array of session IDs; an ID listed twice counts
// once.
func parseJSON(b []byte) ([]string, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil, errors.New(`the JSON answer is not an array: want ["session_…", …]`)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("the JSON answer does not parse: %w at byte %d", err, se.Offset)
		}
		return nil, fmt.Errorf("the JSON answer does not parse: %w", err)
	}
	ids := make([]string, 0, len(items))
	seen := make(map[string]bool, len(items))
	for i, raw := range items {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, fmt.Errorf("item [%d] of the JSON array is %.40s, not a session ID in quotes", i, raw)
		}
		if err := config.CheckSessionID(id); err != nil {
			return nil, fmt.Errorf("item [%d] of the JSON array: %w", i, err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return slices.Clip(ids), nil
}

// size writes a byte count as MiB or KiB.
func size(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
