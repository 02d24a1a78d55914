package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/version"
)

// logfmtPair is one key=value of a logfmt line.
type logfmtPair struct{ key, value string }

// parseLogfmt splits a logfmt line into its pairs, in order, keeping
// duplicated keys; quoted values are unquoted.
func parseLogfmt(t *testing.T, line string) []logfmtPair {
	t.Helper()
	var out []logfmtPair
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], ` "`) {
			t.Fatalf("not logfmt: %q", line)
		}
		key := s[:eq]
		s = s[eq+1:]
		var value string
		if strings.HasPrefix(s, `"`) {
			end := 1
			for ; end < len(s) && s[end] != '"'; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				t.Fatalf("unterminated quote: %q", line)
			}
			var err error
			if value, err = unquote(s[:end+1]); err != nil {
				t.Fatalf("bad quoting in %q: %v", line, err)
			}
			s = s[end+1:]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			value, s = s[:end], s[end:]
		}
		out = append(out, logfmtPair{key, value})
	}
	return out
}

func unquote(q string) (string, error) {
	var s string
	_, err := fmt.Sscanf(q, "%q", &s)
	return s, err
}

// logLine is a parsed logfmt line whose keys are each present once.
type logLine map[string]string

// logLines parses every line of logs that contains substr, failing the test
// on a line that is not logfmt or that repeats a key.
func logLines(t *testing.T, logs, substr string) []logLine {
	t.Helper()
	var out []logLine
	for _, line := range strings.Split(logs, "\n") {
		if line == "" || !strings.Contains(line, substr) {
			continue
		}
		l := logLine{}
		for _, p := range parseLogfmt(t, line) {
			if _, dup := l[p.key]; dup {
				t.Errorf("key %q twice in %q", p.key, line)
			}
			l[p.key] = p.value
		}
		out = append(out, l)
	}
	return out
}

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
			h := e.exporter.routes(routeOptions{telemetryPath: "/metrics"})
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
			lines := logLines(t, e.logs.String(), msg[strings.LastIndex(msg, ": ")+2:])
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
	lines := logLines(t, e.logs.String(), "collector went wrong")
	if len(lines) != 1 {
		t.Fatalf("%d lines log the gather error, want 1:\n%s", len(lines), e.logs.String())
	}
	l := lines[0]
	if l["level"] != "error" || l["msg"] != "Error gathering metrics" || !strings.HasSuffix(l["err"], "collector went wrong: at 12:00: badly") {
		t.Errorf("got %v, want level=error msg=\"Error gathering metrics\" err=\"…collector went wrong: at 12:00: badly\"", l)
	}
}

// jsonLines decodes every line of logs that contains substr as a JSON
// object, failing the test on a line that is not one.
func jsonLines(t *testing.T, logs, substr string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		if line == "" || !strings.Contains(line, substr) {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestServerErrorsGoThroughTheLogger(t *testing.T) {
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			logs := &syncBuffer{}
			logger, _ := newLogger(logs, "info", format)
			srv := httptest.NewUnstartedServer(nil)
			srv.Config = newHTTPServer(http.NotFoundHandler(), logger)
			srv.StartTLS()

			// Plain HTTP to the TLS port: the handshake fails.
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprint(conn, "GET / HTTP/1.0\r\n\r\n")
			_, _ = io.ReadAll(conn)
			conn.Close()
			srv.Close() // waits for the connection's goroutine, which logs

			out := logs.String()
			if !strings.Contains(out, "TLS handshake error") {
				t.Fatalf("no TLS handshake error logged:\n%s", out)
			}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				if format == "json" && !strings.HasPrefix(line, "{") || format == "logfmt" && !strings.HasPrefix(line, "level=") {
					t.Errorf("not a %s line: %q", format, line)
				}
			}
			var got map[string]string
			if format == "json" {
				lines := jsonLines(t, out, "TLS handshake error")
				if len(lines) != 1 {
					t.Fatalf("%d lines log the TLS handshake error, want 1:\n%s", len(lines), out)
				}
				got = map[string]string{}
				for k, v := range lines[0] {
					got[k] = fmt.Sprint(v)
				}
			} else {
				lines := logLines(t, out, "TLS handshake error")
				if len(lines) != 1 {
					t.Fatalf("%d lines log the TLS handshake error, want 1:\n%s", len(lines), out)
				}
				got = lines[0]
			}
			if got["level"] != "error" || got["msg"] != "TLS handshake error" ||
				!strings.HasPrefix(got["remote"], "127.0.0.1:") || !strings.Contains(got["err"], "HTTP request to an HTTPS server") {
				t.Errorf(`got %v, want level=error msg="TLS handshake error" remote=127.0.0.1:N err="…HTTP request to an HTTPS server"`, got)
			}
		})
	}
}

func TestServerErrorLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want map[string]string
	}{
		{"http: TLS handshake error from 10.0.0.7:51234: remote error: tls: bad certificate\n",
			map[string]string{"msg": "TLS handshake error", "remote": "10.0.0.7:51234", "err": "remote error: tls: bad certificate"}},
		{"http: TLS handshake error from [::1]:51234: EOF\n",
			map[string]string{"msg": "TLS handshake error", "remote": "[::1]:51234", "err": "EOF"}},
		{"http: Accept error: accept tcp [::]:9851: accept4: too many open files; retrying in 5ms\n",
			map[string]string{"msg": "HTTP server error", "err": "Accept error: accept tcp [::]:9851: accept4: too many open files; retrying in 5ms"}},
		{"http2: server: error reading preface from client 10.0.0.7:1234: timeout\n",
			map[string]string{"msg": "HTTP server error", "err": "http2: server: error reading preface from client 10.0.0.7:1234: timeout"}},
	} {
		logs := &syncBuffer{}
		logger, _ := newLogger(logs, "info", "logfmt")
		srv := newHTTPServer(http.NotFoundHandler(), logger)
		if srv.ErrorLog == nil {
			t.Fatal("the server's ErrorLog is not set")
		}
		srv.ErrorLog.Print(tc.line)
		lines := logLines(t, logs.String(), "")
		if len(lines) != 1 {
			t.Fatalf("%q logged as %d lines, want 1:\n%s", tc.line, len(lines), logs.String())
		}
		got := lines[0]
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%q: %s=%q, want %q", tc.line, k, got[k], v)
			}
		}
		if got["level"] != "error" {
			t.Errorf("%q: level=%q, want error", tc.line, got["level"])
		}
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.exporter.runReloader(ctx, nil)
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

func TestIdleConnectionsAreClosed(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler(), nil)
	if srv.IdleTimeout <= 0 || srv.IdleTimeout > 5*time.Minute {
		t.Errorf("IdleTimeout %v, want a few minutes at most", srv.IdleTimeout)
	}
	if srv.ReadHeaderTimeout <= 0 {
		t.Errorf("ReadHeaderTimeout %v, want one", srv.ReadHeaderTimeout)
	}
}

