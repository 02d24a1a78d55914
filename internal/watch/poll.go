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
	// prevToken fetched the page of prevIDs, so that the boundary to the
	// next page can be checked (pageAfter); unverified: one could not be.
	prevToken  string
	unverified bool
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
	t    *tracker
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

	if t.baselined && c.order != orderUnknown && !c.needFull {
		t.beginPass()
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
	if !t.baselined || c.needFull || c.order == orderUnknown || t.sweeping() || !p.now.Before(c.nextFull) {
		return p.sweep()
	}
	return nil
}

// newestFirst reads from the first page on, until a page reaches runs older
// than the newest one known (every run since has been read) and every run in
// flight has been seen or is refreshed with get run, whichever of paging on
// and get run is cheaper. It reports doubt when the listing does not behave
// as expected, or a page boundary could not be checked (pageAfter).
func (p *poll) newestFirst() (doubt bool, err error) {
	t := p.t
	// The newest run the last complete listing saw: once a page reaches runs
	// older than it, every run created since has been read.
	known := t.newest
	var prev boundary
	var token string
	var pos int64
	var lastCreated time.Time
	reached := false
	see := func(runs []feishu.Run, again bool) error {
		if again {
			p.seeAll(runs, false)
			return nil
		}
		if err := inOrder(runs, &lastCreated, time.Time.After); err != nil {
			return err
		}
		p.seeListed(runs, shownAgain(runs, prev.ids), pos)
		return nil
	}
	for pages := 1; ; pages++ {
		page, _, checked, err := p.pageAfter(prev, token, see)
		if stop, doubt, err := p.incrementalEnd(token, checked, err); stop {
			return doubt, err
		}
		pos += int64(len(page.Runs))
		if !page.HasMore {
			// Read from the first page to the last: a complete listing.
			if err := p.confirmMissing(false); err != nil {
				return false, err
			}
			t.advance(p.now)
			t.endCompletePass()
			return false, nil
		}
		if len(page.Runs) < p.api.PageSize() {
			return true, nil
		}
		if last := page.Runs[len(page.Runs)-1].CreatedAt; !reached && !last.IsZero() && last.Before(known) {
			reached = true
			t.advance(p.now)
		}
		if reached {
			unseen := t.unseen()
			if len(unseen) == 0 {
				return false, nil
			}
			var deepest int64
			for _, id := range unseen {
				deepest = max(deepest, t.position(id, true))
			}
			size := int64(max(p.api.PageSize(), 1))
			if need := (deepest+size)/size - int64(pages); int64(len(unseen)) <= need {
				return p.refresh(unseen)
			}
		}
		prev = boundaryAfter(token, page.Runs, prev.ids)
		token = page.NextPageToken
	}
}

// oldestFirst resumes from the last page read, which must still show some
// of the runs it showed, and reads on to the end; runs in flight on earlier
// pages are refreshed with get run when that is cheaper than a full listing.
func (p *poll) oldestFirst() (doubt bool, err error) {
	t, c := p.t, p.c
	token, pos, index := c.lastToken, c.lastPos, c.lastIndex
	// The first page needs no boundary check: it is the page read last time,
	// and showing one of that page's runs proves it starts no later.
	var prev boundary
	var lastCreated time.Time
	first := true
	see := func(runs []feishu.Run, again bool) error {
		if again {
			p.seeAll(runs, false)
			return nil
		}
		if first && len(c.lastIDs) > 0 && !overlaps(runs, c.lastIDs) {
			return errNoOverlap
		}
		first = false
		if err := inOrder(runs, &lastCreated, time.Time.Before); err != nil {
			return err
		}
		p.seeListed(runs, 0, pos)
		return nil
	}
	for {
		page, pageToken, checked, err := p.pageAfter(prev, token, see)
		if stop, doubt, err := p.incrementalEnd(token, checked, err); stop {
			return doubt, err
		}
		if !page.HasMore {
			c.lastToken, c.lastPos, c.lastIndex = pageToken, pos, index
			c.lastIDs = edgeIDs(page.Runs, c.lastIDs)
			break
		}
		if len(page.Runs) < p.api.PageSize() {
			return true, nil
		}
		prev = boundaryAfter(pageToken, page.Runs, prev.ids)
		pos += int64(len(page.Runs))
		index++
		token = page.NextPageToken
	}
	t.advance(p.now)
	unseen := t.unseen()
	switch {
	case len(unseen) == 0:
		return false, nil
	case len(unseen) <= c.lastIndex:
		return p.refresh(unseen)
	}
	return true, nil
}

