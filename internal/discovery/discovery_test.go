package discovery

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/go-kit/log"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	promconfig "github.com/prometheus/common/config"
)

// agent is the service that publishes its sessions: an HTTP server whose
// answer the test sets, and which keeps the requests it was sent.
type agent struct {
	t       *testing.T
	srv     *httptest.Server
	release chan struct{} // closed at the end of the test: hanging answers end

	mu       sync.Mutex
	answer   answer
	requests []http.Header
	got      chan struct{} // a value per request
}

// answer is what the agent answers.
type answer struct {
	status int    // 0: 200
	ctype  string // the Content-Type
	body   []byte
	// hang: no answer at all; hangBody: headers and part of the body, then
	// nothing; chunked: no Content-Length; endless: body over and over
	// until the client goes (as a URL of /dev/zero would).
	hang, hangBody, chunked, endless bool
}

func newAgent(t *testing.T) *agent {
	t.Helper()
	a := &agent{t: t, release: make(chan struct{}), got: make(chan struct{}, 1000)}
	a.srv = httptest.NewServer(a)
	t.Cleanup(func() {
		close(a.release)
		a.srv.Close()
	})
	return a
}

func (a *agent) set(ans answer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answer = ans
}

// json answers the IDs as a JSON array.
func (a *agent) json(body string) { a.set(answer{ctype: "application/json", body: []byte(body)}) }

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	ans := a.answer
	a.requests = append(a.requests, r.Header.Clone())
	a.mu.Unlock()
	a.got <- struct{}{}
	if ans.hang {
		select {
		case <-r.Context().Done():
		case <-a.release:
		}
		return
	}
	w.Header().Set("Content-Type", ans.ctype)
	if !ans.chunked && !ans.hangBody && !ans.endless {
		w.Header().Set("Content-Length", strconv.Itoa(len(ans.body)))
	}
	w.WriteHeader(cmpOr(ans.status, http.StatusOK))
	if ans.hangBody {
		_, _ = w.Write(ans.body[:len(ans.body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-a.release:
		}
		return
	}
	if ans.chunked {
		w.(http.Flusher).Flush()
	}
	for {
		if _, err := w.Write(ans.body); err != nil || !ans.endless {
			return
		}
		select {
		case <-a.release:
			return
		default:
		}
	}
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// lastRequest returns the headers of the last request.
func (a *agent) lastRequest() http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.requests) == 0 {
		a.t.Fatal("the agent got no request")
	}
	return a.requests[len(a.requests)-1]
}

// newSource returns a Source of the agent's URL with o's settings, a
// 5-second timeout unless o says otherwise, logging into logs.
func newSource(t *testing.T, a *agent, o Options) (*Source, *testkit.LogBuffer) {
	t.Helper()
	logs := &testkit.LogBuffer{}
	o.App, o.URL = "helpdesk", a.srv.URL+"/aily/sessions?app=helpdesk"
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.HTTP.TLSConfig == (promconfig.TLSConfig{}) && o.HTTP.BasicAuth == nil && o.HTTP.Authorization == nil {
		o.HTTP = promconfig.DefaultHTTPClientConfig
	}
	o.Logger = log.NewLogfmtLogger(logs)
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// refresh fetches once, within 20 seconds at most: a fetch that ignores its
// timeout fails the test rather than hanging it.
func refresh(t *testing.T, s *Source) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return s.Refresh(ctx)
}

func mustRefresh(t *testing.T, s *Source) {
	t.Helper()
	if err := refresh(t, s); err != nil {
		t.Fatalf("refresh: %v", err)
	}
}

func sessions(s *Source) []string {
	ids, _ := s.Sessions()
	return ids
}

func TestJSONAndTextAnswersAreRead(t *testing.T) {
	for _, tc := range []struct {
		name, ctype, body string
		want              []string
	}{
		{"a JSON array", "application/json", `["session_b", "session_a", "session_b"]`, []string{"session_b", "session_a"}},
		{"a JSON array with a charset", "application/json; charset=utf-8", "[\n  \"session_a\"\n]\n", []string{"session_a"}},
		{"an empty JSON array", "application/json", `[]`, []string{}},
		{"the sessions_file format", "text/plain; charset=utf-8", "# made by the agent\nsession_a\n\n  session_b  # why\nsession_a\n",
			[]string{"session_a", "session_b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t)
			a.set(answer{ctype: tc.ctype, body: []byte(tc.body)})
			s, _ := newSource(t, a, Options{})
			mustRefresh(t, s)
			got, _ := s.Sessions()
			if diff := cmp.Diff(tc.want, append([]string{}, got...)); diff != "" {
				t.Errorf("sessions (-want +got):\n%s", diff)
			}
			st := s.Status()
			if !st.Up() || st.LastError != "" || st.Sessions != len(tc.want) || st.LastSuccess.IsZero() {
				t.Errorf("status %+v, want up with %d sessions", st, len(tc.want))
			}
			if h := a.lastRequest(); !strings.HasPrefix(h.Get("Accept"), "application/json") {
				t.Errorf("Accept: %q, want application/json first", h.Get("Accept"))
			}
		})
	}
}

