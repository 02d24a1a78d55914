package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// API is the Feishu API as the watcher uses it; *feishu.Client is one. Its
// methods must honour ctx: a poll still running at the scrape deadline is
// cut off.
type API interface {
	// ListRunsPage gets one page of a session's runs, the first when
	// pageToken is "".
	ListRunsPage(ctx context.Context, sessionID, pageToken string) (feishu.RunsPage, error)
	// GetRun gets one run of a session.
	GetRun(ctx context.Context, sessionID, runID string) (feishu.Run, error)
	// PageSize is the number of runs a full page holds now.
	PageSize() int
}

// order is a session's listing order, which the API does not document: it
// is read off the runs' created_at.
type order int8

const (
	orderUnknown order = iota
	newestFirst
	oldestFirst
)

func (o order) String() string {
	switch o {
	case newestFirst:
		return "newest first"
	case oldestFirst:
		return "oldest first"
	}
	return "unknown"
}

// cursor is where a session's listing stands between polls: the order it
// was seen in, where an oldest-first listing resumes, and where an
// unfinished full listing continues.
type cursor struct {
	order order
	// needFull asks the next poll for a full listing: something did not
	// add up (no overlap, a token refused, the order changed, a short page,
	// a run in flight that get run no longer finds).
	needFull bool
	nextFull time.Time // when the safety-net full listing is due

	// Oldest first: the page token that fetched the last page ("" for the
	// first), that page's run IDs (the overlap a resumed page must show),
	// its position and the number of pages before it.
	lastToken string
	lastIDs   []string
	lastPos   int64
	lastIndex int

	// sweep is where a full listing under way stands; nil between them,
	// so that an idle session does not carry it.
	sweep *sweepCursor
}

// sweepCursor is where an unfinished full listing stands: the token of its
// next page, the IDs of the page before (shown again when runs arrive while
// it is read), the position reached, and the created_at directions seen.
type sweepCursor struct {
	token   string
	prevIDs []string
	pos     int64
	pages   int
	last    time.Time
	up      bool
	down    bool
}

// errBudget is returned by a budgeted API once the scrape's request budget
// of the app is spent: the poll stops where it is and keeps its progress.
var errBudget = errors.New("request budget of this scrape spent")

// poll is one poll of a session: the pages and runs it reads, and what they
// count.
type poll struct {
	ctx  context.Context
	api  API
	id   string
	t    *Tracker
	c    *cursor
	now  time.Time
	obs  Observation
	full time.Duration // --poll.full-interval

	requests int  // API calls made
	newRuns  bool // a run first seen after the baseline
}

// run polls the session: the incremental listing when the session has a
// baseline and its order is known, then a full listing when one is due,
// asked for, or under way. A full listing that does not fit the budget or
// the deadline continues in the next poll.
func (p *poll) run() error {
	t, c := p.t, p.c
	before := t.newRuns
	defer func() { p.newRuns = t.newRuns > before }()

	if t.Baselined() && c.order != orderUnknown && !c.needFull {
		t.BeginPass()
		var doubt bool
		var err error
		if c.order == newestFirst {
			doubt, err = p.newestFirst()
		} else {
			doubt, err = p.oldestFirst()
		}
		if err != nil {
			return err
		}
		if doubt {
			c.needFull = true
		}
	}
	if !t.Baselined() || c.needFull || c.order == orderUnknown || t.Sweeping() || !p.now.Before(c.nextFull) {
		return p.sweep()
	}
	return nil
}

