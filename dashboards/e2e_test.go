//go:build unix

package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// failingSession is a session the demo watches but its simulator does not
// know: the status page must show it failing.
const failingSession = "session_e2e_missing"

// The end-to-end test runs the real binary in --demo mode under a real
// Prometheus that loads alerts.yml, and checks the dashboard's queries and the
// spike alert through Prometheus' HTTP API. It needs a prometheus binary and
// takes about a minute, so it runs only when asked: AILY_E2E=1 (make test-e2e).
const (
	e2eEnv = "AILY_E2E"

	// demoSpeed is how many times faster than real time the simulator runs.
	// Runs then finish within seconds (median ~10s), so Prometheus has
	// finished runs, durations and failures to show soon; and the demo's
	// steady failures (4% of ~0.4 runs/s, over three apps) stay well under
	// the spike rule's minimum of 5 failed runs per app in 5m for the test's
	// two minutes, so that the alert, when it comes, comes from the burst.
	// Much faster and the steady failures alone would fire the rule, which
	// has no baseline yet in a Prometheus that started a minute ago.
	demoSpeed = 2
	// demoBurstInterval keeps the simulator's own bursts out of the test: the
	// test triggers the bursts it checks, after checking the quiet before.
	demoBurstInterval = "24h"
	// burstLength is the longest a simulator burst lasts (90s simulated),
	// plus time for its last runs to fail and be scraped and evaluated.
	burstLength = 90*time.Second/demoSpeed + 15*time.Second
	// maxBursts: a burst lands on one or two random sessions, and a burst on
	// a quiet session fails fewer runs than the rule needs, which it rightly
	// ignores. The test then triggers another, up to this many.
	maxBursts = 3
	// spikeWithoutBaseline is what AilyRunFailuresSpike needs of an app
	// without an hour of history, as in this young Prometheus: more than 3 ×
	// its minimum of 5 failed runs in 5m.
	spikeWithoutBaseline = 15

	// Prometheus scrapes and evaluates every 2s instead of the example's 30s.
	promInterval = 2 * time.Second

	// quietBeforeBurst is how many runs must have finished, with the spike
	// alert quiet, before the test triggers the burst: enough that the demo's
	// steady failures had their chance to trip the rule.
	quietBeforeBurst = 30
)

// Grafana's variables as the end-to-end test fills them in: every app and
// session (the variables' All value), no metadata label (the demo has none:
// "by (app, )" parses), and intervals that fit 2s scrapes.
var grafanaVariables = strings.NewReplacer(
	"${app}", ".*",
	"$app", ".*",
	"${session_id}", ".*",
	"$session_id", ".*",
	"${metadata_label}", "",
	"$__rate_interval", "1m",
	"$__interval_ms", "15000",
	"$__interval", "15s",
	"$__range", "5m",
)

