package feishu

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestOversizedBodyIsAnError(t *testing.T) {
	const limit = 1 << 10
	big := `{"code":0,"msg":"` + strings.Repeat("x", 2*limit) + `"}`
	for _, tc := range []struct {
		name          string
		contentLength bool
	}{
		{"declared by Content-Length", true},
		{"found while reading a chunked body", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/internal") {
					_, _ = w.Write([]byte(`{"code":0,"tenant_access_token":"t-x","expire":7200}`))
					return
				}
				if tc.contentLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				} else {
					w.(http.Flusher).Flush() // no Content-Length from here on
				}
				_, _ = w.Write([]byte(big))
			}))
			defer srv.Close()
			c, err := NewClient(Config{BaseURL: srv.URL, AppID: "cli_x", AppSecret: "s"})
			if err != nil {
				t.Fatal(err)
			}
			c.maxBody = limit
			_, err = c.ListRuns(context.Background(), "session_x")
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusOK || !strings.Contains(apiErr.Msg, "larger than 1024 bytes") {
				t.Fatalf("err = %v, want a body too large error", err)
			}
		})
	}
}
