package watch

import (
	"context"
	"fmt"
	"testing"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// pagingAPI is a memAPI of one session of n runs, oldest first in pages of
// 5, and a poll over it before its baseline (every boundary is checked).
func pagingAPI(t *testing.T, n int) (*memAPI, *poll) {
	t.Helper()
	mem := newMemAPI(oldestFirst, 5)
	for i := range n {
		mem.put(run(fmt.Sprintf("r%02d", i), completed, float64(i), float64(i), float64(i)+0.5))
	}
	tr := newTracker(t0)
	return mem, &poll{ctx: context.Background(), api: mem, id: "s1", t: tr, c: &cursor{}}
}

// firstPage reads the first page as the boundary before the second.
func firstPage(t *testing.T, mem *memAPI) boundary {
	t.Helper()
	page, err := mem.ListRunsPage(context.Background(), "s1", "")
	if err != nil {
		t.Fatal(err)
	}
	return boundaryAfter("", page.Runs, nil)
}

// vanishOnNextPage makes the runs ids of s1 vanish right after the next
// page is read.
func vanishOnNextPage(mem *memAPI, ids ...string) {
	mem.onPage = func(int) {
		mem.onPage = nil
		mem.remove("s1", ids...)
	}
}

// secondPageChecked reads the page after prev (the second), seeing nothing
// of it, and reports whether its boundary with prev was checked.
func secondPageChecked(t *testing.T, p *poll, prev boundary) bool {
	t.Helper()
	_, _, checked, err := p.pageAfter(prev, "o5", func([]feishu.Run, bool) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return checked
}

func TestBoundaryThatKeepsMovingIsReportedUnchecked(t *testing.T) {
	mem, p := pagingAPI(t, 30)
	prev := firstPage(t, mem)
	// Every request finds the oldest run gone: the page before never holds
	// still.
	mem.onPage = func(int) { mem.remove("s1", mem.sorted("s1")[0].ID) }
	if secondPageChecked(t, p, prev) {
		t.Error("a boundary moving at every reading was reported checked")
	}
	if p.requests != 2*maxRechecks {
		t.Errorf("%d requests, want %d (the next page and the page before, %d times)", p.requests, 2*maxRechecks, maxRechecks)
	}
}

func TestPageBeforeThatBecameTheLastIsTheListingsEnd(t *testing.T) {
	mem, p := pagingAPI(t, 10)
	prev := firstPage(t, mem)
	// Right after the second page is read, five runs vanish, four in front
	// of the boundary: the first page now holds r04 and the last four, and
	// nothing follows.
	vanishOnNextPage(mem, "r00", "r01", "r02", "r03", "r05")
	var seen []string
	page, token, checked, err := p.pageAfter(prev, "o5", func(runs []feishu.Run, _ bool) error {
		for _, r := range runs {
			seen = append(seen, r.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !checked || token != "" || page.HasMore || len(page.Runs) != 5 || page.Runs[0].ID != "r04" {
		t.Errorf("got page %v from token %q (checked %v, has more %v), want r04 r06… from the first page's token, checked, the end",
			ids(page.Runs, nil), token, checked, page.HasMore)
	}
	if len(seen) != 5 {
		t.Errorf("runs passed to see: %v, want r05–r09 once each", seen)
	}
}

// Five runs vanishing in front of a boundary of pages of 5 move the runs
// behind it in front of the page before, which the listing has passed:
// the boundary cannot be repaired and is reported unchecked.
func TestBoundaryMovedByAPageIsUnchecked(t *testing.T) {
	mem, p := pagingAPI(t, 20)
	prev := firstPage(t, mem)
	vanishOnNextPage(mem, "r00", "r01", "r02", "r03", "r04")
	if secondPageChecked(t, p, prev) {
		t.Error("a boundary moved by a whole page was reported checked")
	}
}

func TestBoundaryAfterAnEmptyPage(t *testing.T) {
	b := boundaryAfter("o5", nil, nil)
	if b.token != "o5" || len(b.ids) != 0 || !b.last.IsZero() {
		t.Errorf("boundary after an empty page: %+v, want the token, no IDs, no last created_at", b)
	}
}