// TestABadAnswerKeepsTheLastList: after a good list, each bad answer is an
// error that says what is wrong, and the good list stays in force.
func TestABadAnswerKeepsTheLastList(t *testing.T) {
	good := []string{"session_a", "session_b"}
	for _, tc := range []struct {
		name string
		ans  answer
		want string // the error, whole
	}{
		{"a bad line", answer{ctype: "text/plain", body: []byte("session_a\n# ok so far\nsession_b session_c\n")},
			`text/plain answer: line 3: session ID "session_b session_c" contains a space, '/', '?' or '#'`},
		{"a JSON item that is no string", answer{ctype: "application/json", body: []byte(`["session_a", 42]`)},
			`item [1] of the JSON array is 42, not a session ID in quotes`},
		{"a JSON item that is a URL", answer{ctype: "application/json", body: []byte(`["session_a", "https://x/session_b"]`)},
			`item [1] of the JSON array: session ID "https://x/session_b" contains a space, '/', '?' or '#'`},
		{"an empty JSON item", answer{ctype: "application/json", body: []byte(`["session_a", ""]`)},
			`item [1] of the JSON array: empty session ID`},
		{"a JSON object", answer{ctype: "application/json", body: []byte(`{"sessions": ["session_a"]}`)},
			`the JSON answer is not an array: want ["session_…", …]`},
		{"JSON null", answer{ctype: "application/json", body: []byte(`null`)},
			`the JSON answer is not an array: want ["session_…", …]`},
		{"JSON cut short", answer{ctype: "application/json", body: []byte(`["session_a", "sess`)},
			`the JSON answer does not parse: unexpected end of JSON input at byte 19`},
		{"an HTML page", answer{ctype: "text/html; charset=utf-8", body: []byte("<html>Sign in</html>")},
			`Content-Type "text/html; charset=utf-8" is neither application/json (a JSON array of session IDs) nor text/plain (one session ID a line, as in a sessions_file)`},
		{"HTTP 503", answer{status: http.StatusServiceUnavailable, ctype: "application/json", body: []byte(`["session_c"]`)},
			`HTTP 503 Service Unavailable: want 200 and the list of session IDs`},
		{"HTTP 204", answer{status: http.StatusNoContent},
			`HTTP 204 No Content: want 200 and the list of session IDs`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t)
			a.json(`["session_a", "session_b"]`)
			s, logs := newSource(t, a, Options{})
			mustRefresh(t, s)
			_, v := s.Sessions()
			before := s.Status()

			a.set(tc.ans)
			err := refresh(t, s)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error %v\nwant %s", err, tc.want)
			}
			ids, v2 := s.Sessions()
			if diff := cmp.Diff(good, ids); diff != "" || v2 != v {
				t.Errorf("a bad answer changed the list (version %d → %d) (-want +got):\n%s", v, v2, diff)
			}
			st := s.Status()
			if st.Up() || st.LastError != tc.want || st.Sessions != 2 || !st.LastSuccess.Equal(before.LastSuccess) {
				t.Errorf("status %+v, want down with the error, the last success and the 2 sessions kept", st)
			}
			if !strings.Contains(logs.String(), "level=warn") || !strings.Contains(logs.String(), "sessions_kept=2") {
				t.Errorf("no warning that says the list is kept:\n%s", logs)
			}
		})
	}
}

// TestAHangingServerTimesOut: the fetch gives up at its timeout, whether
// the server sends nothing or stops halfway through the answer.
func TestAHangingServerTimesOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		ans  answer
		o    Options
		want string
	}{
		{"no answer", answer{hang: true}, Options{Timeout: 100 * time.Millisecond},
			"GET: no complete answer within 100ms, the fetch's timeout"},
		{"half an answer", answer{ctype: "text/plain", body: []byte("session_c\nsession_d\n"), hangBody: true}, Options{Timeout: 100 * time.Millisecond},
			"reading the answer: no complete answer within 100ms, the fetch's timeout"},
		{"the refresh interval is shorter than the timeout", answer{hang: true}, Options{RefreshInterval: 150 * time.Millisecond, Timeout: time.Minute},
			"GET: no complete answer within 150ms, the fetch's timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t)
			a.json(`["session_a"]`)
			s, _ := newSource(t, a, tc.o)
			mustRefresh(t, s)
			a.set(tc.ans)
			start := time.Now()
			err := refresh(t, s)
			if took := time.Since(start); err == nil || err.Error() != tc.want || took > 10*time.Second {
				t.Fatalf("after %v: error %v, want %q", took, err, tc.want)
			}
			if diff := cmp.Diff([]string{"session_a"}, sessions(s)); diff != "" {
				t.Errorf("a timeout changed the list (-want +got):\n%s", diff)
			}
		})
	}
}

