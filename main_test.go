package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/exporter"
	"github.com/aily-exporter/aily_exporter/internal/histogram"
	"github.com/aily-exporter/aily_exporter/internal/sharding"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

func TestParseBuckets(t *testing.T) {
	got, err := parseBuckets("1, 2.5,5,3600")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{1, 2.5, 5, 3600}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for in, want := range map[string]string{
		"":        "at least one bucket",
		"1,x":     `"x" is not a number`,
		"1,,2":    `"" is not a number`,
		"5,2":     "buckets must be increasing, but 2 follows 5",
		"1,1":     "buckets must be increasing, but 1 follows 1",
		"-1,2":    "-1 is negative",
		"1,+Inf":  `"+Inf" is not a number`,
		"1,NaN,2": `"NaN" is not a number`,
	} {
		if _, err := parseBuckets(in); err == nil || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "--collector.duration-buckets") {
			t.Errorf("parseBuckets(%q) error %v, want one naming the flag and saying %q", in, err, want)
		}
	}
}

func TestFlagDefaults(t *testing.T) {
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse(nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, fl := range a.Model().Flags {
		got[fl.Name] = strings.Join(fl.Default, ",")
	}
	want := map[string]string{
		"config.file":                  "aily.yml",
		"config.check":                 "false",
		"demo":                         "false",
		"web.listen-address":           ":9851",
		"web.telemetry-path":           "/metrics",
		"web.disable-exporter-metrics": "false",
		"feishu.timeout":               "10s",
		"feishu.page-size":             "50",
		"feishu.concurrency":           "4",
		"feishu.rate-limit":            "20",
		"scrape.timeout-offset":        "500ms",
		"poll.min-interval":            "5s",
		"poll.idle-after":              "10m",
		"poll.idle-interval":           "5m",
		"poll.full-interval":           "6h",
		"collector.duration-buckets":   "1,2.5,5,10,20,30,60,120,300,600,1800,3600",
		"log.level":                    "info",
		"log.format":                   "logfmt",
		"demo.speed":                   "1",
		"demo.burst-interval":          "10m",
		"demo.api-address":             "127.0.0.1:0",
	}
	for name, def := range want {
		if g, ok := got[name]; !ok || g != def {
			t.Errorf("--%s default %q (defined %v), want %q", name, g, ok, def)
		}
	}
	for _, fl := range a.Model().Flags {
		if fl.Help == "" {
			t.Errorf("--%s has no help text", fl.Name)
		}
	}
	if f.scrapeTimeoutOffset != 500*time.Millisecond || f.feishuRateLimit != 20 || f.demoSpeed != 1 {
		t.Errorf("parsed defaults: %+v", f)
	}
	buckets, err := parseBuckets(f.durationBuckets)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(histogram.DefaultBuckets(), buckets); diff != "" {
		t.Errorf("default buckets differ from the collector's (-collector +flag):\n%s", diff)
	}
}

// TestRemovedFlagsAreRefused: a flag that is gone is an error at start, not
// a value silently taken (--scrape.min-interval used to win over
// --poll.min-interval); CHANGELOG.md says what replaces it.
func TestRemovedFlagsAreRefused(t *testing.T) {
	for _, flag := range []string{"--scrape.min-interval=10s"} {
		a := kingpin.New(programName, "")
		addFlags(a)
		err := parseFlags(a, []string{flag})
		name, _, _ := strings.Cut(flag, "=")
		if err == nil || !strings.Contains(err.Error(), "unknown long flag '"+name+"'") {
			t.Errorf("%s: %v, want an unknown flag", flag, err)
		}
	}
}

func TestFlagsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--feishu.timeout=0s"}, "--feishu.timeout 0s must be above 0"},
		{[]string{"--feishu.page-size=0"}, "--feishu.page-size 0 must be at least 1"},
		{[]string{"--feishu.concurrency=-1"}, "--feishu.concurrency -1 must be at least 1"},
		{[]string{"--feishu.rate-limit=-5"}, "--feishu.rate-limit -5 must be a number"},
		{[]string{"--scrape.timeout-offset=-1s"}, "--scrape.timeout-offset -1s must not be negative"},
		{[]string{"--poll.min-interval=-1s"}, "--poll.min-interval -1s must not be negative"},
		{[]string{"--poll.idle-after=0s"}, "--poll.idle-after 0s must be above 0"},
		{[]string{"--poll.idle-interval=0s"}, "--poll.idle-interval 0s must be above 0"},
		{[]string{"--poll.full-interval=-1h"}, "--poll.full-interval -1h0m0s must be above 0"},
		{[]string{"--collector.duration-buckets=5,1"}, "buckets must be increasing"},
		{[]string{"--demo", "--demo.speed=0"}, "--demo.speed 0 must be above 0"},
		{[]string{"--demo.speed=10"}, "--demo.speed given without --demo"},
		{[]string{"--demo.failing-session=s", "--demo.api-address=127.0.0.1:9999"},
			"--demo.api-address, --demo.failing-session given without --demo"},
		{[]string{"--config.check", "--demo.burst-interval=1m"}, "--demo.burst-interval given without --demo"},
		{[]string{"--web.telemetry-path=metrics"}, `--web.telemetry-path "metrics" must start with "/"`},
		{[]string{"--web.telemetry-path="}, `--web.telemetry-path "" must start with "/"`},
		{[]string{"--web.telemetry-path=/-/healthy"}, `--web.telemetry-path "/-/healthy" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=/config"}, `--web.telemetry-path "/config" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=/status"}, `--web.telemetry-path "/status" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=/-/metrics"}, `--web.telemetry-path "/-/metrics" is taken by another endpoint`},
		{[]string{"--web.telemetry-path=GET /metrics"}, `--web.telemetry-path "GET /metrics" must start with "/"`},
		{[]string{"--web.telemetry-path=/my metrics"}, `--web.telemetry-path "/my metrics" must be a plain path`},
		{[]string{"--web.telemetry-path=/{name}"}, `--web.telemetry-path "/{name}" must be a plain path`},
		{[]string{"--web.telemetry-path=/metrics?x"}, `--web.telemetry-path "/metrics?x" must be a plain path`},
		{[]string{"--web.telemetry-path=/a/../metrics"}, `--web.telemetry-path "/a/../metrics" must be a plain path`},
	} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr testkit.LogBuffer
		code := run(context.Background(), f, &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions: [s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sesions: [s]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path       string
		wantCode   int
		wantOut    string
		wantStderr string
	}{
		{good, 0, "config OK\n", ""},
		{bad, 1, "", `line 5: unknown key "sesions"`},
		{filepath.Join(dir, "missing.yml"), 1, "", "missing.yml"},
	} {
		var stdout, stderr bytes.Buffer
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse([]string{"--config.check", "--config.file", tc.path}); err != nil {
			t.Fatal(err)
		}
		code := run(context.Background(), f, &stdout, &stderr)
		if code != tc.wantCode || stdout.String() != tc.wantOut || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("--config.check %s: exit %d, stdout %q, stderr %q; want %d, %q, %q",
				filepath.Base(tc.path), code, stdout.String(), stderr.String(), tc.wantCode, tc.wantOut, tc.wantStderr)
		}
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse([]string{"--demo", "--web.listen-address", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as if SIGTERM had come
	var stdout, stderr testkit.LogBuffer
	if code := run(ctx, f, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; logs:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Shutting down") {
		t.Errorf("no shutdown logged:\n%s", stderr.String())
	}
}

func TestTelemetryPathAccepted(t *testing.T) {
	for _, path := range []string{"/", "/metrics", "/aily/metrics", "/metrics/"} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse([]string{"--web.telemetry-path=" + path}); err != nil {
			t.Fatal(err)
		}
		if err := checkFlags(f); err != nil {
			t.Errorf("--web.telemetry-path=%s: %v", path, err)
			continue
		}
		e := exporter.New(exporter.Options{Logger: log.NewNopLogger()})
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("--web.telemetry-path=%s passes checkFlags but the routes panic: %v", path, r)
				}
			}()
			e.Routes(exporter.RouteOptions{TelemetryPath: f.telemetryPath})
		}()
	}
}

func TestParseErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--feishu.page-size=abc"}, `--feishu.page-size: "abc" is not valid: strconv.ParseFloat: parsing "abc": invalid syntax`},
		{[]string{"--feishu.rate-limit", "fast"}, `--feishu.rate-limit: "fast" is not valid`},
		{[]string{"--feishu.timeout=10"}, `--feishu.timeout: "10" is not valid: time: missing unit in duration "10"`},
		{[]string{"--log.level=loud"}, `--log.level: "loud" is not valid: enum value must be one of debug,info,warn,error`},
		{[]string{"--feishu.concurrency=2", "--feishu.page-size=x"}, `--feishu.page-size: "x" is not valid`},
		{[]string{"--no-such-flag"}, "unknown long flag '--no-such-flag'"},
	} {
		a := kingpin.New(programName, "")
		addFlags(a)
		err := parseFlags(a, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if err := parseFlags(a, []string{"--feishu.page-size=20"}); err != nil || f.feishuPageSize != 20 {
		t.Errorf("parseFlags of a good value: %v, page size %d", err, f.feishuPageSize)
	}
}

func TestConfigCheckChecksTheWebConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("aily.yml", "apps:\n  - name: a\n    app_id: cli_a\n    app_secret: x\n    sessions: [s]\n")
	for _, tc := range []struct {
		name       string
		webConfig  string
		wantCode   int
		wantStderr string
	}{
		{"no web config", "", 0, ""},
		{"basic auth", write("web-ok.yml", "basic_auth_users:\n  alice: $2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi\n"), 0, ""},
		{"unknown key", write("web-typo.yml", "tls_server_confg:\n  cert_file: x\n"), 1, "--web.config.file"},
		{"missing certificate", write("web-tls.yml", "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n"), 1, "nope.crt"},
		{"missing file", filepath.Join(dir, "missing-web.yml"), 1, "missing-web.yml"},
	} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		args := []string{"--config.check", "--config.file", cfg}
		if tc.webConfig != "" {
			args = append(args, "--web.config.file", tc.webConfig)
		}
		if _, err := a.Parse(args); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), f, &stdout, &stderr)
		if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d and %q", tc.name, code, stdout.String(), stderr.String(), tc.wantCode, tc.wantStderr)
		}
		if tc.wantCode == 0 && stdout.String() != "config OK\n" {
			t.Errorf("%s: stdout %q, want config OK", tc.name, stdout.String())
		}
	}
}

