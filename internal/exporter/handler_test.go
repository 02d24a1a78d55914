package exporter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// failingWriter is a response writer whose connection is gone: every write
// fails with err.
type failingWriter struct {
	header http.Header
	err    error
	writes int
}

func (w *failingWriter) Header() http.Header { return w.header }
func (w *failingWriter) WriteHeader(int)     {}
func (w *failingWriter) Write([]byte) (int, error) {
	w.writes++
	return 0, w.err
}

// writeError is the error a write to a TCP connection returns.
func writeError(errno error) error {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9851}
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53412}
	return &net.OpError{Op: "write", Net: "tcp", Source: local, Addr: remote, Err: os.NewSyscallError("write", errno)}
}

func TestScrapeToAClientThatWentAway(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		encoding string // Accept-Encoding
		level    string // of the one line logged
	}{
		{"broken pipe is not an error", writeError(syscall.EPIPE), "", "debug"},
		{"broken pipe through gzip is not an error", writeError(syscall.EPIPE), "gzip", "debug"},
		{"connection reset is not an error", writeError(syscall.ECONNRESET), "", "debug"},
		{"a canceled request is not an error", fmt.Errorf("http2: stream closed: %w", context.Canceled), "", "debug"},
		{"another write error is an error", writeError(syscall.EIO), "", "error"},
		{"another write error through gzip is an error", writeError(syscall.EIO), "gzip", "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			h := e.exporter.Routes(RouteOptions{TelemetryPath: "/metrics"})
			req, err := http.NewRequest(http.MethodGet, "/metrics", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.encoding != "" {
				req.Header.Set("Accept-Encoding", tc.encoding)
			}
			w := &failingWriter{header: http.Header{}, err: tc.err}
			h.ServeHTTP(w, req)
			if w.writes == 0 {
				t.Fatal("nothing written")
			}

			msg := tc.err.Error()
			lines := testkit.LogLines(t, e.logs.String(), msg[strings.LastIndex(msg, ": ")+2:])
			if len(lines) != 1 {
				t.Fatalf("%d lines log the write error, want 1:\n%s", len(lines), e.logs.String())
			}
			l := lines[0]
			if l["level"] != tc.level {
				t.Errorf("level=%s, want %s: %v", l["level"], tc.level, l)
			}
			if l["err"] != tc.err.Error() {
				t.Errorf("err=%q, want %q", l["err"], tc.err.Error())
			}
			if strings.Contains(l["msg"], ":") || l["msg"] == "" {
				t.Errorf("msg=%q, want a message without the error", l["msg"])
			}
			if !strings.HasPrefix(l["caller"], "handler.go:") {
				t.Errorf("caller=%q, want handler.go:N", l["caller"])
			}
		})
	}
}

// failingGatherer is a registry whose Gather fails.
type failingGatherer struct{}

func (failingGatherer) Gather() ([]*dto.MetricFamily, error) {
	return nil, errors.New("collector went wrong: at 12:00: badly")
}

func TestGatherErrorLoggedOnceWithItsKeys(t *testing.T) {
	e := newTestEnv(t)
	h := &metricsHandler{exporter: e.exporter, persistent: prometheus.Gatherers{failingGatherer{}}, logger: e.exporter.logger}
	req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	lines := testkit.LogLines(t, e.logs.String(), "collector went wrong")
	if len(lines) != 1 {
		t.Fatalf("%d lines log the gather error, want 1:\n%s", len(lines), e.logs.String())
	}
	l := lines[0]
	if l["level"] != "error" || l["msg"] != "Error gathering metrics" || !strings.HasSuffix(l["err"], "collector went wrong: at 12:00: badly") {
		t.Errorf("got %v, want level=error msg=\"Error gathering metrics\" err=\"…collector went wrong: at 12:00: badly\"", l)
	}
}

func TestScrapeTimeoutHeaderOutOfRangeIsIgnored(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration // with no offset
	}{
		{"0.5", 500 * time.Millisecond},
		{"600", 10 * time.Minute},
		{"15", 15 * time.Second},
		{"0.001", defaultScrapeTimeout},
		{"0.49", defaultScrapeTimeout},
		{"600.5", defaultScrapeTimeout},
		{"1e9", defaultScrapeTimeout},
		{"1e10", defaultScrapeTimeout},
		{"inf", defaultScrapeTimeout},
		{"+Inf", defaultScrapeTimeout},
		{"Infinity", defaultScrapeTimeout},
		{"NaN", defaultScrapeTimeout},
		{"-5", defaultScrapeTimeout},
		{"-inf", defaultScrapeTimeout},
		{"0", defaultScrapeTimeout},
		{"0x10", defaultScrapeTimeout},
	} {
		h := http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {tc.header}}
		if got := scrapeTimeout(h, 0); got != tc.want {
			t.Errorf("scrapeTimeout(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestScrapeTimeoutHeaderCannotCutTheScrape(t *testing.T) {
	e := newTestEnv(t)
	for _, header := range []string{"inf", "Infinity", "1e10", "0.001", "NaN", "-1"} {
		code, body := e.do(http.MethodGet, "/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {header}}, time.Minute)
		if code != http.StatusOK {
			t.Fatalf("X-Prometheus-Scrape-Timeout-Seconds: %s: HTTP %d\n%s", header, code, body)
		}
		for _, s := range []string{"session_ok", "session_bad", "session_from_file"} {
			if !hasLine(body, sessionUp("helpdesk", s, 1)) {
				t.Errorf("X-Prometheus-Scrape-Timeout-Seconds: %s: %s is not up", header, s)
			}
		}
	}
}

func TestEveryResponseIsNosniff(t *testing.T) {
	e := newTestEnv(t)
	e.runReloader()
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/"},
		{http.MethodGet, "/metrics"},
		{http.MethodGet, "/-/healthy"},
		{http.MethodGet, "/-/ready"},
		{http.MethodGet, "/config"},
		{http.MethodPost, "/-/reload"},
		{http.MethodGet, "/-/reload"},
		{http.MethodGet, "/no/such/page"},
	} {
		req, err := http.NewRequest(tc.method, e.server.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (HTTP %d): X-Content-Type-Options %q, want nosniff", tc.method, tc.path, resp.StatusCode, got)
		}
	}
}

func TestScrapeTimeout(t *testing.T) {
	for _, tc := range []struct {
		header string
		offset time.Duration
		want   time.Duration
	}{
		{"", 500 * time.Millisecond, 9500 * time.Millisecond},
		{"10", 500 * time.Millisecond, 9500 * time.Millisecond},
		{"2.5", 0, 2500 * time.Millisecond},
		{"0.5", 500 * time.Millisecond, 500 * time.Millisecond}, // the offset would leave nothing
		{"garbage", time.Second, 9 * time.Second},
		{"-3", time.Second, 9 * time.Second},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
		}
		if got := scrapeTimeout(h, tc.offset); got != tc.want {
			t.Errorf("scrapeTimeout(%q, %v) = %v, want %v", tc.header, tc.offset, got, tc.want)
		}
	}
}
