package watch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// The errors of the tests below, as the feishu client makes them.
var (
	errWrongSecret = &feishu.CredentialError{Credential: "tenant token of app cli_x",
		Err: fmt.Errorf("get tenant token of app cli_x: %w", &feishu.APIError{Endpoint: feishu.EndpointTenantToken, HTTPStatus: 200, Code: feishu.CodeTokenInvalidParam, Msg: "invalid param"})}
	errTokenTimeout = &feishu.CredentialError{Credential: "tenant token of app cli_x",
		Err: fmt.Errorf("get tenant token of app cli_x: %w", &feishu.TransportError{Endpoint: feishu.EndpointTenantToken, Host: "open.feishu.test", Timeout: 10 * time.Second, Err: context.DeadlineExceeded})}
	errRefused = &feishu.CredentialError{Credential: "tenant token of app cli_x", Refused: true,
		Err: &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: 400, Code: feishu.CodeTokenInvalid, Msg: "Invalid access token"}}
	// errSlow stands for an API too slow to answer: see appFailingAPI.
	errSlow     = errors.New("slow")
	errNotFound = &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: 404, Code: feishu.CodeResourceNotFound, Msg: "not found"}
)

// appFailingAPI fails every listing with its error while one is set, and a
// listing of the sessions in sessionErrs with theirs; otherwise it lists
// from memory. Errors are wrapped as the client wraps them, naming the
// session. With errSlow set, a listing (not a get run) waits for the
// caller's deadline and fails as the client does then: with a
// *feishu.TransportError naming the host.
type appFailingAPI struct {
	*memAPI
	mu          sync.Mutex
	err         error
	sessionErrs map[string]error
}