// incrementalEnd tells whether an incremental listing ends after reading a
// page at token, and with what: doubt (the next poll lists in full) when the
// order changed, a resumed page lost its overlap, a page token was refused or
// a boundary could not be checked; the error of any other failure.
func (p *poll) incrementalEnd(token string, checked bool, err error) (stop, doubt bool, _ error) {
	switch {
	case errors.Is(err, errNoOverlap):
		return true, true, nil
	case errors.Is(err, errOrderChanged):
		// created_at goes against the order the session was seen in.
		p.c.order = orderUnknown
		return true, true, nil
	case err != nil:
		if token != "" && refused(err) {
			return true, true, nil
		}
		return true, false, err
	case !checked:
		return true, true, nil
	}
	return false, false, nil
}

// errOrderChanged and errNoOverlap end an incremental listing in doubt: the
// runs' created_at go against the order the session was seen in, or a resumed
// page shows none of the runs it showed last time.
var (
	errOrderChanged = errors.New("listing order changed")
	errNoOverlap    = errors.New("resumed page shows none of its runs")
)

// maxRechecks bounds how often one page boundary is read again while the
// listing keeps moving in front of it.
const maxRechecks = 3

// boundary is the page before the one to read: the token that fetched it,
// its run IDs (nil when there is none: the first page read) and its last
// run's created_at.
type boundary struct {
	token string
	ids   []string
	last  time.Time
}

// boundaryAfter returns the boundary after a page fetched with token.
func boundaryAfter(token string, runs []feishu.Run, buf []string) boundary {
	b := boundary{token: token, ids: ids(runs, buf)}
	if len(runs) > 0 {
		b.last = runs[len(runs)-1].CreatedAt
	}
	return b
}

// settled reports whether a run slipping between the page before and runs
// could only be older than the tracker's horizon: created between two runs
// that both are. Such a run was seen by an earlier listing (each one checks
// the boundaries above the horizon), so the boundary needs no check. Before
// the baseline every boundary is checked.
func (p *poll) settled(prev boundary, runs []feishu.Run) bool {
	h := p.t.horizon()
	if h.IsZero() || len(runs) == 0 || prev.last.IsZero() || runs[0].CreatedAt.IsZero() {
		return false
	}
	return prev.last.Before(h) && runs[0].CreatedAt.Before(h)
}

