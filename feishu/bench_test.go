package feishu_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// benchRuns and benchPageSize shape the listing BenchmarkListRunsHTTP reads:
// a busy session read in full, a hundred runs a page.
const (
	benchRuns     = 10_000
	benchPageSize = 100
)

// BenchmarkListRunsHTTP lists a session of benchRuns runs over real HTTP
// (loopback) and reports the cost per run fetched:
//   - "fake" serves the pages from feishufake, so the figures include the
//     fake computing and encoding each page in the same process;
//   - "static" serves the same pages as precomputed bodies, so the figures
//     are the client's own cost (HTTP round trip included).
func BenchmarkListRunsHTTP(b *testing.B) {
	fake := feishufake.New(feishufake.Options{})
	fake.AddApp(testAppID, testAppSecret)
	fake.AddSession(testSession)
	for i := range benchRuns {
		st := feishu.KnownStatuses()[i%len(feishu.KnownStatuses())]
		fake.PutRun(makeRun(testSession, fmt.Sprintf("run_%010d", i), epoch.Add(time.Duration(i)*time.Second), st))
	}

	b.Run("fake", func(b *testing.B) {
		benchListing(b, fake)
	})
	b.Run("static", func(b *testing.B) {
		benchListing(b, newStaticPages(b, fake))
	})
}

func benchListing(b *testing.B, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := feishu.NewClient(feishu.Config{
		BaseURL: srv.URL, AppID: testAppID, AppSecret: testAppSecret, PageSize: benchPageSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	list := func() int {
		n := 0
		err := c.EachRunPage(ctx, testSession, func(page []feishu.Run) error {
			n += len(page)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	if n := list(); n != benchRuns { // also gets the token
		b.Fatalf("listed %d runs, want %d", n, benchRuns)
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		list()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	runs := float64(b.N) * benchRuns
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/runs, "ns/run")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/runs, "B/run")
}

// staticPages serves a listing captured from a fake as fixed bodies, keyed
// by page token, and a fixed tenant token: a server that costs next to
// nothing, so that a benchmark measures the client.
type staticPages struct {
	mu    sync.Mutex
	pages map[string][]byte // page_token ("" for the first) → body
}

func newStaticPages(b *testing.B, fake *feishufake.Fake) *staticPages {
	b.Helper()
	s := &staticPages{pages: map[string][]byte{}}
	fake.AddUserToken("u-bench")
	token := ""
	for {
		path := feishufake.ListRunsPath(testSession) + fmt.Sprintf("?page_size=%d", benchPageSize)
		if token != "" {
			path += "&page_token=" + token
		}
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer u-bench")
		rec := httptest.NewRecorder()
		fake.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("capture page %q: HTTP %d: %s", token, rec.Code, rec.Body)
		}
		body := rec.Body.Bytes()
		s.pages[token] = body
		next, ok := pageTokenOf(body)
		if !ok {
			return s
		}
		token = next
	}
}

// pageTokenOf finds a body's page_token without decoding it with the code
// under test.
func pageTokenOf(body []byte) (string, bool) {
	_, rest, ok := strings.Cut(string(body), `"page_token":"`)
	if !ok {
		return "", false
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok, true
}

func (s *staticPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if r.URL.Path == feishufake.TokenPath {
		_, _ = w.Write([]byte(`{"code":0,"msg":"ok","tenant_access_token":"t-bench","expire":7200}`))
		return
	}
	s.mu.Lock()
	body, ok := s.pages[r.URL.Query().Get("page_token")]
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"code":2700001,"msg":"param is invalid"}`))
		return
	}
	_, _ = w.Write(body)
}