func TestEndToEnd(t *testing.T) {
	if os.Getenv(e2eEnv) != "1" {
		t.Skipf("end-to-end test against a real Prometheus and aily_exporter --demo; run it with %s=1 (make test-e2e)", e2eEnv)
	}
	began := time.Now()
	t.Cleanup(func() { t.Logf("end-to-end wall time: %s", time.Since(began).Round(100*time.Millisecond)) })

	promBin := findPrometheus(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	exporterBin := filepath.Join(dir, "aily_exporter")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", exporterBin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built the exporter in %s", time.Since(began).Round(100*time.Millisecond))

	exporterAddr, apiAddr, promAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	exporter := startProcess(t, dir, "aily_exporter", exporterBin,
		"--demo",
		fmt.Sprintf("--demo.speed=%d", demoSpeed),
		"--demo.burst-interval="+demoBurstInterval,
		"--demo.api-address="+apiAddr,
		"--demo.failing-session="+failingSession,
		"--web.listen-address="+exporterAddr,
	)
	waitFor(t, "the exporter to serve /metrics", 30*time.Second, []*process{exporter}, func() error {
		_, err := httpGet("http://" + exporterAddr + "/metrics")
		return err
	})

	cfg := writePrometheusConfig(t, dir, exporterAddr)
	prometheus := startProcess(t, dir, "prometheus", promBin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr,
		// Exemplars (the run_id of the latest failed run) are kept.
		"--enable-feature=exemplar-storage",
	)
	procs := []*process{exporter, prometheus}
	prom := promAPI{base: "http://" + promAddr}

	if !t.Run("target is up", func(t *testing.T) {
		waitFor(t, "Prometheus to scrape the exporter successfully", 60*time.Second, procs, func() error {
			var data struct {
				ActiveTargets []struct {
					Labels    map[string]string `json:"labels"`
					Health    string            `json:"health"`
					LastError string            `json:"lastError"`
				} `json:"activeTargets"`
			}
			if err := prom.get("/api/v1/targets", nil, &data); err != nil {
				return err
			}
			for _, tg := range data.ActiveTargets {
				if tg.Labels["job"] == "aily" {
					if tg.Health != "up" {
						return fmt.Errorf("target health %q, last error %q", tg.Health, tg.LastError)
					}
					return nil
				}
			}
			return errors.New("no active target of job aily")
		})
	}) {
		return // the later steps need this one
	}

	if !t.Run("spike alert quiet before the burst", func(t *testing.T) {
		// Quiet means something only once runs have finished and the rules
		// have been evaluated over them.
		var seen time.Time
		waitFor(t, fmt.Sprintf("%d finished runs", quietBeforeBurst), 90*time.Second, procs, func() error {
			n, err := prom.scalar(`sum(aily_runs_finished_total)`)
			if err != nil {
				return err
			}
			if n < quietBeforeBurst {
				return fmt.Errorf("%v finished runs so far", n)
			}
			seen = time.Now()
			return nil
		})
		waitFor(t, "the aily rule group to be evaluated over them", 30*time.Second, procs, func() error {
			last, err := prom.lastEvaluation("AilyRunFailuresSpike")
			if err != nil {
				return err
			}
			if !last.After(seen) {
				return fmt.Errorf("last evaluated at %s", last)
			}
			return nil
		})
		state, err := prom.alertState("AilyRunFailuresSpike")
		if err != nil {
			t.Fatal(err)
		}
		if state != "" {
			failed, _ := prom.scalar(`sum(increase(aily_runs_finished_total{status="FAILED"}[5m]))`)
			t.Fatalf("AilyRunFailuresSpike is %s before any burst (%v failed runs in 5m): the rule trips on the demo's steady failures", state, failed)
		}
	}) {
		return // the later steps need this one
	}

	if !t.Run("burst brings the spike alert", func(t *testing.T) {
		bursts := 0
		var burst, enough time.Time
		trigger := func() {
			bursts++
			burst = time.Now()
			resp, err := http.Post("http://"+apiAddr+"/simulator/burst", "", nil)
			if err != nil {
				t.Fatalf("trigger a burst: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				t.Fatalf("POST /simulator/burst: %s: %s", resp.Status, body)
			}
		}
		trigger()
		first := burst
		waitFor(t, "AilyRunFailuresSpike to be pending or firing", time.Duration(maxBursts)*burstLength+30*time.Second, procs, func() error {
			state, err := prom.alertState("AilyRunFailuresSpike")
			if err != nil {
				return err
			}
			if state == "pending" || state == "firing" {
				return nil
			}
			most, err := prom.scalar(`max(sum by (app) (increase(aily_runs_finished_total{status="FAILED"}[5m])))`)
			if err != nil {
				return err
			}
			switch {
			case most > spikeWithoutBaseline:
				// The rule's own condition holds (no baseline yet in a young
				// Prometheus): it must be active by the next evaluations.
				if enough.IsZero() {
					enough = time.Now()
				}
				if time.Since(enough) > 5*promInterval {
					t.Fatalf("an app has had %v failed runs in 5m for %s, yet AilyRunFailuresSpike is not active", most, time.Since(enough).Round(time.Second))
				}
			case time.Since(burst) > burstLength:
				if bursts == maxBursts {
					t.Fatalf("%d bursts gave at most %v failed runs per app in 5m: the simulator's bursts are too small for the rule", bursts, most)
				}
				t.Logf("burst %d gave at most %v failed runs per app in 5m, under the rule's minimum; another", bursts, most)
				trigger()
			}
			return fmt.Errorf("not active; at most %v failed runs per app in 5m", most)
		})
		t.Logf("AilyRunFailuresSpike active %s after the first of %d burst(s)", time.Since(first).Round(100*time.Millisecond), bursts)
	}) {
		return // the later steps need this one
	}

	t.Run("increase() sees the first increment of every series", func(t *testing.T) {
		checkIncreaseSeesEveryIncrement(t, prom, procs)
	})

	t.Run("an exemplar names a failed run", func(t *testing.T) {
		// Prometheus negotiates OpenMetrics, whose exemplars it stores.
		waitFor(t, "an exemplar of aily_run_failures_total with a run_id", 60*time.Second, procs, func() error {
			var data []struct {
				SeriesLabels map[string]string `json:"seriesLabels"`
				Exemplars    []struct {
					Labels map[string]string `json:"labels"`
				} `json:"exemplars"`
			}
			now := time.Now()
			err := prom.get("/api/v1/query_exemplars", url.Values{
				"query": {"aily_run_failures_total"},
				"start": {strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)},
				"end":   {strconv.FormatInt(now.Unix(), 10)},
			}, &data)
			if err != nil {
				return err
			}
			for _, d := range data {
				for _, ex := range d.Exemplars {
					if strings.HasPrefix(ex.Labels["run_id"], "run_") && ex.Labels["session_id"] != "" {
						t.Logf("exemplar %v of %v", ex.Labels, d.SeriesLabels)
						return nil
					}
				}
			}
			return fmt.Errorf("no exemplar with a run_id among %d series", len(data))
		})
	})

	t.Run("status page in a browser", func(t *testing.T) {
		checkStatusPageInBrowser(t, "http://"+exporterAddr)
	})

	t.Run("every dashboard query returns data", func(t *testing.T) {
		queries := dashboardQueries(t)
		pending := map[string]string{} // query → why it does not pass yet
		for _, q := range queries {
			pending[q.expr] = "not run"
		}
		waitFor(t, "every dashboard query to return data", 60*time.Second, procs, func() error {
			for _, q := range queries {
				if _, ok := pending[q.expr]; !ok {
					continue
				}
				n, err := prom.resultCount(q.expr)
				var bad *badQueryError
				switch {
				case errors.As(err, &bad):
					// A query Prometheus cannot parse will not parse later either.
					t.Errorf("%s: %s does not parse: %v", q.where, q.expr, err)
					delete(pending, q.expr)
				case err != nil:
					pending[q.expr] = err.Error()
				case n == 0:
					pending[q.expr] = "empty result"
				default:
					delete(pending, q.expr)
				}
			}
			if len(pending) == 0 {
				return nil
			}
			var msg []string
			for _, q := range queries {
				if why, ok := pending[q.expr]; ok {
					msg = append(msg, fmt.Sprintf("%s: %s: %s", q.where, q.expr, why))
				}
			}
			return errors.New(strings.Join(msg, "\n"))
		})
		t.Logf("%d dashboard queries return data", len(queries))
	})

	t.Run("dashboard variables list apps and sessions", func(t *testing.T) {
		for _, v := range readDashboard(t).Templating.List {
			if v.Type != "query" {
				continue
			}
			def := grafanaVariables.Replace(v.Definition)
			if n := labelNamesRE.FindStringSubmatch(def); n != nil {
				// The labels a selector's series carry, less the exporter's and
				// the target's own: the demo's metadata label, channel.
				var names []string
				if err := prom.get("/api/v1/labels", url.Values{"match[]": {n[1]}}, &names); err != nil {
					t.Errorf("variable %s: %v", v.Name, err)
					continue
				}
				names = slices.DeleteFunc(names, func(l string) bool { return slices.Contains(ownLabels, l) })
				if len(names) == 0 {
					t.Errorf("variable %s: %s has no labels but the exporter's and the target's own", v.Name, v.Definition)
				}
				continue
			}
			m := labelValuesRE.FindStringSubmatch(def)
			if m == nil {
				t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
				continue
			}
			var values []string
			if err := prom.get("/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {m[1]}}, &values); err != nil {
				t.Errorf("variable %s: %v", v.Name, err)
			} else if len(values) == 0 {
				t.Errorf("variable %s: %s has no values", v.Name, v.Definition)
			}
		}
	})

	t.Run("metric families are those of the metrics list", func(t *testing.T) {
		want := slices.Clone(metricFamilies)
		sort.Strings(want)
		waitFor(t, "the scraped aily_ families to be those of the metrics list", 30*time.Second, procs, func() error {
			var names []string
			if err := prom.get("/api/v1/label/__name__/values", nil, &names); err != nil {
				return err
			}
			got := scrapedFamilies(names)
			if slices.Equal(got, want) {
				return nil
			}
			return fmt.Errorf("missing %v, not in the metrics list %v", minus(want, got), minus(got, want))
		})
	})
}

