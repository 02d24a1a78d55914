package watch

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
)

// failingAPI fails every call in a way chosen per session: an API error, a
// wait for the caller's deadline, or an error without a message.
type failingAPI struct{ memAPI }

func (f *failingAPI) ListRunsPage(ctx context.Context, session, token string) (feishu.RunsPage, error) {
	switch session {
	case "api-error":
		return feishu.RunsPage{}, &feishu.APIError{Endpoint: feishu.EndpointListRuns, HTTPStatus: 400, Code: 99991672, Msg: "Access denied"}
	case "deadline":
		<-ctx.Done()
		return feishu.RunsPage{}, ctx.Err()
	case "bare":
		return feishu.RunsPage{}, errors.New("")
	}
	return f.memAPI.ListRunsPage(ctx, session, token)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogLinesCarryNoFormattingErrors(t *testing.T) {
	logs := &syncBuffer{}
	api := &failingAPI{memAPI: *newMemAPI(newestFirst, 10)}
	clk := feishufake.NewClock(t0)
	w := NewRecorded(Options{Now: clk.Now, MinInterval: -1, IdleInterval: time.Second,
		Logger: log.NewLogfmtLogger(logs)}, &countRecorder{finished: map[string]int{}, created: map[string]int{}})
	w.SetApps([]App{
		{Name: "a", API: api, Sessions: []string{"api-error", "deadline", "bare", "fine"}},
		{Name: "b", API: nil, Sessions: []string{"no-client"}},
	})
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		w.Poll(ctx)
		cancel()
		clk.Advance(time.Duration(i+1) * time.Minute)
	}
	// The polls cut off by the deadline may end after Poll returns: the next
	// Poll waits for them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w.Poll(ctx)
	out := logs.String()
	if out == "" {
		t.Fatal("nothing logged: the test's failures did not happen")
	}
	for _, bad := range []string{"%!", "(MISSING)", "<nil>"} {
		if strings.Contains(out, bad) {
			t.Errorf("a log line carries %q:\n%s", bad, out)
		}
	}
}