// pageAfter reads the page at token, which follows prev, passes its runs to
// see, and checks the boundary between the two pages.
//
// Page tokens may be positions: a run that leaves the listing in front of the
// boundary between the two requests (old runs vanish; the API promises no
// history) moves every later run one place up, so the run that moved into the
// page already read is on neither page. Reading prev again after the next page
// tells: unmoved (or only pushed down by runs created in front, which repeats
// runs and never skips one), the boundary holds. Moved, its runs are passed to
// see again (again = true: the run that slipped between is among them) and the
// next page is read again, until two readings of prev agree around one of the
// next page. A boundary still moving after maxRechecks readings is reported
// unchecked: the caller must not take the listing as complete.
//
// It returns the page read last and the token that fetched it: prev read
// again when the listing shrank so much that it became the last page.
func (p *poll) pageAfter(prev boundary, token string, see func(runs []feishu.Run, again bool) error) (page feishu.RunsPage, pageToken string, checked bool, err error) {
	// shown holds, once a boundary moved, the runs passed to see around it,
	// so that runs read again are passed once (a full listing tallies them).
	var shown map[string]struct{}
	for try := 0; ; try++ {
		page, err := p.page(token)
		if err != nil {
			return page, token, false, err
		}
		runs := page.Runs
		if try > 0 {
			runs = unshown(runs, shown)
		}
		if err := see(runs, try > 0); err != nil {
			return page, token, false, err
		}
		if prev.ids == nil || (try == 0 && p.settled(prev, page.Runs)) {
			return page, token, true, nil
		}
		again, err := p.page(prev.token)
		if err != nil {
			return page, token, false, err
		}
		if unmoved(again.Runs, prev.ids) {
			return page, token, true, nil
		}
		if !overlaps(again.Runs, prev.ids) {
			// Moved by a page or more: runs from behind the boundary may now
			// stand in front of the page before, where this listing will not
			// look again.
			return page, token, false, nil
		}
		if shown == nil {
			shown = make(map[string]struct{})
			for _, id := range prev.ids {
				shown[id] = struct{}{}
			}
			unshown(page.Runs, shown)
		}
		if err := see(unshown(again.Runs, shown), true); err != nil {
			return page, token, false, err
		}
		if !again.HasMore {
			// prev is now the last page: read whole, just now.
			return again, prev.token, true, nil
		}
		if try+1 >= maxRechecks {
			return page, token, false, nil
		}
		prev.ids = ids(again.Runs, nil)
		token = again.NextPageToken
	}
}

// unshown returns the runs not in shown, and adds them to it.
func unshown(runs []feishu.Run, shown map[string]struct{}) []feishu.Run {
	var out []feishu.Run
	for i := range runs {
		if _, ok := shown[runs[i].ID]; !ok {
			shown[runs[i].ID] = struct{}{}
			out = append(out, runs[i])
		}
	}
	return out
}

// unmoved reports whether a page read again shows the runs it showed before,
// or those runs pushed down behind runs created in front of them.
func unmoved(runs []feishu.Run, before []string) bool {
	if len(runs) == len(before) && startsWith(runs, before) {
		return true
	}
	for d := 1; d < len(runs); d++ {
		n := min(len(runs)-d, len(before))
		if startsWith(runs[d:d+n], before[:n]) {
			return true
		}
	}
	return false
}

// startsWith reports whether the runs begin with the IDs given.
func startsWith(runs []feishu.Run, ids []string) bool {
	if len(runs) < len(ids) {
		return false
	}
	for i, id := range ids {
		if runs[i].ID != id {
			return false
		}
	}
	return true
}

// seeAll sees every run of a page read again.
func (p *poll) seeAll(runs []feishu.Run, inSweep bool) {
	for i := range runs {
		p.t.see(&runs[i], inSweep, &p.obs)
	}
}

// confirmMissing asks get run, before a complete listing ends, for each run
// in flight that the listing did not show and that would now be forgotten:
// a run that ended and then left the listing before a poll saw it final is
// still counted, once, when get run finds it. A run get run does not find
// either is forgotten.
func (p *poll) confirmMissing(sweep bool) error {
	for _, id := range p.t.aboutToBeForgotten(sweep) {
		r, err := p.getRun(id)
		if err != nil {
			if refused(err) {
				continue
			}
			return err
		}
		p.t.see(&r, sweep, &p.obs)
	}
	return nil
}

// refresh gets each run with get run. A run the API no longer finds is
// doubt: the next poll lists in full.
func (p *poll) refresh(ids []string) (doubt bool, err error) {
	for _, id := range ids {
		r, err := p.getRun(id)
		if err != nil {
			if refused(err) {
				doubt = true
				continue
			}
			return doubt, err
		}
		p.t.see(&r, false, &p.obs)
	}
	return doubt, nil
}

// getRun gets one run with get run, counting the request; an answer without
// the run's ID is taken as that run.
func (p *poll) getRun(id string) (feishu.Run, error) {
	p.requests++
	r, err := p.api.GetRun(p.ctx, p.id, id)
	if err != nil {
		return r, fmt.Errorf("get run %s: %w", id, err)
	}
	if r.ID == "" {
		r.ID = id
	}
	return r, nil
}

