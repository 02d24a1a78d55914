package fakeapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// captureToken is the user access token CapturePages reads the fake with.
const captureToken = "u-capture"

// StaticPages serves a listing captured from a fake as fixed bodies, keyed
// by page token, and a fixed tenant token: a server that costs next to
// nothing, so that a benchmark measures the client (and what calls it).
type StaticPages struct {
	mu    sync.Mutex
	pages map[string][]byte // page_token ("" for the first) → body
}

// CapturePages reads every page of session from f, pageSize runs a page,
// and returns them to serve. The fake counts the requests.
func CapturePages(tb testing.TB, f *feishufake.Fake, session string, pageSize int) *StaticPages {
	tb.Helper()
	f.AddUserToken(captureToken)
	s := &StaticPages{pages: map[string][]byte{}}
	token := ""
	for {
		path := feishufake.ListRunsPath(session) + fmt.Sprintf("?page_size=%d", pageSize)
		if token != "" {
			path += "&page_token=" + token
		}
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+captureToken)
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			tb.Fatalf("capture page %q: HTTP %d: %s", token, rec.Code, rec.Body)
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

func (s *StaticPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