// TestATenMegabyteAnswerIsRefused: more than MaxAnswerBytes is refused,
// whether the answer says its length or not, and the last list stays.
func TestATenMegabyteAnswerIsRefused(t *testing.T) {
	big := bytes.Repeat([]byte("session_0123456789abcdef\n"), 10<<20/25) // 10 MB of valid IDs
	for _, tc := range []struct {
		name             string
		chunked, endless bool
		want             string
	}{
		{"with a Content-Length", false, false, "the answer is 10485750 bytes, more than 4 MiB, the most read from sessions_url"},
		{"chunked", true, false, "the answer is larger than 4 MiB, the most read from sessions_url"},
		// Read up to the cap only: an endless answer is refused there, not
		// at the timeout.
		{"endless", false, true, "the answer is larger than 4 MiB, the most read from sessions_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t)
			a.json(`["session_a"]`)
			s, _ := newSource(t, a, Options{})
			mustRefresh(t, s)
			a.set(answer{ctype: "text/plain", body: big, chunked: tc.chunked, endless: tc.endless})
			if err := refresh(t, s); err == nil || err.Error() != tc.want {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if diff := cmp.Diff([]string{"session_a"}, sessions(s)); diff != "" {
				t.Errorf("the refused answer changed the list (-want +got):\n%s", diff)
			}
			if st := s.Status(); st.Up() || st.LastError != tc.want {
				t.Errorf("status %+v, want the error", st)
			}
		})
	}

	// Just within the cap is read.
	a := newAgent(t)
	a.set(answer{ctype: "text/plain", body: big[:maxAnswerBytes-maxAnswerBytes%25]})
	s, _ := newSource(t, a, Options{})
	mustRefresh(t, s)
	if got := sessions(s); len(got) != 1 {
		t.Errorf("an answer within the cap gave %d sessions, want 1", len(got))
	}
}

// TestCredentialsAreSentAndNeverShown: basic auth and a bearer token file
// reach the server as Prometheus sends them; when the server refuses them,
// neither the error, the status nor the log shows them.
func TestCredentialsAreSentAndNeverShown(t *testing.T) {
	const password, token = "basic-auth-password-0123", "bearer-token-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	basic := promconfig.DefaultHTTPClientConfig
	basic.BasicAuth = &promconfig.BasicAuth{Username: "exporter", Password: password}
	bearer := promconfig.DefaultHTTPClientConfig
	bearer.Authorization = &promconfig.Authorization{Type: "Bearer", CredentialsFile: tokenFile}
	for _, tc := range []struct {
		name string
		http promconfig.HTTPClientConfig
		want string // the Authorization header
	}{
		{"basic_auth", basic, "Basic ZXhwb3J0ZXI6YmFzaWMtYXV0aC1wYXNzd29yZC0wMTIz"},
		{"bearer_token_file", bearer, "Bearer " + token},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAgent(t)
			a.json(`["session_a"]`)
			s, logs := newSource(t, a, Options{HTTP: tc.http, UserAgent: "aily_exporter/test"})
			mustRefresh(t, s)
			h := a.lastRequest()
			if got := h.Get("Authorization"); got != tc.want {
				t.Errorf("Authorization: %q, want %q", got, tc.want)
			}
			if got := h.Get("User-Agent"); got != "aily_exporter/test" {
				t.Errorf("User-Agent: %q", got)
			}

			a.set(answer{status: http.StatusUnauthorized, ctype: "text/plain", body: []byte("bad credentials")})
			err := refresh(t, s)
			if err == nil || !strings.Contains(err.Error(), "401") {
				t.Fatalf("error %v, want the 401", err)
			}
			for what, text := range map[string]string{"the error": err.Error(), "the status": s.Status().LastError + s.Status().URL, "the log": logs.String()} {
				if strings.Contains(text, password) || strings.Contains(text, token) || strings.Contains(text, "ZXhwb3J0ZX") {
					t.Errorf("%s shows the credentials: %s", what, text)
				}
			}
		})
	}
}

