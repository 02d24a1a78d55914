package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/aily-exporter/aily_exporter/config"
)

// manySessions returns a sessions file of n sessions. With the two sessions
// configYAML lists in the file itself, manySessions(config.ManySessions-1)
// gives helpdesk one session too many.
func manySessions(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "session_%06d\n", i)
	}
	return b.String()
}

// sizeWarning matches the warning of an app with more than
// config.ManySessions sessions and per_session: true.
var sizeWarning = regexp.MustCompile(`level=warn [^\n]*helpdesk[^\n]*10001 sessions with per_session: true[^\n]*set per_session: false, or shard`)

func TestManySessionsWarnAtStart(t *testing.T) {
	e := newTestEnv(t) // for its files; run loads them itself
	e.write("helpdesk.sessions", manySessions(config.ManySessions-1))
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse([]string{"--config.file", filepath.Join(e.dir, "aily.yml"), "--storage.path", "",
		"--web.listen-address", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, then stop at once
	var stdout, stderr syncBuffer
	if code := run(ctx, f, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; logs:\n%s", code, stderr.String())
	}
	if !sizeWarning.MatchString(stderr.String()) {
		t.Errorf("no warning at start about 10,001 sessions with per_session: true:\n%s", stderr.String())
	}
}

func TestManySessionsWarnAtReloadAndConfigCheck(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.exporter.runReloader(ctx, nil)
	if sizeWarning.MatchString(e.logs.String()) {
		t.Fatalf("a warning before the app has 10,001 sessions:\n%s", e.logs.String())
	}

	e.write("helpdesk.sessions", manySessions(config.ManySessions-1))
	if code, body := e.do(http.MethodPost, "/-/reload", nil, time.Minute); code != http.StatusOK {
		t.Fatalf("POST /-/reload: HTTP %d %q, want 200", code, body)
	}
	if err := <-e.reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !sizeWarning.MatchString(e.logs.String()) {
		t.Errorf("no warning at the reload about 10,001 sessions with per_session: true:\n%s", e.logs.String())
	}

	var stdout, stderr bytes.Buffer
	code := checkConfig(filepath.Join(e.dir, "aily.yml"), "", clientOptions{timeout: time.Second}, &stdout, &stderr)
	if code != 0 || stdout.String() != "config OK\n" ||
		!strings.Contains(stderr.String(), `warning: app "helpdesk" (line 2): 10001 sessions with per_session: true`) {
		t.Errorf("--config.check: exit %d, stdout %q, stderr %q; want 0, config OK and the warning", code, stdout.String(), stderr.String())
	}

	// per_session: false: no warning.
	e.write("aily.yml", strings.Replace(configYAML(e.api.URL, "session_ok"), "sessions_file: helpdesk.sessions",
		"sessions_file: helpdesk.sessions\n    per_session: false", 1))
	stderr.Reset()
	stdout.Reset()
	if code := checkConfig(filepath.Join(e.dir, "aily.yml"), "", clientOptions{timeout: time.Second}, &stdout, &stderr); code != 0 ||
		strings.Contains(stderr.String(), "warning") {
		t.Errorf("--config.check with per_session: false: exit %d, stderr %q; want 0 and no warning", code, stderr.String())
	}
}

func TestManySessionsWarnWhenTheSessionsFileGrows(t *testing.T) {
	e := newTestEnv(t)
	e.write("helpdesk.sessions", manySessions(config.ManySessions-1))
	e.exporter.refreshSessions() // as the next scrape does
	if !sizeWarning.MatchString(e.logs.String()) {
		t.Errorf("no warning when the sessions file takes the app to 10,001 sessions:\n%s", e.logs.String())
	}
}
