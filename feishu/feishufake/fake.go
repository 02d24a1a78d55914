// Package feishufake is a faithful, in-memory fake of the Feishu Open
// Platform endpoints the exporter calls: the internal tenant_access_token
// endpoint and the Aily "list runs" and "get run" endpoints. A *Fake is an http.Handler
// (serve it with httptest.NewServer) whose sessions, runs, listing order and
// faults tests switch at will; a Simulator drives one for --demo.
//
// Where the real API is documented the fake follows it (see
// shared/reference/list-runs.md and feishu-aily-api.md). Where it is not, the
// fake makes a realistic choice, documented on the method or constant that
// implements it:
//   - an unknown session, or an unknown run of a known session, is HTTP 400
//     {"code":2700001,"msg":"param is invalid"}, the only error the aily
//     runs pages document (see AddSession);
//   - page tokens are opaque standard base64 (both alphabets are accepted)
//     of the session, the offset and the page number; pages are computed on
//     each request from the current list, so runs inserted while paging shift
//     later pages like a real offset-paged API;
//   - the listing order is oldest first unless SetOrder or SetSessionOrder
//     says otherwise;
//   - with Options.VanishAfter set, a final run disappears from the listing
//     some time after it ended (the API promises no history), which shifts
//     the positional page tokens of later pages; get run still finds it.
package feishufake

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// Defaults of Options.
const (
	DefaultTokenTTL    = 2 * time.Hour
	DefaultMaxPageSize = 100
	DefaultPageSize    = 20

	// tokenReuseMargin is the real token endpoint's rule: asked again while
	// at least this long remains, it returns the same token; with less, a new
	// one, the old staying valid until it expires.
	tokenReuseMargin = 30 * time.Minute
)

// Options configure a Fake. The zero value is usable.
type Options struct {
	// Now is the fake's clock, deciding token expiry; default time.Now.
	Now func() time.Time
	// TokenTTL is the lifetime of a new tenant token; default 2h. Below
	// 30m every token call issues a new token (the real reuse rule).
	TokenTTL time.Duration
	// MaxPageSize is the largest page_size accepted; larger sizes get HTTP
	// 400 code 2700001. The real maximum is undocumented; default 100, the
	// maximum of the other aily list endpoints.
	MaxPageSize int
	// Latency delays every list-runs and get-run answer by this much, or
	// until the request's context is done, so that benchmarks can imitate
	// the real API's round trip; default 0. The token endpoint is not
	// delayed.
	Latency time.Duration
	// VanishAfter, when positive, hides a final run from the listing once it
	// ended at least this long ago and has been listed on
	// VanishAfterListings pages (so that a client polling often has seen it
	// final). Runs behind it move up one place, as with an offset-paged API
	// whose old records expire: a page token handed out before points one
	// run further than it did. Get run still finds a vanished run.
	VanishAfter time.Duration
	// VanishAfterListings is how many list pages must have shown a final
	// run before it may vanish; default 0 (as soon as VanishAfter passed).
	VanishAfterListings int
}

// Order is the order in which the list endpoint returns runs. The real order
// is undocumented, so clients must work with either.
type Order int

// Listing orders, by created_at, ties broken by run ID.
const (
	OldestFirst Order = iota
	NewestFirst
)

// String returns the order's Go name.
func (o Order) String() string {
	if o == NewestFirst {
		return "NewestFirst"
	}
	return "OldestFirst"
}

// Fake is an http.Handler imitating the Feishu API. Its methods and
// ServeHTTP are safe for concurrent use.
type Fake struct {
	now         func() time.Time
	tokenTTL    time.Duration
	maxPageSize int
	latency     time.Duration
	vanishAfter time.Duration
	vanishSeen  int
	logIDPrefix string

	mu         sync.Mutex
	apps       map[string]string     // credential app_id → app_secret
	tokens     map[string]tenantAuth // issued tenant tokens
	current    map[string]string     // app_id → its newest tenant token
	userTokens map[string]bool
	sessions   map[string]map[string]feishu.Run // session ID → run ID → run
	sorted     map[string][]feishu.Run          // session ID → its runs in listing order, while unchanged
	order      Order
	orders     map[string]Order // per-session orders set by SetSessionOrder
	// listed counts the list pages that showed each run (session ID, run
	// ID), and vanished holds the runs hidden from the listing since.
	listed   map[runKey]int
	vanished map[runKey]bool
	vanishes int
	faults   []*activeFault
	onPage   func(sessionID string, page int)
	requests map[string]int
	logSeq   uint64
}