// newestFirst reads from the first page on, until a page reaches runs older
// than the newest one known (every run since has been read) and every run in
// flight has been seen or is refreshed with get run, whichever of paging on
// and get run is cheaper. It reports doubt when the listing does not behave
// as expected.
func (p *poll) newestFirst() (doubt bool, err error) {
	t := p.t
	// The newest run the last complete listing saw: once a page reaches runs
	// older than it, every run created since has been read.
	known := t.Newest()
	var token string
	var prevIDs []string
	var pos int64
	var lastCreated time.Time
	reached := false
	for pages := 1; ; pages++ {
		page, err := p.page(token)
		if err != nil {
			if token != "" && refused(err) {
				return true, nil
			}
			return false, err
		}
		for i := range page.Runs {
			r := &page.Runs[i]
			if r.CreatedAt.IsZero() {
				continue
			}
			if !lastCreated.IsZero() && r.CreatedAt.After(lastCreated) {
				// created_at rises: the listing is not newest first now.
				p.c.order = orderUnknown
				return true, nil
			}
			lastCreated = r.CreatedAt
		}
		for i := shownAgain(page.Runs, prevIDs); i < len(page.Runs); i++ {
			t.See(&page.Runs[i], false, &p.obs)
			t.SetPosition(page.Runs[i].ID, pos+int64(i))
		}
		pos += int64(len(page.Runs))
		if !page.HasMore {
			// Read from the first page to the last: a complete listing.
			t.Advance(p.now)
			t.EndCompletePass()
			return false, nil
		}
		if len(page.Runs) < p.api.PageSize() {
			return true, nil
		}
		if last := page.Runs[len(page.Runs)-1].CreatedAt; !reached && !last.IsZero() && last.Before(known) {
			reached = true
			t.Advance(p.now)
		}
		if reached {
			unseen := t.Unseen()
			if len(unseen) == 0 {
				return false, nil
			}
			var deepest int64
			for _, id := range unseen {
				deepest = max(deepest, t.Position(id, true))
			}
			size := int64(max(p.api.PageSize(), 1))
			if need := (deepest+size)/size - int64(pages); int64(len(unseen)) <= need {
				return p.refresh(unseen)
			}
		}
		prevIDs = ids(page.Runs, prevIDs)
		token = page.NextPageToken
	}
}

// oldestFirst resumes from the last page read, which must still show some
// of the runs it showed, and reads on to the end; runs in flight on earlier
// pages are refreshed with get run when that is cheaper than a full listing.
func (p *poll) oldestFirst() (doubt bool, err error) {
	t, c := p.t, p.c
	token, pos, index := c.lastToken, c.lastPos, c.lastIndex
	var lastCreated time.Time
	for first := true; ; first = false {
		page, err := p.page(token)
		if err != nil {
			if token != "" && refused(err) {
				return true, nil
			}
			return false, err
		}
		if first && len(c.lastIDs) > 0 && !overlaps(page.Runs, c.lastIDs) {
			return true, nil
		}
		for i := range page.Runs {
			r := &page.Runs[i]
			if r.CreatedAt.IsZero() {
				continue
			}
			if !lastCreated.IsZero() && r.CreatedAt.Before(lastCreated) {
				c.order = orderUnknown
				return true, nil
			}
			lastCreated = r.CreatedAt
		}
		for i := range page.Runs {
			t.See(&page.Runs[i], false, &p.obs)
			t.SetPosition(page.Runs[i].ID, pos+int64(i))
		}
		if !page.HasMore {
			c.lastToken, c.lastPos, c.lastIndex = token, pos, index
			c.lastIDs = edgeIDs(page.Runs, c.lastIDs)
			break
		}
		if len(page.Runs) < p.api.PageSize() {
			return true, nil
		}
		pos += int64(len(page.Runs))
		index++
		token = page.NextPageToken
	}
	t.Advance(p.now)
	unseen := t.Unseen()
	switch {
	case len(unseen) == 0:
		return false, nil
	case len(unseen) <= c.lastIndex:
		return p.refresh(unseen)
	}
	return true, nil
}

// refresh gets each run with get run. A run the API no longer finds is
// doubt: the next poll lists in full.
func (p *poll) refresh(ids []string) (doubt bool, err error) {
	for _, id := range ids {
		p.requests++
		r, err := p.api.GetRun(p.ctx, p.id, id)
		if err != nil {
			if refused(err) {
				doubt = true
				continue
			}
			return doubt, fmt.Errorf("get run %s: %w", id, err)
		}
		if r.ID == "" {
			r.ID = id
		}
		p.t.See(&r, false, &p.obs)
	}
	return doubt, nil
}

