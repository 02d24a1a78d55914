package feishu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ListRuns returns every run of a session, all pages, each run once.
//
// The API's order is undocumented and pages shift when runs are created
// while paging, so a run can be listed twice. Of two sightings the one with
// a final status is kept, since a run never leaves a final status and so
// that sighting is the newest; otherwise the later sighting is kept, being
// the more recent answer. Runs keep the position of their first sighting.
func (c *Client) ListRuns(ctx context.Context, sessionID string) ([]Run, error) {
	runs := []Run{}
	index := make(map[string]int)
	err := c.EachRunPage(ctx, sessionID, func(page []Run) error {
		for _, r := range page {
			i, seen := index[r.ID]
			switch {
			case !seen:
				index[r.ID] = len(runs)
				runs = append(runs, r)
			case r.Status.Final() || !runs[i].Status.Final():
				runs[i] = r
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return runs, nil
}

// EachRunPage lists a session's runs page by page, calling fn with each
// page's runs until the last page. A run may appear on two pages (see
// ListRuns). If fn returns an error the listing stops and EachRunPage returns
// that error as it is, or nil if it is ErrStop. A listing that does not end
// (a page token seen twice, more than Config.MaxPages pages) is an error.
func (c *Client) EachRunPage(ctx context.Context, sessionID string, fn func(page []Run) error) error {
	if sessionID == "" {
		return errors.New("list runs: empty session ID")
	}
	seen := make(map[string]bool)
	pageToken := ""
	for n := 1; ; n++ {
		if n > c.maxPages {
			return fmt.Errorf("list runs of session %s: more than %d pages", sessionID, c.maxPages)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list runs of session %s: page %d: %w", sessionID, n, err)
		}
		page, err := c.fetchPage(ctx, sessionID, pageToken)
		if err != nil {
			return fmt.Errorf("list runs of session %s: page %d: %w", sessionID, n, err)
		}
		for _, m := range page.malformed {
			c.obs.ObserveMalformedRun(sessionID, m.runID, m.err)
		}
		if err := fn(page.runs); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		if !page.hasMore {
			return nil
		}
		switch {
		case page.pageToken == "":
			return fmt.Errorf("list runs of session %s: page %d has more runs but no page token", sessionID, n)
		case seen[page.pageToken]:
			return fmt.Errorf("list runs of session %s: page %d repeats an earlier page token", sessionID, n)
		}
		seen[page.pageToken] = true
		pageToken = page.pageToken
	}
}

// fetchPage gets one page. If the API rejects the page size with 2700001
// the page is asked again with 20 runs; 20 is kept for later pages and
// listings only if that works, because an unknown session is answered with
// 2700001 too and must not shrink every listing's pages.
func (c *Client) fetchPage(ctx context.Context, sessionID, pageToken string) (*runsPage, error) {
	size := int(c.pageSize.Load())
	page, err := c.getPage(ctx, sessionID, pageToken, size)
	if err != nil && size > fallbackPageSize && hasCode(err, CodeParamInvalid) {
		page, err = c.getPage(ctx, sessionID, pageToken, fallbackPageSize)
		if err == nil {
			c.pageSize.Store(fallbackPageSize)
		}
	}
	return page, err
}

// getPage gets one page with one page size. If the token is refused it is
// dropped and the page asked once more with a new one.
func (c *Client) getPage(ctx context.Context, sessionID, pageToken string, size int) (*runsPage, error) {
	q := url.Values{"page_size": {strconv.Itoa(size)}}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	endpoint := c.base + "/open-apis/aily/v1/sessions/" + url.PathEscape(sessionID) + "/runs?" + q.Encode()
	for retried := false; ; retried = true {
		tok, err := c.creds.token(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(ctx, EndpointListRuns, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			return req, nil
		})
		if err != nil {
			if !retried && c.creds.rejects(err) {
				c.creds.invalidate(tok)
				continue
			}
			return nil, err
		}
		page, err := decodeRunsPage(resp.body, sessionID)
		if err != nil {
			return nil, &APIError{Endpoint: EndpointListRuns, HTTPStatus: resp.status, LogID: logID(resp.header), Msg: err.Error()}
		}
		return page, nil
	}
}

// runsPage is one decoded page of the list-runs response.
type runsPage struct {
	runs      []Run
	malformed []malformedRun
	pageToken string
	hasMore   bool
}

// malformedRun is a run (or list entry) that could not be fully decoded.
type malformedRun struct {
	runID string
	err   error
}

// wireRunsPage is the list-runs body as the API sends it.
type wireRunsPage struct {
	apiBody
	Data *struct {
		Runs      []json.RawMessage `json:"runs"`
		PageToken string            `json:"page_token"`
		HasMore   bool              `json:"has_more"`
	} `json:"data"`
}

// wireRun is a run as the API sends it. Timestamps are raw so that a bad
// one spoils only itself, and so that a number is accepted as well as the
// documented string.
type wireRun struct {
	ID        string          `json:"id"`
	CreatedAt json.RawMessage `json:"created_at"`
	AppID     string          `json:"app_id"`
	SessionID string          `json:"session_id"`
	Status    string          `json:"status"`
	StartedAt json.RawMessage `json:"started_at"`
	EndedAt   json.RawMessage `json:"ended_at"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Metadata string `json:"metadata"`
}

// decodeRunsPage decodes a list-runs body. Only a body that is not a JSON
// object, or whose envelope is of the wrong shape, is an error; a run that
// cannot be fully decoded is kept with the bad fields zero and reported in
// malformed, and an entry without an ID is dropped and reported.
func decodeRunsPage(body []byte, sessionID string) (*runsPage, error) {
	var w wireRunsPage
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("decode runs page: %w", err)
	}
	page := &runsPage{}
	if w.Data == nil {
		return page, nil
	}
	page.pageToken, page.hasMore = w.Data.PageToken, w.Data.HasMore
	for _, raw := range w.Data.Runs {
		r, errs := decodeRun(raw, sessionID)
		if r.ID == "" {
			page.malformed = append(page.malformed, malformedRun{err: errors.Join(append(errs, errors.New("run without an id"))...)})
			continue
		}
		if len(errs) > 0 {
			page.malformed = append(page.malformed, malformedRun{runID: r.ID, err: errors.Join(errs...)})
		}
		page.runs = append(page.runs, r)
	}
	return page, nil
}

// decodeRun decodes one run, as much of it as can be.
func decodeRun(raw json.RawMessage, sessionID string) (Run, []error) {
	var w wireRun
	var errs []error
	// On a field of the wrong type Unmarshal still fills the other fields
	// and returns the first such error.
	if err := json.Unmarshal(raw, &w); err != nil {
		errs = append(errs, fmt.Errorf("decode run: %w", err))
	}
	r := Run{
		ID:        w.ID,
		AppID:     w.AppID,
		SessionID: w.SessionID,
		Status:    RunStatus(w.Status),
		Metadata:  w.Metadata,
	}
	if r.SessionID == "" {
		r.SessionID = sessionID
	}
	if w.Error != nil && (w.Error.Code != "" || w.Error.Message != "") {
		r.Error = &RunError{Code: w.Error.Code, Message: w.Error.Message}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *time.Time
	}{{"created_at", w.CreatedAt, &r.CreatedAt}, {"started_at", w.StartedAt, &r.StartedAt}, {"ended_at", w.EndedAt, &r.EndedAt}} {
		t, err := parseRawMillis(f.raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
		}
		*f.dst = t
	}
	return r, errs
}

// parseRawMillis parses a timestamp field: a string of milliseconds as
// documented, or tolerantly a JSON integer; absent or null is zero.
func parseRawMillis(raw json.RawMessage) (time.Time, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return time.Time{}, nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
	} else {
		s = string(raw)
	}
	return ParseMillis(s)
}