func (a *appFailingAPI) set(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

func (a *appFailingAPI) ListRunsPage(ctx context.Context, session, token string) (feishu.RunsPage, error) {
	a.mu.Lock()
	err := a.err
	if e := a.sessionErrs[session]; e != nil {
		err = e
	}
	a.mu.Unlock()
	if err == errSlow {
		<-ctx.Done()
		err = &feishu.TransportError{Endpoint: feishu.EndpointListRuns, Host: "open.feishu.test", Err: ctx.Err()}
	}
	if err != nil {
		return feishu.RunsPage{}, fmt.Errorf("list runs of session %s: %w", session, err)
	}
	return a.memAPI.ListRunsPage(ctx, session, token)
}

func (a *appFailingAPI) GetRun(ctx context.Context, session, id string) (feishu.Run, error) {
	a.mu.Lock()
	err := a.err
	a.mu.Unlock()
	if err != nil && err != errSlow { // errSlow slows listings only
		return feishu.Run{}, fmt.Errorf("get run %s of session %s: %w", id, session, err)
	}
	return a.memAPI.GetRun(ctx, session, id)
}

// logged is a log read back: its lines' key-value pairs.
type logged struct {
	t   *testing.T
	buf *testkit.LogBuffer
}

func newLogged(t *testing.T) (*logged, log.Logger) {
	l := &logged{t: t, buf: &testkit.LogBuffer{}}
	return l, log.NewLogfmtLogger(l.buf)
}

// lines returns the lines at a level whose msg is msg ("" any) and whose
// session_id is present or not.
func (l *logged) lines(lvl, msg string, perSession bool) []map[string]string {
	l.t.Helper()
	var out []map[string]string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if line == "" {
			continue
		}
		kv := parseLogfmtLine(l.t, line)
		if kv["level"] != lvl || (msg != "" && kv["msg"] != msg) || (kv["session_id"] != "") != perSession {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// parseLogfmtLine reads the key=value pairs of one logfmt line, values
// quoted or not.
func parseLogfmtLine(t *testing.T, line string) map[string]string {
	t.Helper()
	kv := map[string]string{}
	for s := line; s != ""; s = strings.TrimLeft(s, " ") {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("not logfmt: %q", line)
		}
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for ; end < len(rest) && rest[end] != '"'; end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			var v string
			if _, err := fmt.Sscanf(rest[:end+1], "%q", &v); err != nil {
				t.Fatalf("bad quoting in %q: %v", line, err)
			}
			kv[k], s = v, rest[end+1:]
			continue
		}
		v, after, _ := strings.Cut(rest, " ")
		kv[k], s = v, after
	}
	return kv
}

func sessionsNamed(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return ids
}

func TestAFailureEverySessionSharesIsLoggedOncePerApp(t *testing.T) {
	logs, logger := newLogged(t)
	clk := feishufake.NewClock(t0)
	api := &appFailingAPI{memAPI: newMemAPI(newestFirst, 10)}
	w := New(Options{Now: clk.Now, MinInterval: -1, IdleInterval: time.Nanosecond, Logger: logger})
	w.SetApps([]App{
		{Name: "a", API: api, Sessions: sessionsNamed("s", 20)},
		{Name: "b", API: newMemAPI(newestFirst, 10), Sessions: []string{"t1", "t2"}},
	})
	scrape := func() {
		clk.Advance(time.Minute)
		pollWithin(w, 10*time.Second)
	}
	count := func(lvl, msg string, perSession bool) int { return len(logs.lines(lvl, msg, perSession)) }

	// A wrong secret, for three scrapes: one warning for the app, naming
	// the error and what to check; the sessions' lines at debug.
	api.set(errWrongSecret)
	for range 3 {
		scrape()
	}
	warns := logs.lines("warn", "", false)
	if len(warns) != 1 || warns[0]["msg"] != msgCredentialFails || warns[0]["app"] != "a" ||
		!strings.Contains(warns[0]["err"], "code 10003") || !strings.Contains(warns[0]["hint"], "app_secret") {
		t.Fatalf("warnings for the app after three scrapes: %v, want one naming code 10003 and app_secret", warns)
	}
	if n := count("warn", "", true); n != 0 {
		t.Errorf("%d warnings name a session, want none", n)
	}
	if n := count("debug", "Polling a session failed", true); n != 20 {
		t.Errorf("%d debug lines say a session started failing, want one per session (20)", n)
	}
	if n := count("debug", "Polling a session failed again", true); n != 40 {
		t.Errorf("%d debug lines say a session failed again, want 40", n)
	}
	for _, s := range snapshots(w) {
		if wantUp := s.App == "b"; s.Up != wantUp {
			t.Errorf("session %s/%s up %v, want %v", s.App, s.ID, s.Up, wantUp)
		}
	}

	// A different failure: one more warning, naming the host and the flag.
	api.set(errTokenTimeout)
	scrape()
	scrape()
	warns = logs.lines("warn", "", false)
	if len(warns) != 2 || warns[1]["msg"] != msgHostSilent ||
		!strings.Contains(warns[1]["hint"], "open.feishu.test") || !strings.Contains(warns[1]["hint"], "--feishu.timeout") {
		t.Fatalf("warnings after the failure changed: %v, want a second naming the host and --feishu.timeout", warns)
	}

	// It works again: one line for the app, at info; none per session.
	api.set(nil)
	scrape()
	scrape()
	if infos := logs.lines("info", "", false); len(infos) != 1 || infos[0]["msg"] != msgAppWorks || infos[0]["app"] != "a" {
		t.Errorf("info lines for the app after it recovered: %v, want one", infos)
	}
	if n := count("info", "", true); n != 0 {
		t.Errorf("%d info lines name a session, want none", n)
	}
	if n := count("debug", "Polling a session works again", true); n != 20 {
		t.Errorf("%d debug lines say a session works again, want 20", n)
	}

	// A failure of one session is the session's: a warning naming it, none
	// for the app, and its recovery at info.
	api.mu.Lock()
	api.sessionErrs = map[string]error{"s3": errNotFound}
	api.mu.Unlock()
	scrape()
	scrape()
	if warns := logs.lines("warn", "Polling a session failed", true); len(warns) != 1 || warns[0]["session_id"] != "s3" {
		t.Errorf("warnings of a session that fails alone: %v, want one for s3", warns)
	}
	if n := count("warn", "", false); n != 2 {
		t.Errorf("%d warnings for the app, want still 2", n)
	}
	api.mu.Lock()
	api.sessionErrs = nil
	api.mu.Unlock()
	scrape()
	if infos := logs.lines("info", "Polling a session works again", true); len(infos) != 1 || infos[0]["session_id"] != "s3" {
		t.Errorf("info lines of the session that recovered: %v, want one for s3", infos)
	}
	if n := count("info", "", false); n != 1 {
		t.Errorf("%d info lines for the app, want still 1", n)
	}
}

func TestAFailureOfTheAppAfterOneOfASessionIsTheApps(t *testing.T) {
	logs, logger := newLogged(t)
	clk := feishufake.NewClock(t0)
	api := &appFailingAPI{memAPI: newMemAPI(newestFirst, 10), sessionErrs: map[string]error{"s0": errNotFound}}
	w := New(Options{Now: clk.Now, MinInterval: -1, IdleInterval: time.Nanosecond, Logger: logger})
	w.SetApps([]App{{Name: "a", API: api, Sessions: sessionsNamed("s", 3)}})
	pollWithin(w, 10*time.Second)
	api.mu.Lock()
	api.sessionErrs = nil
	api.mu.Unlock()
	api.set(errRefused)
	clk.Advance(time.Minute)
	pollWithin(w, 10*time.Second)
	if warns := logs.lines("warn", "", false); len(warns) != 1 || warns[0]["msg"] != msgCredentialFails ||
		!strings.Contains(warns[0]["hint"], "developer console") {
		t.Errorf("warnings for the app: %v, want one that its token is refused", warns)
	}
	if warns := logs.lines("warn", "", true); len(warns) != 1 || warns[0]["session_id"] != "s0" {
		t.Errorf("warnings naming a session: %v, want only s0's own failure", warns)
	}
	// The session that failed alone is not said to work again when the
	// app's failure takes over.
	if infos := logs.lines("info", "", true); len(infos) != 0 {
		t.Errorf("info lines naming a session: %v, want none", infos)
	}
}

func TestSessionsOfAnAppWhoseCredentialFailsAreNotOverdue(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		wantOverdue int
	}{
		// Failing, not over budget, whether or not requests were sent.
		{"no token", errWrongSecret, 0},
		{"token refused", errRefused, 0},
		// A failure of each session: the budget of 2 requests reaches two.
		{"each session failing", errNotFound, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := &appFailingAPI{memAPI: newMemAPI(newestFirst, 10), err: tc.err}
			w := New(Options{MinInterval: flagMinInterval, Now: feishufake.NewClock(t0).Now, RateLimit: 0.2})
			w.SetApps([]App{{Name: "a", API: api, Sessions: sessionsNamed("s", 5)}})
			pollWithin(w, 10500*time.Millisecond) // a budget of 2 requests
			if got := w.Overdue()["a"]; got != tc.wantOverdue {
				t.Errorf("overdue %d, want %d", got, tc.wantOverdue)
			}
			failing := 0
			for _, s := range snapshots(w) {
				if s.State == Failing {
					failing++
				}
			}
			if failing < 2 {
				t.Errorf("%d sessions failing, want at least the 2 the budget pays for", failing)
			}
		})
	}
}