// scrapedFamilies returns the sorted aily_ families among Prometheus' metric
// names, with the classic histogram series folded into their family.
func scrapedFamilies(names []string) []string {
	seen := map[string]bool{}
	for _, n := range names {
		if strings.HasPrefix(n, "aily_") {
			seen[familyOf(n)] = true
		}
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

var labelValuesRE = regexp.MustCompile(`^label_values\((.+), *([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// labelNamesRE matches a variable of label names, label_names(selector), and
// ownLabels are the labels such a variable leaves out (its regex).
var (
	labelNamesRE = regexp.MustCompile(`^label_names\((.+)\)$`)
	ownLabels    = []string{"app", "session_id", "error_code", "instance", "job", "pod", "namespace", "service",
		"container", "endpoint", "__name__"}
)

type dashboardQuery struct {
	where string // panel title and refId, for messages
	expr  string // with Grafana's variables filled in
}

func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	var out []dashboardQuery
	for _, p := range allPanels(readDashboard(t)) {
		for _, tg := range p.Targets {
			out = append(out, dashboardQuery{
				where: fmt.Sprintf("panel %q query %s", p.Title, tg.RefID),
				expr:  grafanaVariables.Replace(tg.Expr),
			})
		}
	}
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// findPrometheus returns the prometheus binary: from PATH, else bin/prometheus
// at the repository's root. With AILY_E2E=1 a missing one fails the test,
// so that CI cannot pass by skipping.
func findPrometheus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		local, _ := filepath.Abs(filepath.Join("..", "bin", "prometheus"))
		if _, statErr := os.Stat(local); statErr != nil {
			t.Fatalf("%s=1 but no prometheus in PATH or at %s: install Debian's prometheus package "+
				"or go install github.com/prometheus/prometheus/cmd/prometheus@v0.316.0 with GOBIN=bin", e2eEnv, local)
		}
		bin = local
	}
	out, err := exec.CommandContext(t.Context(), bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	t.Logf("using %s: %s", bin, first)
	return bin
}

// writePrometheusConfig writes prometheus.yml with the exporter's address as
// the target, 2s intervals, and alerts.yml by absolute path; everything else
// is the example as shipped.
func writePrometheusConfig(t *testing.T, dir, target string) string {
	t.Helper()
	b, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		t.Fatal("prometheus.yml has no global section")
	}
	global["scrape_interval"] = promInterval.String()
	global["scrape_timeout"] = promInterval.String()
	global["evaluation_interval"] = promInterval.String()

	rules, _ := cfg["rule_files"].([]any)
	if len(rules) != 1 || rules[0] != "alerts.yml" {
		t.Fatalf("prometheus.yml: rule_files = %v, want [alerts.yml]", cfg["rule_files"])
	}
	alerts, err := filepath.Abs("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg["rule_files"] = []any{alerts}

	jobs, _ := cfg["scrape_configs"].([]any)
	if len(jobs) != 1 {
		t.Fatalf("prometheus.yml: want one scrape config, got %d", len(jobs))
	}
	job, _ := jobs[0].(map[string]any)
	if job["job_name"] != "aily" {
		t.Fatalf("prometheus.yml: job_name = %v, want aily (AilyExporterDown matches it)", job["job_name"])
	}
	job["static_configs"] = []any{map[string]any{"targets": []any{target}}}

	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a child process in its own process group, stopped with all its
// children when the test ends, whatever the outcome.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done closes
}

func startProcess(t *testing.T, dir, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			b, err := os.ReadFile(logPath)
			if err != nil {
				t.Logf("%s log: %v", name, err)
				return
			}
			t.Logf("----- %s %s (exit: %v) log -----\n%s----- end of %s log -----",
				name, strings.Join(args, " "), p.err, b, name)
		}
	})
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, and SIGKILL if it has not exited
// 10s later.
func (p *process) stop(t *testing.T) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group's id is the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Logf("%s did not stop on SIGTERM within 10s; killing it", p.name)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// waitFor polls check until it succeeds, failing the test when limit passes
// first or when one of procs exits meanwhile.
func waitFor(t *testing.T, what string, limit time.Duration, procs []*process, check func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("waiting for %s: %s exited: %v", what, p.name, p.err)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %s: %v", what, limit, err)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", what, t.Context().Err())
		}
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func httpGet(u string) ([]byte, error) {
	resp, err := httpClient.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// promAPI is the little of Prometheus' HTTP API the test uses.
type promAPI struct{ base string }

// badQueryError is Prometheus' answer to a query it cannot parse or run
// (errorType bad_data).
type badQueryError struct{ msg string }

func (e *badQueryError) Error() string { return e.msg }

func (p promAPI) get(path string, query url.Values, data any) error {
	u := p.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	resp, err := httpClient.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var envelope struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&envelope); err != nil {
		return fmt.Errorf("GET %s: %s: %w", path, resp.Status, err)
	}
	if envelope.Status != "success" {
		if envelope.ErrorType == "bad_data" {
			return &badQueryError{msg: envelope.Error}
		}
		return fmt.Errorf("GET %s: %s: %s", path, envelope.ErrorType, envelope.Error)
	}
	if err := json.Unmarshal(envelope.Data, data); err != nil {
		return fmt.Errorf("GET %s: data: %w", path, err)
	}
	return nil
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// resultCount runs an instant query and returns the number of series it
// returned (1 for a scalar).
func (p promAPI) resultCount(expr string) (int, error) {
	var d queryData
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &d); err != nil {
		return 0, err
	}
	switch d.ResultType {
	case "scalar", "string":
		return 1, nil
	}
	var series []json.RawMessage
	if err := json.Unmarshal(d.Result, &series); err != nil {
		return 0, fmt.Errorf("query %s: %w", expr, err)
	}
	return len(series), nil
}

// scalar runs an instant query expected to give one sample and returns its
// value; no sample is an error.
func (p promAPI) scalar(expr string) (float64, error) {
	return p.scalarQuery(url.Values{"query": {expr}})
}

// scalarQuery is scalar with the query's parameters (query, time).
func (p promAPI) scalarQuery(q url.Values) (float64, error) {
	expr := q.Get("query")
	var d queryData
	if err := p.get("/api/v1/query", q, &d); err != nil {
		return 0, err
	}
	var series []struct {
		Value [2]any `json:"value"`
	}
	if err := json.Unmarshal(d.Result, &series); err != nil {
		return 0, fmt.Errorf("query %s: %w", expr, err)
	}
	if len(series) != 1 {
		return 0, fmt.Errorf("query %s: %d series, want 1", expr, len(series))
	}
	s, _ := series[0].Value[1].(string)
	var v float64
	if _, err := fmt.Sscan(s, &v); err != nil {
		return 0, fmt.Errorf("query %s: value %q: %w", expr, s, err)
	}
	return v, nil
}

// alertState returns the most advanced state ("firing" over "pending") of
// the alert's instances, or "" when none is active.
func (p promAPI) alertState(name string) (string, error) {
	var d struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", nil, &d); err != nil {
		return "", err
	}
	state := ""
	for _, a := range d.Alerts {
		if a.Labels["alertname"] != name {
			continue
		}
		if a.State == "firing" || state == "" {
			state = a.State
		}
	}
	return state, nil
}

// lastEvaluation returns when the alerting rule was last evaluated, failing
// when the rule is missing or unhealthy.
func (p promAPI) lastEvaluation(alert string) (time.Time, error) {
	var d struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name           string    `json:"name"`
				Health         string    `json:"health"`
				LastError      string    `json:"lastError"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get("/api/v1/rules", url.Values{"type": {"alert"}}, &d); err != nil {
		return time.Time{}, err
	}
	for _, g := range d.Groups {
		for _, r := range g.Rules {
			if r.Name != alert {
				continue
			}
			if r.Health == "err" {
				return time.Time{}, fmt.Errorf("rule %s: %s", alert, r.LastError)
			}
			return r.LastEvaluation, nil
		}
	}
	return time.Time{}, fmt.Errorf("no rule %s loaded", alert)
}