// sweep starts or continues a full listing and reads on until its last page,
// the budget or the deadline.
func (p *poll) sweep() error {
	t, c := p.t, p.c
	if !t.Sweeping() || c.sweep == nil {
		t.StartSweep()
		c.sweep = &sweepCursor{}
	}
	sw := c.sweep
	for {
		page, err := p.page(sw.token)
		if err != nil {
			if sw.token != "" && refused(err) {
				// The saved page token stopped working: begin again.
				t.AbandonSweep()
				c.sweep = nil
			}
			return err
		}
		sw.pages++
		for i := shownAgain(page.Runs, sw.prevIDs); i < len(page.Runs); i++ {
			r := &page.Runs[i]
			if !r.CreatedAt.IsZero() {
				if !sw.last.IsZero() {
					sw.up = sw.up || r.CreatedAt.After(sw.last)
					sw.down = sw.down || r.CreatedAt.Before(sw.last)
				}
				sw.last = r.CreatedAt
			}
			t.See(r, true, &p.obs)
			t.SetPosition(r.ID, sw.pos+int64(i))
		}
		if !page.HasMore {
			c.order = orderUnknown
			switch {
			case sw.up && !sw.down:
				c.order = oldestFirst
			case sw.down && !sw.up:
				c.order = newestFirst
			}
			c.lastToken, c.lastPos, c.lastIndex = sw.token, sw.pos, sw.pages-1
			c.lastIDs = edgeIDs(page.Runs, c.lastIDs)
			c.sweep = nil
			c.needFull = false
			c.nextFull = p.now.Add(p.full)
			t.EndSweep(p.now)
			return nil
		}
		sw.pos += int64(len(page.Runs))
		sw.prevIDs = ids(page.Runs, sw.prevIDs)
		sw.token = page.NextPageToken
	}
}

// page gets one page, counting the request.
func (p *poll) page(token string) (feishu.RunsPage, error) {
	p.requests++
	page, err := p.api.ListRunsPage(p.ctx, p.id, token)
	if err != nil {
		return page, err
	}
	if page.HasMore && page.NextPageToken == "" {
		return page, errors.New("list runs: a page with more runs has no page token")
	}
	return page, nil
}

// refused reports whether the API refused a parameter (code 2700001: a page
// token it no longer takes, a run it does not know) or found nothing at the
// path: both mean the listing's position is no longer valid.
func refused(err error) bool {
	var e *feishu.APIError
	return errors.As(err, &e) && (e.Code == feishu.CodeParamInvalid || feishu.IsNotFound(err))
}

// overlaps reports whether any run is one of ids.
func overlaps(runs []feishu.Run, ids []string) bool {
	for i := range runs {
		if slices.Contains(ids, runs[i].ID) {
			return true
		}
	}
	return false
}

// shownAgain returns how many runs at the start of a page the page before
// showed already: when runs are created while a newest-first listing is read,
// each pushes the older ones one place down, so the next page begins with the
// last runs of the one before.
func shownAgain(runs []feishu.Run, prevIDs []string) int {
	n := 0
	for n < len(runs) && slices.Contains(prevIDs, runs[n].ID) {
		n++
	}
	return n
}

// edgeIDs returns the IDs of a page's first and last runs, reusing buf: what
// a page resumed later must still show one of. Two IDs, not the whole page,
// keep an idle session's memory small.
func edgeIDs(runs []feishu.Run, buf []string) []string {
	buf = buf[:0]
	switch len(runs) {
	case 0:
	case 1:
		buf = append(buf, runs[0].ID)
	default:
		buf = append(buf, runs[0].ID, runs[len(runs)-1].ID)
	}
	return buf
}

// ids returns the runs' IDs, reusing buf.
func ids(runs []feishu.Run, buf []string) []string {
	buf = buf[:0]
	for i := range runs {
		buf = append(buf, runs[i].ID)
	}
	return buf
}