func TestARequestNotSentIsGivenBackToTheBudget(t *testing.T) {
	for _, tc := range []struct {
		name      string
		unlimited bool
		prepaid   bool
		left      int // the budget's after giving back
		pollLeft  int
	}{
		// startPoll paid the first request: it goes back to the budget,
		// the poll's own share is as it was.
		{"prepaid", false, true, 10, 4},
		{"paid by take", false, false, 9, 4},
		{"unlimited", true, false, 10, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &budget{unlimited: tc.unlimited, left: 10, perPoll: 5}
			p := b.startPoll()
			if !tc.prepaid && !tc.unlimited {
				p.take() // the prepaid first request, kept
			}
			failing := &appFailingAPI{memAPI: newMemAPI(newestFirst, 10), err: errWrongSecret}
			api := budgetedAPI{API: failing, b: p}
			if _, err := api.ListRunsPage(context.Background(), "s", ""); !feishu.IsCredential(err) {
				t.Fatalf("err = %v", err)
			}
			wantSpent := 0
			if !tc.prepaid && !tc.unlimited {
				wantSpent = 1
			}
			if b.left != tc.left || b.spent != wantSpent || p.left != tc.pollLeft {
				t.Errorf("budget left %d spent %d, poll's share %d; want %d, %d, %d", b.left, b.spent, p.left, tc.left, wantSpent, tc.pollLeft)
			}
			if _, err := api.GetRun(context.Background(), "s", "r"); !feishu.IsCredential(err) {
				t.Fatalf("err = %v", err)
			}
			if b.spent != wantSpent {
				t.Errorf("spent %d after a get run not sent, want %d", b.spent, wantSpent)
			}
			// A refused token was sent: it stays spent.
			failing.set(errRefused)
			for range 2 {
				if _, err := api.GetRun(context.Background(), "s", "r"); !feishu.IsCredential(err) {
					t.Fatalf("err = %v", err)
				}
			}
			if _, err := api.ListRunsPage(context.Background(), "s", ""); !feishu.IsCredential(err) {
				t.Fatalf("err = %v", err)
			}
			if want := wantSpent + 3; b.spent != want {
				t.Errorf("spent %d after three refused requests, want %d", b.spent, want)
			}
		})
	}
}

