package feishu

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// RunsPage is one page of a session's runs as the API returned it.
type RunsPage struct {
	Runs          []Run
	NextPageToken string // the token of the next page; "" when !HasMore
	HasMore       bool
}

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
		page, err := c.listRunsPage(ctx, sessionID, pageToken)
		if err != nil {
			return fmt.Errorf("list runs of session %s: page %d: %w", sessionID, n, err)
		}
		if err := fn(page.Runs); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
		if !page.HasMore {
			return nil
		}
		if seen[page.NextPageToken] {
			return fmt.Errorf("list runs of session %s: page %d repeats an earlier page token", sessionID, n)
		}
		seen[page.NextPageToken] = true
		pageToken = page.NextPageToken
	}
}

// ListRunsPage gets one page of a session's runs: the first when pageToken
// is "", else the page that token, a NextPageToken of an earlier page, names.
// A page size the API rejects (code 2700001) falls back to 20, as listings
// do; a rejected token is renewed once; rate limits, 5xx and transport
// errors are retried within ctx. Runs that cannot be fully decoded are
// reported to the Observer and returned with the bad fields zero. A page
// that says it has more runs but carries no page token is an *APIError.
func (c *Client) ListRunsPage(ctx context.Context, sessionID, pageToken string) (RunsPage, error) {
	if sessionID == "" {
		return RunsPage{}, errors.New("list runs: empty session ID")
	}
	page, err := c.listRunsPage(ctx, sessionID, pageToken)
	if err != nil {
		return RunsPage{}, fmt.Errorf("list runs of session %s: %w", sessionID, err)
	}
	return page, nil
}

// PageSize returns the page size in use now: Config.PageSize, or 20 once
// the API has rejected it.
func (c *Client) PageSize() int { return int(c.pageSize.Load()) }

// listRunsPage is ListRunsPage with its errors not yet wrapped.
func (c *Client) listRunsPage(ctx context.Context, sessionID, pageToken string) (RunsPage, error) {
	if err := ctx.Err(); err != nil {
		return RunsPage{}, c.transportError(EndpointListRuns, err)
	}
	page, err := c.fetchPage(ctx, sessionID, pageToken)
	if err != nil {
		return RunsPage{}, err
	}
	for _, m := range page.malformed {
		c.obs.ObserveMalformedRun(sessionID, m.runID, m.err)
	}
	p := RunsPage{Runs: page.runs, HasMore: page.hasMore}
	if p.HasMore {
		p.NextPageToken = page.pageToken
	}
	return p, nil
}

// fetchPage gets one page. If the API rejects the page size with 2700001
// the page is asked again with 20 runs; 20 is kept for later pages and
// listings only if that works, because an unknown session or page token is
// answered with 2700001 too and must not shrink every listing's pages.
func (c *Client) fetchPage(ctx context.Context, sessionID, pageToken string) (*runsPage, error) {
	size := c.PageSize()
	page, err := c.getPage(ctx, sessionID, pageToken, size)
	if err != nil && size > fallbackPageSize && hasCode(err, CodeParamInvalid) {
		page, err = c.getPage(ctx, sessionID, pageToken, fallbackPageSize)
		if err == nil {
			c.pageSize.Store(fallbackPageSize)
		}
	}
	return page, err
}

// getPage gets one page with one page size. A well-formed body is decoded in
// one pass, straight into the page; only a body with a field of the wrong
// type is decoded again, run by run, to keep the runs that are fine.
func (c *Client) getPage(ctx context.Context, sessionID, pageToken string, size int) (*runsPage, error) {
	q := url.Values{"page_size": {strconv.Itoa(size)}}
	if pageToken != "" {
		q.Set("page_token", pageToken)
	}
	endpoint := c.base + "/open-apis/aily/v1/sessions/" + url.PathEscape(sessionID) + "/runs?" + q.Encode()
	var w wireRunsPage
	ctx = withBodyLimit(ctx, pageBodyLimit(size))
	resp, err := c.getWithToken(ctx, EndpointListRuns, endpoint, func(body []byte) (apiBody, error) {
		return w.decode(body, size)
	})
	if err != nil {
		return nil, err
	}
	var page *runsPage
	now := c.now()
	if resp.decodeErr == nil {
		page = w.page(sessionID, now)
	} else if page, err = decodeRunsPageSlowly(resp.body, sessionID, now); err != nil {
		return nil, c.apiError(EndpointListRuns, resp, err.Error())
	}
	switch {
	case page.entries > 2*size:
		return nil, c.apiError(EndpointListRuns, resp, fmt.Sprintf("page has %d runs, more than twice the page size %d", page.entries, size))
	case page.hasMore && page.pageToken == "":
		return nil, c.apiError(EndpointListRuns, resp, "page has more runs but no page token")
	}
	return page, nil
}

// getWithToken GETs endpoint with the current token, decoding a successful
// body with decode (see newResponse). If the token is refused it is dropped
// and the request made once more with a new one.
func (c *Client) getWithToken(ctx context.Context, ep Endpoint, endpoint string, decode bodyDecoder) (*response, error) {
	if err := ctx.Err(); err != nil {
		return nil, c.transportError(ep, err)
	}
	for retried := false; ; retried = true {
		tok, err := c.creds.token(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(ctx, ep, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			return req, nil
		}, decode)
		if err != nil {
			if c.creds.rejects(err) {
				if retried {
					return nil, c.creds.refused(tok, err)
				}
				c.creds.invalidate(tok)
				continue
			}
			return nil, err
		}
		return resp, nil
	}
}

// perRunBytes is more than a run takes on the wire: its fields are bounded
// (IDs of at most 64 characters, an error message of 64, metadata of 255),
// and even escaped at six bytes a character they stay under it.
const perRunBytes = 4 << 10

// pageBodyLimit bounds the body of a page of size runs: a page holds at most
// twice the page size (more is refused anyway), so a larger body is refused
// before it is read whole and decoded, and a wrong answer cannot cost more
// memory than a page should.
func pageBodyLimit(size int) int64 { return 64<<10 + int64(2*size)*perRunBytes }