// runKey names a run within the fake.
type runKey struct{ session, run string }

// tenantAuth is an issued tenant token.
type tenantAuth struct {
	appID   string
	expires time.Time
}

// New returns an empty Fake: no apps, no sessions, no faults.
func New(opts Options) *Fake {
	f := &Fake{
		now:         opts.Now,
		tokenTTL:    opts.TokenTTL,
		maxPageSize: opts.MaxPageSize,
		latency:     max(opts.Latency, 0),
		vanishAfter: opts.VanishAfter,
		vanishSeen:  max(opts.VanishAfterListings, 0),
		orders:      map[string]Order{},
		listed:      map[runKey]int{},
		vanished:    map[runKey]bool{},
		logIDPrefix: randomHex(4),
		apps:        map[string]string{},
		tokens:      map[string]tenantAuth{},
		current:     map[string]string{},
		userTokens:  map[string]bool{},
		sessions:    map[string]map[string]feishu.Run{},
		sorted:      map[string][]feishu.Run{},
		requests:    map[string]int{},
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.tokenTTL <= 0 {
		f.tokenTTL = DefaultTokenTTL
	}
	if f.maxPageSize <= 0 {
		f.maxPageSize = DefaultMaxPageSize
	}
	return f
}

// AddApp registers a self-built app's credentials for the token endpoint.
// Adding an app again changes its secret.
func (f *Fake) AddApp(appID, appSecret string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps[appID] = appSecret
}

// AddUserToken registers a user_access_token ("u-…") the list endpoint
// accepts as a Bearer token. User tokens do not expire in the fake.
func (f *Fake) AddUserToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.userTokens[token] = true
}

// RemoveUserToken makes a user token invalid (code 99991668 from then on).
func (f *Fake) RemoveUserToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.userTokens, token)
}

// AddSession makes a session known, with no runs. Listing a session that was
// never added (by AddSession or PutRun), or getting a run of it, answers HTTP
// 400 with code 2700001 "param is invalid": the real answer is undocumented,
// and that is the only error the list-runs page documents. Getting a run the
// known session does not have is answered the same way, for the same reason.
func (f *Fake) AddSession(sessionID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessionLocked(sessionID)
}

// RemoveSession forgets a session and its runs; listing it is then an
// unknown-session error.
func (f *Fake) RemoveSession(sessionID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, sessionID)
	delete(f.sorted, sessionID)
}

// Sessions returns the known session IDs, sorted.
func (f *Fake) Sessions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.sessions))
}

func (f *Fake) sessionLocked(sessionID string) map[string]feishu.Run {
	s, ok := f.sessions[sessionID]
	if !ok {
		s = map[string]feishu.Run{}
		f.sessions[sessionID] = s
	}
	return s
}

// PutRun adds a run to r.SessionID, or replaces the run with the same ID
// there (e.g. to change its status). The session is added if unknown.
func (f *Fake) PutRun(r feishu.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessionLocked(r.SessionID)[r.ID] = cloneRun(r)
	delete(f.sorted, r.SessionID)
}

// DeleteRun removes a run from a session; unknown IDs are ignored.
func (f *Fake) DeleteRun(sessionID, runID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.sessions[sessionID]; ok {
		delete(s, runID)
		delete(f.sorted, sessionID)
	}
}

// Runs returns a session's runs in the current listing order.
func (f *Fake) Runs(sessionID string) []feishu.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	sorted, _ := f.sortedRunsLocked(sessionID)
	runs := make([]feishu.Run, len(sorted))
	for i := range sorted {
		runs[i] = cloneRun(sorted[i])
	}
	return runs
}