func TestDemoSaysAnExplicitConfigFileIsIgnored(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--demo", "--config.file", "/etc/aily/aily.yml"}, true},
		{[]string{"--demo"}, false},
	} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse(append(tc.args, "--web.listen-address", "127.0.0.1:0")); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var stdout, stderr syncBuffer
		if code := run(ctx, f, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d, want 0; logs:\n%s", tc.args, code, stderr.String())
		}
		lines := logLines(t, stderr.String(), "ignored")
		if !tc.want {
			if len(lines) != 0 {
				t.Errorf("%v: %v, want nothing said of --config.file", tc.args, lines)
			}
			continue
		}
		if len(lines) != 1 || lines[0]["file"] != "/etc/aily/aily.yml" || lines[0]["level"] != "warn" {
			t.Errorf("%v: want one level=warn line saying /etc/aily/aily.yml is ignored:\n%s", tc.args, stderr.String())
		}
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	saved := []string{version.Version, version.Revision, version.BuildDate}
	t.Cleanup(func() { version.Version, version.Revision, version.BuildDate = saved[0], saved[1], saved[2] })
	info := func(v string, settings ...string) *debug.BuildInfo {
		b := &debug.BuildInfo{Main: debug.Module{Path: "github.com/aily-exporter/aily_exporter", Version: v}}
		for i := 0; i+1 < len(settings); i += 2 {
			b.Settings = append(b.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		stamped [3]string // by -ldflags -X: version, revision, date
		info    *debug.BuildInfo
		want    [3]string
	}{
		{"go build in a clone: the module's pseudo-version and the commit",
			[3]string{}, info("v0.0.0-20261127101500-0123456789ab+dirty", "vcs.revision", "0123456789abcdef", "vcs.time", "2026-11-27T10:15:00Z", "vcs.modified", "true"),
			[3]string{"v0.0.0-20261127101500-0123456789ab+dirty", "0123456789abcdef-modified", "2026-11-27T10:15:00Z"}},
		{"go install of a tag",
			[3]string{}, info("v1.2.0"),
			[3]string{"v1.2.0", "", ""}},
		{"go run: no VCS stamping",
			[3]string{}, info("(devel)"),
			[3]string{"(devel)", "", ""}},
		{"make build: the stamped values win",
			[3]string{"1.2.0", "fedcba", "20261127-10:15:00"}, info("v1.2.0", "vcs.revision", "0123456789abcdef", "vcs.time", "2026-11-27T10:15:00Z"),
			[3]string{"1.2.0", "fedcba", "20261127-10:15:00"}},
	} {
		version.Version, version.Revision, version.BuildDate = tc.stamped[0], tc.stamped[1], tc.stamped[2]
		stampVersion(tc.info)
		if got := [3]string{version.Version, version.Revision, version.BuildDate}; got != tc.want {
			t.Errorf("%s: version, revision, date = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestDemoOnAllInterfacesIsReachedOverLoopback(t *testing.T) {
	for _, tc := range []struct{ address, host string }{
		{"0.0.0.0:0", "127.0.0.1"},
		{":0", "127.0.0.1"},
		{"127.0.0.1:0", "127.0.0.1"},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		logs := &syncBuffer{}
		logger, _ := newLogger(logs, "info", "logfmt")
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse([]string{"--demo", "--demo.api-address", tc.address}); err != nil {
			t.Fatal(err)
		}
		d, err := startDemo(ctx, f, logger)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(d.baseURL)
		if err != nil {
			t.Fatal(err)
		}
		if u.Hostname() != tc.host {
			t.Errorf("--demo.api-address=%s: the exporter calls %s, want host %s", tc.address, d.baseURL, tc.host)
		}
		if !strings.Contains(logs.String(), "curl -X POST http://"+tc.host+":") {
			t.Errorf("--demo.api-address=%s: the burst command does not name %s:\n%s", tc.address, tc.host, logs.String())
		}
		resp, err := http.Post(d.baseURL+"/simulator/burst", "", nil)
		if err != nil {
			t.Errorf("--demo.api-address=%s: %v", tc.address, err)
		} else {
			resp.Body.Close()
		}
		cancel()
	}
}

// TestDockerfileBuildsWithThePinnedGo keeps the image, the Makefile and
// go.mod on one Go release.
func TestDockerfileBuildsWithThePinnedGo(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	find := func(name, pattern string) string {
		m := regexp.MustCompile(pattern).FindStringSubmatch(read(name))
		if m == nil {
			t.Fatalf("%s: no match for %s", name, pattern)
		}
		return m[1]
	}
	mod := find("go.mod", `(?m)^toolchain (go[0-9.]+)$`)
	mk := find("Makefile", `(?m)^GO_VERSION\s*:=\s*(go[0-9.]+)\s*$`)
	img := "go" + find("Dockerfile", `(?m)^FROM golang:([0-9.]+)\S* AS build$`)
	if mod != mk || img != mk {
		t.Errorf("go.mod's toolchain %s, the Makefile's GO_VERSION %s and the Dockerfile's golang:%s differ", mod, mk, strings.TrimPrefix(img, "go"))
	}
	// The configuration is a directory in the image, so that a directory
	// can be mounted over it.
	if cmd := find("Dockerfile", `(?m)^CMD \["--config.file=([^"]+)"`); filepath.Dir(cmd) != "/etc/aily_exporter" {
		t.Errorf("the image's default configuration %s is not in /etc/aily_exporter", cmd)
	}
	// The state is kept in a volume the non-root user can write.
	state := find("Dockerfile", `(?m)^CMD \[.*"--storage.path=([^"]+)"`)
	if vol := find("Dockerfile", `(?m)^VOLUME (\S+)$`); vol != state {
		t.Errorf("the image keeps its state in %s but declares the volume %s", state, vol)
	}
	if !strings.Contains(read("Dockerfile"), "--chown=65532:65532 "+state) {
		t.Errorf("the state directory %s is not owned by the nonroot user 65532 in the image", state)
	}
}
