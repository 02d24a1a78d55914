package fakeapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Serve serves h (a feishufake.Fake, say) over real HTTP until the test
// ends, each request shown first to see unless it is nil (to log or count
// what the client asked), and returns the server.
func Serve(tb testing.TB, h http.Handler, see func(*http.Request)) *httptest.Server {
	tb.Helper()
	if see != nil {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			see(r)
			next.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}