// sortedRunsLocked returns a session's runs in listing order, and whether
// the session is known. The order is kept until the session's runs or the
// order change, so that paging through a large session does not sort it
// for every page; callers must not modify the slice.
func (f *Fake) sortedRunsLocked(sessionID string) ([]feishu.Run, bool) {
	s, ok := f.sessions[sessionID]
	if !ok {
		return nil, false
	}
	if runs, ok := f.sorted[sessionID]; ok {
		return runs, true
	}
	runs := make([]feishu.Run, 0, len(s))
	for _, r := range s {
		if !f.vanished[runKey{sessionID, r.ID}] {
			runs = append(runs, r)
		}
	}
	order, ok := f.orders[sessionID]
	if !ok {
		order = f.order
	}
	slices.SortFunc(runs, func(a, b feishu.Run) int {
		c := a.CreatedAt.Compare(b.CreatedAt)
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		if order == NewestFirst {
			c = -c
		}
		return c
	})
	f.sorted[sessionID] = runs
	return runs, true
}

// SetOrder chooses the listing order; the default is OldestFirst.
func (f *Fake) SetOrder(o Order) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.order = o
	clear(f.sorted)
}

// SetSessionOrder chooses one session's listing order, overriding SetOrder.
func (f *Fake) SetSessionOrder(sessionID string, o Order) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders[sessionID] = o
	delete(f.sorted, sessionID)
}

// Vanished returns how many runs have vanished from the listing so far.
func (f *Fake) Vanished() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.vanishes
}

// vanishLocked hides from a session's listing the final runs that ended at
// least VanishAfter before now and were listed often enough.
func (f *Fake) vanishLocked(sessionID string, now time.Time) {
	if f.vanishAfter <= 0 {
		return
	}
	for id, r := range f.sessions[sessionID] {
		k := runKey{sessionID, id}
		if f.vanished[k] || !r.Status.Final() || r.EndedAt.IsZero() ||
			now.Sub(r.EndedAt) < f.vanishAfter || f.listed[k] < f.vanishSeen {
			continue
		}
		f.vanished[k] = true
		delete(f.listed, k)
		f.vanishes++
		delete(f.sorted, sessionID)
	}
}

// OnPage sets a hook called each time the list endpoint has computed page
// number page (0-based, counted along one chain of page tokens) of a
// session, before that page is written. Runs the hook adds or changes show
// from the next page on, as when runs are created while a client is paging.
// The hook runs on the request's goroutine without the fake's lock held, so
// it may call the fake's methods. nil removes it.
func (f *Fake) OnPage(hook func(sessionID string, page int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onPage = hook
}

// Requests returns how many requests reached an endpoint ("tenant_token",
// "list_runs" or "get_run"), faulted ones included.
func (f *Fake) Requests(endpoint string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[endpoint]
}

// ExpireTokens makes every tenant token issued so far invalid: the list
// endpoint answers them with code 99991663, and the token endpoint issues a
// new one on the next call.
func (f *Fake) ExpireTokens() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.tokens)
	clear(f.current)
}

// issueTokenLocked returns the app's tenant token and its remaining lifetime,
// following the real reuse rule.
func (f *Fake) issueTokenLocked(appID string, now time.Time) (string, time.Duration) {
	if tok, ok := f.current[appID]; ok {
		if a, ok := f.tokens[tok]; ok && a.expires.Sub(now) >= tokenReuseMargin {
			return tok, a.expires.Sub(now)
		}
	}
	tok := "t-" + randomHex(20)
	f.tokens[tok] = tenantAuth{appID: appID, expires: now.Add(f.tokenTTL)}
	f.current[appID] = tok
	// Forget tokens long expired so that a long demo does not grow.
	for t, a := range f.tokens {
		if now.After(a.expires) {
			delete(f.tokens, t)
		}
	}
	return tok, f.tokenTTL
}

func cloneRun(r feishu.Run) feishu.Run {
	if r.Error != nil {
		e := *r.Error
		r.Error = &e
	}
	return r
}

// randomHex returns 2n random hex digits. crypto/rand never fails on the
// platforms Go supports (it panics rather than return an error).
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
