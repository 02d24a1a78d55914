package feishu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// response is an HTTP answer, with its body decoded once.
type response struct {
	status int
	header http.Header
	body   []byte
	// envelope is the body's code and msg; envelopeErr says why the body
	// is not a JSON object (nil when it is).
	envelope    apiBody
	envelopeErr error
	// decodeErr is the error of the request's bodyDecoder, nil when it
	// decoded the body or there was none.
	decodeErr error
	tooLarge  bool // the body was over the size cap, and not kept
}

// bodyDecoder decodes a whole response body, envelope and data together, in
// one pass into the caller's structure, and returns the envelope. On an
// error the envelope is decoded again on its own, so that the answer is
// still classified; the caller then finds the error in response.decodeErr.
type bodyDecoder func(body []byte) (apiBody, error)

// newResponse decodes a body: with decode if there is one, else, or if that
// fails, just its envelope.
func newResponse(status int, header http.Header, body []byte, decode bodyDecoder) *response {
	r := &response{status: status, header: header, body: body}
	if decode != nil {
		env, err := decode(body)
		if err == nil {
			r.envelope = env
			return r
		}
		r.decodeErr = err
	}
	r.envelopeErr = json.Unmarshal(body, &r.envelope)
	return r
}

// tooLargeResponse is an answer whose body was over limit bytes.
func tooLargeResponse(status int, header http.Header, limit int64) *response {
	return &response{
		status: status, header: header, tooLarge: true,
		envelopeErr: fmt.Errorf("response body larger than %d bytes", limit),
	}
}

// apiBody is the part every Feishu response body shares. Code is a pointer
// so that a body without a code is told apart from code 0.
type apiBody struct {
	Code *int   `json:"code"`
	Msg  string `json:"msg"`
}

// do sends the request that build makes (once per attempt, so that bodies
// are fresh) and returns the response if it is HTTP 2xx with code 0, its
// body decoded by decode (nil: the envelope only).
//
// It waits for the client-side limiter before every attempt; after a
// rate-limit answer it waits as the response asks and tries again, at most
// maxRateLimitRetries times; after a 5xx or a transport error it backs off
// and tries again, at most maxAttempts attempts in all. It never sleeps past
// ctx's deadline: if a wait would, it returns the last error at once.
func (c *Client) do(ctx context.Context, ep Endpoint, build func(ctx context.Context) (*http.Request, error), decode bodyDecoder) (*response, error) {
	var rateLimited, failures int
	for {
		if err := ctx.Err(); err != nil {
			return nil, c.transportError(ep, err)
		}
		if c.limiter != nil {
			if err := c.limiter.Wait(ctx); err != nil {
				return nil, fmt.Errorf("client-side rate limit: %w", err)
			}
		}
		req, err := build(ctx)
		if err != nil {
			return nil, fmt.Errorf("build %s request: %w", ep, err)
		}
		req.Header.Set("User-Agent", userAgent)

		resp, err := c.attempt(ep, req, decode)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				// The caller's deadline or cancellation, not a flaky network:
				// report it as such and do not retry.
				return nil, c.transportError(ep, ctxErr)
			}
			failures++
			if err := c.backoff(ctx, failures, err); err != nil {
				return nil, err
			}
			continue
		}
		apiErr := checkResponse(ep, resp, c.known)
		if apiErr == nil {
			return resp, nil
		}
		switch {
		case IsRateLimited(apiErr):
			rateLimited++
			wait := rateLimitWait(resp.header)
			if rateLimited > maxRateLimitRetries || !fitsDeadline(ctx, wait) {
				c.obs.ObserveRateLimited(ep, 0)
				return nil, apiErr
			}
			c.obs.ObserveRateLimited(ep, wait)
			if err := c.sleep(ctx, wait); err != nil {
				return nil, err
			}
		case resp.status >= 500:
			failures++
			if err := c.backoff(ctx, failures, apiErr); err != nil {
				return nil, err
			}
		default:
			return nil, apiErr
		}
	}
}