func TestNoArchivedYAMLModule(t *testing.T) {
	// gopkg.in/yaml.v3 is archived; the Prometheus libraries moved to
	// go.yaml.in/yaml/v3, and so does every package here, tests included.
	const archived = "gopkg.in/yaml.v3"
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == strconv.Quote(archived) {
				t.Errorf("%s imports %s; use go.yaml.in/yaml/v3", path, archived)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(archived) + ` v\S+\s*$`).Match(mod) {
		t.Errorf("go.mod requires %s directly", archived)
	}
}

func TestShardFlags(t *testing.T) {
	host := func(name string) func() (string, error) { return func() (string, error) { return name, nil } }
	for _, tc := range []struct {
		args []string
		host func() (string, error)
		want sharding.Shard
		err  string
	}{
		{nil, host("x"), sharding.Shard{Ordinal: 0, Total: 1, Key: sharding.KeyApp}, ""},
		{[]string{"--shard=2", "--total-shards=3", "--shard.key=session"}, host("x"), sharding.Shard{Ordinal: 2, Total: 3, Key: sharding.KeySession}, ""},
		{[]string{"--shard=auto", "--total-shards=4"}, host("aily-exporter-ha-3"), sharding.Shard{Ordinal: 3, Total: 4, Key: sharding.KeyApp}, ""},
		{[]string{"--shard=auto", "--total-shards=4"}, host("aily-exporter-4"), sharding.Shard{}, "--shard 4 must be between 0 and --total-shards - 1 (3)"},
		{[]string{"--shard=auto", "--total-shards=4"}, host("laptop"), sharding.Shard{}, `the host name "laptop" does not end in -N`},
		{[]string{"--shard=auto"}, func() (string, error) { return "", errors.New("no uts") }, sharding.Shard{}, "--shard=auto: cannot read the host name: no uts"},
		{[]string{"--shard=3", "--total-shards=3"}, host("x"), sharding.Shard{}, "--shard 3 must be between 0 and --total-shards - 1 (2)"},
		{[]string{"--total-shards=0"}, host("x"), sharding.Shard{}, "--total-shards 0 must be at least 1"},
		{[]string{"--shard=first"}, host("x"), sharding.Shard{}, `--shard "first" must be a number or auto`},
	} {
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got, err := shardOf(f, tc.host)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%v: %+v, %v; want %+v", tc.args, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: %+v, %v; want an error with %q", tc.args, got, err, tc.err)
		}
	}
	// run says what is wrong, and stops.
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse([]string{"--shard=5", "--total-shards=2"}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), f, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--shard 5 must be between 0 and") {
		t.Errorf("--shard=5 --total-shards=2: exit %d, stderr %q", code, stderr.String())
	}
}

