package watch

import (
	"cmp"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// memAPI is an in-memory API for the planner's table tests: offset page
// tokens, either order, a hook between pages, request counts. The tests over
// real HTTP use feishufake instead.
type memAPI struct {
	mu       sync.Mutex
	runs     map[string]map[string]feishu.Run
	order    order
	size     int
	lists    int            // list-runs requests
	listsOf  map[string]int // list-runs requests by session, never reset
	gets     int            // get-run requests
	onPage   func(page int) // called after each page is computed
	badToken bool           // every page token is refused (2700001)
	// emptyLast ends a listing whose last page is full with an empty page,
	// as some APIs do.
	emptyLast bool
	pageNo    int
	cache     map[string][]feishu.Run // sorted runs, until the next put
}

func newMemAPI(o order, size int) *memAPI {
	return &memAPI{runs: map[string]map[string]feishu.Run{}, order: o, size: size}
}

func (m *memAPI) put(runs ...feishu.Run) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache = nil
	for _, r := range runs {
		s := m.runs[r.SessionID]
		if s == nil {
			s = map[string]feishu.Run{}
			m.runs[r.SessionID] = s
		}
		s[r.ID] = r
	}
}

// remove deletes runs of a session: the API stops listing them.
func (m *memAPI) remove(session string, ids ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cache = nil
	for _, id := range ids {
		delete(m.runs[session], id)
	}
}

func (m *memAPI) sorted(session string) []feishu.Run {
	if out, ok := m.cache[session]; ok {
		return out
	}
	var out []feishu.Run
	for _, r := range m.runs[session] {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b feishu.Run) int {
		c := cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
		if m.order == newestFirst {
			return -c
		}
		return c
	})
	if m.cache == nil {
		m.cache = map[string][]feishu.Run{}
	}
	m.cache[session] = out
	return out
}

func (m *memAPI) ListRunsPage(_ context.Context, session, token string) (feishu.RunsPage, error) {
	m.mu.Lock()
	m.lists++
	if m.listsOf == nil {
		m.listsOf = map[string]int{}
	}
	m.listsOf[session]++
	off := 0
	if token != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(token, "o"))
		if m.badToken || err != nil {
			m.mu.Unlock()
			return feishu.RunsPage{}, &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: http.StatusBadRequest,
				Code: feishu.CodeParamInvalid, Msg: "param is invalid"}
		}
		off = n
	}
	runs := m.sorted(session)
	start, end := min(off, len(runs)), min(off+m.size, len(runs))
	page := feishu.RunsPage{Runs: slices.Clone(runs[start:end]), HasMore: end < len(runs)}
	if m.emptyLast && end-start == m.size && end == len(runs) {
		// A listing whose last page is full ends with an empty one.
		page.HasMore = true
	}
	if page.HasMore {
		page.NextPageToken = "o" + strconv.Itoa(end)
	}
	m.pageNo++
	hook, n := m.onPage, m.pageNo
	m.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return page, nil
}

func (m *memAPI) GetRun(_ context.Context, session, id string) (feishu.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	r, ok := m.runs[session][id]
	if !ok {
		return feishu.Run{}, &feishu.APIError{Endpoint: "get_run", HTTPStatus: http.StatusBadRequest,
			Code: feishu.CodeParamInvalid, Msg: "param is invalid"}
	}
	return r, nil
}

func (m *memAPI) PageSize() int { return m.size }

// listed returns the list-runs requests made for a session so far.
func (m *memAPI) listed(session string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.listsOf[session]
}

// requests returns the list and get requests made since the last call.
func (m *memAPI) requests() (lists, gets int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	lists, gets = m.lists, m.gets
	m.lists, m.gets = 0, 0
	return lists, gets
}