func TestCutOffsAreLoggedOncePerAppWhenTheyStartAndEnd(t *testing.T) {
	logs, logger := newLogged(t)
	clk := feishufake.NewClock(t0)
	api := &appFailingAPI{memAPI: newMemAPI(newestFirst, 10), err: errSlow}
	w := New(Options{Now: clk.Now, MinInterval: -1, IdleInterval: time.Nanosecond, Logger: logger})
	w.SetApps([]App{
		{Name: "a", API: api, Sessions: sessionsNamed("s", 6)},
		{Name: "b", API: newMemAPI(newestFirst, 10), Sessions: []string{"t1"}},
	})
	scrape := func() map[SessionKey]bool {
		clk.Advance(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		cut := w.Poll(ctx)
		// The polls cut off end just after the deadline: the next scrape
		// must not find them under way.
		waitForPolls(t, w)
		return cut
	}
	for range 3 {
		if cut := scrape(); len(cut) == 0 {
			t.Fatal("no poll was cut off")
		}
	}
	warns := logs.lines("warn", "", false)
	if len(warns) != 1 || warns[0]["msg"] != msgCutOff || warns[0]["app"] != "a" {
		t.Fatalf("warnings after three scrapes with cut-offs: %v, want one for the app", warns)
	}
	for _, want := range []string{"open.feishu.test", "scrape_timeout", "--scrape.timeout-offset", "--feishu.timeout"} {
		if !strings.Contains(warns[0]["hint"], want) {
			t.Errorf("the warning's hint %q does not name %s", warns[0]["hint"], want)
		}
	}
	if !strings.Contains(warns[0]["err"], "open.feishu.test") {
		t.Errorf("the warning's error %q does not name the host", warns[0]["err"])
	}
	if n := len(logs.lines("warn", "", true)); n != 0 {
		t.Errorf("%d warnings name a session, want none", n)
	}
	if n := len(logs.lines("debug", "A poll was cut off by the scrape deadline", true)); n < 6 {
		t.Errorf("%d debug lines of cut-off polls, want one per poll", n)
	}

	// A scrape with no cut-off ends it, once; then cut-offs are news again.
	api.set(nil)
	scrape()
	scrape()
	if infos := logs.lines("info", "", false); len(infos) != 1 || infos[0]["msg"] != msgCutOffEnds || infos[0]["app"] != "a" {
		t.Errorf("info lines after a scrape without cut-offs: %v, want one for the app", infos)
	}
	api.set(errSlow)
	scrape()
	if n := len(logs.lines("warn", msgCutOff, false)); n != 2 {
		t.Errorf("%d cut-off warnings after the cut-offs came back, want 2", n)
	}
}

func TestHints(t *testing.T) {
	apiErr := func(code, status int) error {
		return fmt.Errorf("list runs of session s: %w", &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: status, Code: code})
	}
	credential := func(err error, refused bool) error {
		return &feishu.CredentialError{Credential: "tenant token of app cli_x", Refused: refused, Err: err}
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"timeout", errTokenTimeout, "open.feishu.test gave no answer within --feishu.timeout (10s)"},
		{"unreachable", &feishu.TransportError{Endpoint: feishu.EndpointListRuns, Host: "h.test", Err: errors.New("no such host")}, "h.test cannot be reached"},
		{"wrong secret", errWrongSecret, "check app_id and app_secret"},
		{"user token invalid", credential(apiErr(feishu.CodeTokenUserInvalid, 400), true), "user_access_token_file"},
		{"user token expired", credential(apiErr(feishu.CodeUserTokenExpired, 400), true), "user_access_token_file"},
		{"user token file", credential(os.ErrNotExist, false), "user_access_token_file"},
		{"scope", apiErr(feishu.CodeScopeMissing, 400), "aily:run:read"},
		{"token endpoint not found", credential(apiErr(0, 404), false), "base_url is wrong"},
		{"token refused", errRefused, "developer console (disabled, re-created)"},
		{"token endpoint down", credential(apiErr(0, 503), false), "back-off"},
		{"no permission", apiErr(feishu.CodeTokenNoPermission, 403), "check the app's permissions"},
	} {
		if got := hint(tc.err); !strings.Contains(got, tc.want) {
			t.Errorf("%s: hint %q, want it to say %q", tc.name, got, tc.want)
		}
	}
	if got := cutOffHint(errors.New("poll cut off")); !strings.HasPrefix(got, "the API did not answer") {
		t.Errorf("cut-off hint without a host: %q", got)
	}
}