// --config.check prints what the shard owns: its apps with app keys, its
// share of every app's sessions with session keys.
func TestConfigCheckPrintsWhatTheShardOwns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aily.yml")
	var yml strings.Builder
	yml.WriteString("apps:\n")
	sessions := map[string][]string{}
	apps := []string{"alpha", "bravo", "charlie", "delta", "echo"}
	for _, app := range apps {
		for s := range 6 {
			sessions[app] = append(sessions[app], fmt.Sprintf("%s_%d", app, s))
		}
		fmt.Fprintf(&yml, "  - name: %s\n    app_id: cli_x\n    app_secret: x\n    sessions: [%s]\n", app, strings.Join(sessions[app], ", "))
	}
	if err := os.WriteFile(path, []byte(yml.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, key := range []sharding.Key{sharding.KeyApp, sharding.KeySession} {
		shard, _ := sharding.New(1, 2, key)
		want := fmt.Sprintf("config OK\nshard 1 of 2 (--shard.key=%s) owns:\n", key)
		for _, app := range apps {
			if !shard.OwnsApp(app) {
				continue
			}
			var mine []string
			for _, id := range sessions[app] {
				if shard.OwnsSession(app, id) {
					mine = append(mine, id)
				}
			}
			want += fmt.Sprintf("  app %s: %d of 6 sessions", app, len(mine))
			if len(mine) > 0 {
				want += ": " + strings.Join(mine, ", ")
			}
			want += "\n"
		}
		a := kingpin.New(programName, "")
		f := addFlags(a)
		if _, err := a.Parse([]string{"--config.check", "--config.file", path, "--shard=1", "--total-shards=2", "--shard.key=" + string(key)}); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), f, &stdout, &stderr); code != 0 || stdout.String() != want {
			t.Errorf("%s keys: exit %d, stdout\n%s\nwant\n%s\nstderr %s", key, code, stdout.String(), want, stderr.String())
		}
	}
}

// sizeWarning matches the warning of an app with more than
// config.ManySessions sessions and per_session not set: its run metrics are
// summed per app.
var sizeWarning = regexp.MustCompile(`level=warn [^\n]*helpdesk[^\n]*10001 sessions: the run metrics are summed per app[^\n]*or shard`)

func TestManySessionsWarnAtStart(t *testing.T) {
	// helpdesk has two sessions in the file and the rest in its
	// sessions_file: one too many. Nothing is polled before a scrape.
	dir := t.TempDir()
	var sessions strings.Builder
	for i := range config.ManySessions - 1 {
		fmt.Fprintf(&sessions, "session_%06d\n", i)
	}
	for name, content := range map[string]string{
		"helpdesk.sessions": sessions.String(),
		"aily.yml": "apps:\n  - name: helpdesk\n    app_id: cli_helpdesk\n    app_secret: x\n    base_url: http://127.0.0.1:1\n" +
			"    sessions: [session_ok, session_bad]\n    sessions_file: helpdesk.sessions\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a := kingpin.New(programName, "")
	f := addFlags(a)
	if _, err := a.Parse([]string{"--config.file", filepath.Join(dir, "aily.yml"), "--storage.path", "",
		"--web.listen-address", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // start, then stop at once
	var stdout, stderr testkit.LogBuffer
	if code := run(ctx, f, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; logs:\n%s", code, stderr.String())
	}
	if !sizeWarning.MatchString(stderr.String()) {
		t.Errorf("no warning at start about 10,001 sessions with per_session: true:\n%s", stderr.String())
	}
}

func TestAFailedStartLeavesNoStorageDirectoryBehind(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing string // made before the start, relative to the temporary directory
		storage  string
		want     []string // what remains
	}{
		{"new directory", "", "data", nil},
		{"new directory with new parents", "", "var/lib/data", nil},
		{"existing directory is kept", "data", "data", []string{"data"}},
		{"existing parent is kept", "var", "var/data", []string{"var"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.existing != "" {
				if err := os.MkdirAll(filepath.Join(dir, tc.existing), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			a := kingpin.New(programName, "")
			f := addFlags(a)
			if _, err := a.Parse([]string{"--config.file=" + filepath.Join(dir, "aily.yml"),
				"--storage.path=" + filepath.Join(dir, tc.storage)}); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr testkit.LogBuffer
			if code := run(context.Background(), f, &stdout, &stderr); code != 1 {
				t.Fatalf("start without aily.yml: exit %d, want 1\n%s", code, stderr.String())
			}
			var left []string
			_ = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
				if rel, _ := filepath.Rel(dir, p); err == nil && rel != "." {
					left = append(left, filepath.ToSlash(rel))
				}
				return nil
			})
			if !slices.Equal(left, tc.want) {
				t.Errorf("after the failed start %s holds %v, want %v", dir, left, tc.want)
			}
		})
	}
}
