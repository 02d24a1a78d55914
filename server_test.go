package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/alecthomas/kingpin/v2"
)

func TestServerErrorsGoThroughTheLogger(t *testing.T) {
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			logs := &testkit.LogBuffer{}
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
				lines := testkit.JSONLines(t, out, "TLS handshake error")
				if len(lines) != 1 {
					t.Fatalf("%d lines log the TLS handshake error, want 1:\n%s", len(lines), out)
				}
				got = map[string]string{}
				for k, v := range lines[0] {
					got[k] = fmt.Sprint(v)
				}
			} else {
				lines := testkit.LogLines(t, out, "TLS handshake error")
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
		logs := &testkit.LogBuffer{}
		logger, _ := newLogger(logs, "info", "logfmt")
		srv := newHTTPServer(http.NotFoundHandler(), logger)
		if srv.ErrorLog == nil {
			t.Fatal("the server's ErrorLog is not set")
		}
		srv.ErrorLog.Print(tc.line)
		lines := testkit.LogLines(t, logs.String(), "")
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
		var stdout, stderr testkit.LogBuffer
		if code := run(ctx, f, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d, want 0; logs:\n%s", tc.args, code, stderr.String())
		}
		lines := testkit.LogLines(t, stderr.String(), "ignored")
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