func TestAppWide(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errWrongSecret, true},
		{errRefused, true},
		{errTokenTimeout, true},
		{&feishu.TransportError{Endpoint: feishu.EndpointListRuns, Host: "h", Err: errors.New("EOF")}, true},
		{&feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: 400, Code: feishu.CodeScopeMissing}, true},
		{errNotFound, false},
		{&feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: 500}, false},
		{errors.New("list runs: a page with more runs has no page token"), false},
	} {
		if got := appWide(tc.err); got != tc.want {
			t.Errorf("appWide(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestErrorKeysTellFailuresApartButNotTheirSessions(t *testing.T) {
	transport := func(session string, err error, timeout time.Duration) error {
		return fmt.Errorf("list runs of session %s: %w", session, &feishu.TransportError{Endpoint: feishu.EndpointListRuns, Host: "h.test", Timeout: timeout, Err: err})
	}
	refusedAt := func(port int) error {
		return &net.OpError{Op: "read", Net: "tcp", Addr: &net.TCPAddr{Port: port}, Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	}
	fileErr := func(session string) error {
		return fmt.Errorf("list runs of session %s: %w", session, &feishu.CredentialError{Credential: "user access token from file f",
			Err: fmt.Errorf("user access token: %w", os.ErrNotExist)})
	}
	for _, tc := range []struct {
		name string
		a, b error
		same bool
	}{
		{"an API error's code", errNotFound, apiErrWithMsg("other message"), true},
		{"API errors of other codes", errNotFound, errWrongSecret, false},
		{"a timeout in two sessions", transport("s1", context.DeadlineExceeded, time.Second), transport("s2", context.DeadlineExceeded, time.Second), true},
		{"a timeout and a reset", transport("s1", context.DeadlineExceeded, time.Second), transport("s1", refusedAt(1), 0), false},
		{"resets from two ports", transport("s1", refusedAt(1), 0), transport("s2", refusedAt(2), 0), true},
		{"a reset and a refused connection", transport("s1", refusedAt(1), 0),
			transport("s1", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, 0), false},
		{"a missing token file in two sessions", fileErr("s1"), fileErr("s2"), true},
		{"plain errors", errors.New("a"), errors.New("b"), false},
	} {
		if same := errorKey(tc.a) == errorKey(tc.b); same != tc.same {
			t.Errorf("%s: keys %q and %q, same %v, want %v", tc.name, errorKey(tc.a), errorKey(tc.b), same, tc.same)
		}
	}
	if got, want := errorKey(transport("s1", refusedAt(1), 0)), "list_runs at h.test: read: connection reset by peer"; got != want {
		t.Errorf("key of a reset: %q, want %q", got, want)
	}
	if got, want := errorKey(transport("s1", context.DeadlineExceeded, time.Second)), "list_runs at h.test: no answer within 1s"; got != want {
		t.Errorf("key of a timeout: %q, want %q", got, want)
	}
}

func apiErrWithMsg(msg string) error {
	return &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: http.StatusNotFound, Code: feishu.CodeResourceNotFound, Msg: msg, LogID: "x"}
}

func TestACredentialFailureSaysNothingOfTheListing(t *testing.T) {
	notFound := &feishu.APIError{Endpoint: feishu.EndpointTenantToken, HTTPStatus: http.StatusNotFound, Msg: "404 page not found"}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: 400, Code: feishu.CodeParamInvalid}, true},
		{errNotFound, true},
		{&feishu.CredentialError{Credential: "tenant token of app cli_x", Err: notFound}, false},
		{errRefused, false},
	} {
		if got := refused(tc.err); got != tc.want {
			t.Errorf("refused(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestTheTroubleshootingTableQuotesTheAppsLogLines(t *testing.T) {
	doc, err := os.ReadFile("../../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, found := strings.Cut(string(doc), "\n## Failed calls\n")
	if !found {
		t.Fatal(`docs/troubleshooting.md has no section "Failed calls"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	section = strings.Join(strings.Fields(section), " ") // lines wrap
	for _, msg := range []string{msgCredentialFails, msgHostSilent, msgRequestsRefused, msgAppWorks, msgCutOff, msgCutOffEnds,
		"Polling a session failed", "A poll was cut off by the scrape deadline"} {
		if !strings.Contains(section, "`"+msg) {
			t.Errorf("docs/troubleshooting.md's failed calls section does not quote the log line %q", msg)
		}
	}
}

// waitForPolls waits until no poll of w is under way.
func waitForPolls(t *testing.T, w *Watcher) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		w.mu.Lock()
		sessions := w.sessions
		w.mu.Unlock()
		busy := false
		for _, s := range sessions {
			s.mu.Lock()
			busy = busy || s.polling != nil
			s.mu.Unlock()
		}
		if !busy {
			return
		}
	}
	t.Fatal("polls still under way after 10 s")
}