// attempt sends one HTTP request and reads its body (capped), reporting the
// attempt to the observer. A non-nil error is a transport error, or the
// request's context ending before the answer was read.
func (c *Client) attempt(ep Endpoint, req *http.Request, decode bodyDecoder) (*response, error) {
	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.obs.ObserveRequest(ep, failureCode(req), c.now().Sub(start))
		return nil, c.requestError(ep, req, err)
	}
	defer func() { _ = resp.Body.Close() }()
	limit := c.maxBody
	if l, ok := req.Context().Value(bodyLimitKey{}).(int64); ok && l < limit {
		limit = l
	}
	var r *response
	if resp.ContentLength > limit {
		r = tooLargeResponse(resp.StatusCode, resp.Header, limit)
	} else {
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			c.obs.ObserveRequest(ep, failureCode(req), c.now().Sub(start))
			return nil, c.requestError(ep, req, fmt.Errorf("read response (HTTP %d): %w", resp.StatusCode, err))
		}
		if int64(len(body)) > limit {
			r = tooLargeResponse(resp.StatusCode, resp.Header, limit)
		} else {
			r = newResponse(resp.StatusCode, resp.Header, body, decode)
		}
	}
	c.obs.ObserveRequest(ep, resultCode(r), c.now().Sub(start))
	return r, nil
}

// transportError is a request to ep that got no answer because of err.
func (c *Client) transportError(ep Endpoint, err error) *TransportError {
	return &TransportError{Endpoint: ep, Host: c.host, Err: err}
}

// requestError is the *TransportError of a request that failed with err: the
// error inside a *url.Error, whose text would quote the URL and with it its
// query, and the request timeout when that is what ended it.
func (c *Client) requestError(ep Endpoint, req *http.Request, err error) *TransportError {
	e := c.transportError(ep, err)
	if ue, ok := err.(*url.Error); ok { // what http.Client.Do returns
		e.Err = ue.Err
	}
	var te interface{ Timeout() bool }
	if req.Context().Err() == nil && c.http.Timeout > 0 && errors.As(err, &te) && te.Timeout() {
		e.Timeout = c.http.Timeout
	}
	return e
}

// bodyLimitKey carries a request's own body cap, below the client's.
type bodyLimitKey struct{}

// withBodyLimit caps the bodies of the requests made under ctx at n bytes.
func withBodyLimit(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, bodyLimitKey{}, n)
}

// failureCode is the code label of a request that got no (whole) answer:
// "canceled" when the caller's context was cancelled or passed its deadline,
// which says nothing about the API, else "transport".
func failureCode(req *http.Request) string {
	if req.Context().Err() != nil {
		return "canceled"
	}
	return "transport"
}

// backoff waits before the next attempt after failures failed ones and
// returns nil to make it. It returns last instead when the attempts are used
// up or the wait would pass ctx's deadline, and ctx's error if ctx ends while
// waiting.
func (c *Client) backoff(ctx context.Context, failures int, last error) error {
	if failures >= c.maxAttempts {
		return last
	}
	d := backoffBase << min(failures-1, 10)
	d = min(d, backoffMax)
	// "Equal jitter": half fixed, half random, so that retries of
	// concurrent listings spread out but still back off.
	d = d/2 + time.Duration(c.rand()*float64(d/2))
	if !fitsDeadline(ctx, d) {
		return last
	}
	return c.sleep(ctx, d)
}

// fitsDeadline reports whether waiting d still leaves ctx time to retry.
// Deadlines are wall-clock, so this uses the real clock, not Config.Now.
func fitsDeadline(ctx context.Context, d time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d
}

// rateLimitWait reads how long a rate-limited response asks to wait:
// x-ogw-ratelimit-reset (Feishu's header, seconds), else Retry-After
// (seconds), else one second; capped at maxRateLimitWait.
func rateLimitWait(h http.Header) time.Duration {
	for _, name := range []string{"X-Ogw-Ratelimit-Reset", "Retry-After"} {
		v := strings.TrimSpace(h.Get(name))
		if v == "" {
			continue
		}
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs < 0 || secs != secs {
			continue
		}
		if secs >= maxRateLimitWait.Seconds() {
			return maxRateLimitWait
		}
		return time.Duration(secs * float64(time.Second))
	}
	return defaultRateLimitWait
}

