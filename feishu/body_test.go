package feishu

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
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

func TestSleepContext(t *testing.T) {
	if err := Sleep(context.Background(), 0); err != nil {
		t.Errorf("sleep 0: %v", err)
	}
	if err := Sleep(context.Background(), time.Nanosecond); err != nil {
		t.Errorf("sleep 1ns: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleep on a cancelled context = %v, want context.Canceled", err)
	}
}

func TestSecretNeverShowsItsValue(t *testing.T) {
	s := Secret("hunter2")
	for _, got := range []string{s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintf("%x %d %q %#v", s, s, s, s)} {
		if strings.Contains(got, "hunter2") || strings.Contains(got, hex.EncodeToString([]byte("hunter2"))) {
			t.Errorf("%q shows the secret", got)
		}
	}
	c, err := NewClient(Config{UserAccessTokenFile: "/run/secrets/token"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c); got != "feishu.Client{base_url: https://open.feishu.cn, credentials: user access token from file /run/secrets/token}" {
		t.Errorf("client prints as %q", got)
	}
	if got := fmt.Sprint((*Client)(nil)); got != "feishu.Client(nil)" {
		t.Errorf("nil client prints as %q", got)
	}
}

func TestStatusLists(t *testing.T) {
	final := 0
	for _, s := range KnownStatuses() {
		if s.Final() {
			final++
		}
	}
	if final != len(FinalStatuses()) {
		t.Errorf("%d known statuses are final, FinalStatuses has %d", final, len(FinalStatuses()))
	}
	for _, s := range FinalStatuses() {
		if !s.Final() {
			t.Errorf("%s in FinalStatuses is not Final", s)
		}
	}
	if RunStatus("SOMETHING_NEW").Final() {
		t.Error("an unknown status is final")
	}
}