// TestAFailureWarnsOncePerError: the same failure over and over is one
// warning (the rest at debug); a different error warns again; so does the
// first failure after a recovery, which is logged too.
func TestAFailureWarnsOncePerError(t *testing.T) {
	a := newAgent(t)
	a.json(`["session_a"]`)
	s, logs := newSource(t, a, Options{})
	mustRefresh(t, s)
	warnings := func() int { return strings.Count(logs.String(), "level=warn") }

	a.set(answer{status: http.StatusBadGateway})
	for range 3 {
		_ = refresh(t, s)
	}
	if n := warnings(); n != 1 {
		t.Errorf("three fetches failing alike: %d warnings, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs.String(), "level=debug"); n != 2 {
		t.Errorf("three fetches failing alike: %d debug lines, want 2:\n%s", n, logs)
	}
	a.set(answer{status: http.StatusNotFound})
	_ = refresh(t, s)
	_ = refresh(t, s)
	if n := warnings(); n != 2 {
		t.Errorf("after the error changed: %d warnings, want 2:\n%s", n, logs)
	}
	a.json(`["session_a"]`)
	mustRefresh(t, s)
	if !strings.Contains(logs.String(), `msg="Fetching sessions_url works again"`) {
		t.Errorf("the recovery is not logged:\n%s", logs)
	}
	a.set(answer{status: http.StatusNotFound})
	_ = refresh(t, s)
	if n := warnings(); n != 3 {
		t.Errorf("failing again after a recovery: %d warnings, want 3:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `url="`+a.srv.URL+`/aily/sessions?app=helpdesk"`) {
		t.Errorf("the log does not name the URL as configured:\n%s", logs)
	}
}

// TestTheVersionFollowsTheList: the version changes when the set of IDs
// does, not at every fetch nor when only their order changes; the change is
// logged with what was added and removed.
func TestTheVersionFollowsTheList(t *testing.T) {
	a := newAgent(t)
	s, logs := newSource(t, a, Options{})
	if ids, v := s.Sessions(); len(ids) != 0 || v != 0 {
		t.Fatalf("before any fetch: %v, version %d", ids, v)
	}
	steps := []struct {
		body        string
		want        []string
		wantVersion uint64
	}{
		{`["s1", "s2"]`, []string{"s1", "s2"}, 1},
		{`["s1", "s2"]`, []string{"s1", "s2"}, 1},
		{`["s2", "s1"]`, []string{"s1", "s2"}, 1},
		{`["s2", "s3", "s4"]`, []string{"s2", "s3", "s4"}, 2},
		{`[]`, nil, 3},
	}
	for i, st := range steps {
		a.json(st.body)
		mustRefresh(t, s)
		ids, v := s.Sessions()
		if diff := cmp.Diff(st.want, ids, cmpopts.EquateEmpty()); diff != "" || v != st.wantVersion {
			t.Errorf("step %d (%s): version %d, want %d; sessions (-want +got):\n%s", i, st.body, v, st.wantVersion, diff)
		}
	}
	for _, want := range []string{"sessions=2 added=2 removed=0", "sessions=3 added=2 removed=1", "sessions=0 added=0 removed=3"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs.String(), "Sessions from sessions_url changed"); n != 3 {
		t.Errorf("%d changes logged, want 3:\n%s", n, logs)
	}
}

// TestRunFetchesEveryIntervalUntilCanceled: Run fetches at its interval,
// not at once, and returns when its context ends.
func TestRunFetchesEveryIntervalUntilCanceled(t *testing.T) {
	a := newAgent(t)
	a.json(`["s1"]`)
	s, _ := newSource(t, a, Options{RefreshInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx)
		close(done)
	}()
	deadline := time.After(time.Minute)
	for i := range 3 {
		select {
		case <-a.got:
		case <-deadline:
			t.Fatalf("Run fetched %d times in a minute, want 3 at a 20ms interval", i)
		}
	}
	if diff := cmp.Diff([]string{"s1"}, sessions(s)); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run does not return when its context ends")
	}
}

func TestNewRefusesWhatCannotBeFetched(t *testing.T) {
	missingCA := promconfig.DefaultHTTPClientConfig
	missingCA.TLSConfig.CAFile = filepath.Join(t.TempDir(), "missing-ca.pem")
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"a password in the URL", Options{URL: "https://u:hunter2@agent.example.com/s", HTTP: promconfig.DefaultHTTPClientConfig},
			"sessions_url https://u:xxxxx@agent.example.com/s must not hold user info"},
		{"a relative URL", Options{URL: "/sessions"}, "sessions_url must be an absolute http(s) URL"},
		{"a CA file that is not there", Options{URL: "https://agent.example.com/s", HTTP: missingCA}, "sessions_http_config: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