// resultCode is the code label of an answered request: the body's code, or
// "http_<status>" when the body has none (or says 0 on a non-2xx status).
func resultCode(r *response) string {
	if b := r.envelope; r.envelopeErr == nil && b.Code != nil && (*b.Code != 0 || is2xx(r.status)) {
		return strconv.Itoa(*b.Code)
	}
	return "http_" + strconv.Itoa(r.status)
}

// checkResponse returns nil for HTTP 2xx with code 0, else an *APIError
// whose texts show none of the known credentials, should the answer quote
// the request back.
func checkResponse(ep Endpoint, r *response, known *knownSecrets) *APIError {
	if r.envelopeErr == nil && !r.tooLarge && r.envelope.Code != nil && *r.envelope.Code == CodeOK && is2xx(r.status) {
		return nil
	}
	ms := known.masks()
	e := &APIError{Endpoint: ep, HTTPStatus: r.status, LogID: scrub(ms, logID(r.header))}
	switch {
	case r.tooLarge:
		e.Msg = r.envelopeErr.Error()
		return e
	case r.envelopeErr != nil:
		e.Msg = bodyExcerpt(ep, r.body, ms)
		if why := tooDeep(r.envelopeErr); why != "" {
			e.Msg = why + ": " + e.Msg
		}
		return e
	}
	b := r.envelope
	if b.Code != nil {
		e.Code = *b.Code
	}
	e.Msg = scrub(ms, b.Msg)
	if b.Code == nil && is2xx(r.status) {
		e.Msg = "response without a code: " + bodyExcerpt(ep, r.body, ms)
	}
	return e
}

// apiError is an *APIError about an answer that passed checkResponse but
// is not what was asked for, its texts scrubbed as checkResponse does.
func (c *Client) apiError(ep Endpoint, r *response, msg string) *APIError {
	ms := c.known.masks()
	return &APIError{Endpoint: ep, HTTPStatus: r.status, LogID: scrub(ms, logID(r.header)), Msg: scrub(ms, msg)}
}

// tooDeep says why a body was refused if encoding/json found it nested
// deeper than it allows (10,000 levels), which an excerpt of the body's
// start would not show; else "".
func tooDeep(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) && strings.Contains(syn.Error(), "exceeded max depth") {
		return fmt.Sprintf("JSON nested too deeply (%v, at byte %d)", syn, syn.Offset)
	}
	return ""
}

func is2xx(status int) bool { return status >= 200 && status < 300 }

// logID is the ID to quote to Feishu support.
func logID(h http.Header) string {
	if id := h.Get("X-Tt-Logid"); id != "" {
		return id
	}
	return h.Get("X-Request-Id")
}

// bodyExcerpt is a short, single-line, valid UTF-8 excerpt of a body that is
// not the JSON expected, to tell a plain-text 404 from an HTML error page.
// The token endpoint's answer may hold a token, so it is not quoted then.
// The known credentials ms are replaced before the body is cut, so that no
// part of one is left at the cut.
func bodyExcerpt(ep Endpoint, body []byte, ms []mask) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return "empty body"
	}
	if ep == EndpointTenantToken && bytes.Contains(body, []byte("access_token")) {
		return fmt.Sprintf("malformed token response (%d bytes, not quoted)", len(body))
	}
	head := scrub(ms, string(body[:min(len(body), 4*excerptBytes+longest(ms))]))
	head = head[:min(len(head), 4*excerptBytes)]
	s := strings.Join(strings.Fields(strings.ToValidUTF8(head, "\uFFFD")), " ")
	return truncate(s, excerptBytes)
}

// truncate shortens s to at most n bytes, cutting on a rune boundary and
// marking the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := max(n-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