// sweep starts or continues a full listing and reads on until its last page,
// the budget or the deadline. Its page boundaries are checked as pageAfter
// says; a listing with a boundary it could not check does not move the
// watermark, and the next poll lists in full again.
func (p *poll) sweep() error {
	t, c := p.t, p.c
	if !t.sweeping() || c.sweep == nil {
		t.startSweep()
		c.sweep = &sweepCursor{}
	}
	sw := c.sweep
	see := func(runs []feishu.Run, again bool) error {
		if again {
			p.seeAll(runs, true)
			return nil
		}
		for i := shownAgain(runs, sw.prevIDs); i < len(runs); i++ {
			r := &runs[i]
			if !r.CreatedAt.IsZero() {
				if !sw.last.IsZero() {
					sw.up = sw.up || r.CreatedAt.After(sw.last)
					sw.down = sw.down || r.CreatedAt.Before(sw.last)
				}
				sw.last = r.CreatedAt
			}
			t.see(r, true, &p.obs)
			t.setPosition(r.ID, sw.pos+int64(i))
		}
		return nil
	}
	for {
		var prev boundary
		// A record saved before page tokens were kept has only the IDs: its
		// first boundary goes unchecked.
		if sw.prevIDs != nil && (sw.pages == 1 || sw.prevToken != "") {
			prev = boundary{token: sw.prevToken, ids: sw.prevIDs, last: sw.last}
		}
		page, pageToken, checked, err := p.pageAfter(prev, sw.token, see)
		if err != nil {
			if sw.token != "" && refused(err) {
				// The saved page token stopped working: begin again.
				t.abandonSweep()
				c.sweep = nil
			}
			return err
		}
		sw.unverified = sw.unverified || !checked
		sw.pages++
		if !page.HasMore {
			if err := p.confirmMissing(true); err != nil {
				return err
			}
			c.order = orderUnknown
			switch {
			case sw.up && !sw.down:
				c.order = oldestFirst
			case sw.down && !sw.up:
				c.order = newestFirst
			}
			c.lastToken, c.lastPos, c.lastIndex = pageToken, sw.pos, sw.pages-1
			c.lastIDs = edgeIDs(page.Runs, c.lastIDs)
			c.sweep = nil
			c.needFull = sw.unverified
			c.nextFull = p.now.Add(p.full)
			if sw.unverified {
				t.endUncheckedSweep(p.now)
			} else {
				t.endSweep(p.now)
			}
			return nil
		}
		sw.pos += int64(len(page.Runs))
		sw.prevIDs = ids(page.Runs, sw.prevIDs)
		sw.prevToken = pageToken
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
// path: both mean the listing's position is no longer valid. A failure of
// the app's credential (a token endpoint answering 404) says nothing of
// the listing.
func refused(err error) bool {
	var e *feishu.APIError
	return errors.As(err, &e) && !feishu.IsCredential(err) && (e.Code == feishu.CodeParamInvalid || feishu.IsNotFound(err))
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

// inOrder returns errOrderChanged when a run of runs is out of the listing's
// order (wrong(created_at, the previous run's) is true): the order changed
// under the listing, which can then no longer tell what it missed. last
// carries the previous created_at from page to page; runs without one cannot
// be placed and are passed over.
func inOrder(runs []feishu.Run, last *time.Time, wrong func(t, u time.Time) bool) error {
	for i := range runs {
		r := &runs[i]
		if r.CreatedAt.IsZero() {
			continue
		}
		if !last.IsZero() && wrong(r.CreatedAt, *last) {
			return errOrderChanged
		}
		*last = r.CreatedAt
	}
	return nil
}

// seeListed counts runs[from:] as a listing shows them and notes where each
// stands; pos is where runs[0] stands.
func (p *poll) seeListed(runs []feishu.Run, from int, pos int64) {
	for i := from; i < len(runs); i++ {
		p.t.see(&runs[i], false, &p.obs)
		p.t.setPosition(runs[i].ID, pos+int64(i))
	}
}
