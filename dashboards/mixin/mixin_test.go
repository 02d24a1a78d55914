// Package mixin holds the jsonnet monitoring mixin (mixin.libsonnet) built on
// the shipped alerts.yml and aily.json; its tests keep them in step.
package mixin

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-jsonnet"
	"go.yaml.in/yaml/v3"
)

// evaluate runs a jsonnet snippet in this directory and decodes its JSON.
func evaluate(t *testing.T, snippet string) any {
	t.Helper()
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{})
	out, err := vm.EvaluateAnonymousSnippet("test.jsonnet", snippet)
	if err != nil {
		t.Fatalf("jsonnet: %v", err)
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// readFile decodes a shipped file (YAML or JSON) into the same generic form
// as jsonnet's output.
func readFile(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// Through JSON, so that numbers and maps have the types jsonnet's have.
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(j, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDefaultOutputEqualsShippedFiles(t *testing.T) {
	if diff := cmp.Diff(readFile(t, "alerts.yml"),
		evaluate(t, `(import "mixin.libsonnet").prometheusAlerts`)); diff != "" {
		t.Errorf("mixin's prometheusAlerts differ from alerts.yml (-file +mixin):\n%s", diff)
	}
	got := evaluate(t, `(import "mixin.libsonnet").grafanaDashboards`).(map[string]any)
	if len(got) != 1 {
		t.Errorf("grafanaDashboards has %d dashboards, want aily.json alone", len(got))
	}
	if diff := cmp.Diff(readFile(t, "aily.json"), got["aily.json"]); diff != "" {
		t.Errorf("mixin's aily.json differs from the shipped one (-file +mixin):\n%s", diff)
	}
}

const overridden = `((import "mixin.libsonnet") + {
  _config+:: { ailySelector: 'cluster="prod"', jobSelector: 'job="aily-exporter"' },
})`

// ruleName is the alert or the recorded series a rule names.
func ruleName(rule map[string]any) string {
	if a, ok := rule["alert"].(string); ok {
		return a
	}
	r, _ := rule["record"].(string)
	return r
}

// metricRef is a metric name of the exporter where a query selects it.
var metricRef = regexp.MustCompile(`(^|[^a-zA-Z0-9_:])(aily_[a-zA-Z0-9_:]*)`)

// upRef is Prometheus' own up metric in a query.
var upRef = regexp.MustCompile(`(^|[^a-zA-Z0-9_:])up\{`)

// checkSelected reports every aily_* metric of query q that is not selected
// with cluster="prod".
func checkSelected(t *testing.T, where, q string) {
	t.Helper()
	for _, m := range metricRef.FindAllStringSubmatchIndex(q, -1) {
		if !strings.HasPrefix(q[m[5]:], `{cluster="prod"`) {
			t.Errorf("%s: %s is not selected with the mixin's selector:\n%s", where, q[m[4]:m[5]], q)
		}
	}
}

func TestSelectorsApplyToEveryQuery(t *testing.T) {
	alerts := evaluate(t, overridden+`.prometheusAlerts`).(map[string]any)
	for _, g := range alerts["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rule := r.(map[string]any)
			expr := rule["expr"].(string)
			checkSelected(t, ruleName(rule), expr)
			if upRef.MatchString(expr) && !strings.Contains(expr, `up{job="aily-exporter"}`) {
				t.Errorf("%s: the job selector is not applied:\n%s", ruleName(rule), expr)
			}
		}
	}

	queries := 0
	var walk func(where string, x any)
	walk = func(where string, x any) {
		switch x := x.(type) {
		case map[string]any:
			if title, ok := x["title"].(string); ok {
				where = title
			}
			for k, v := range x {
				if s, ok := v.(string); ok && (k == "expr" || (k == "definition" && x["type"] == "query")) {
					checkSelected(t, where, s)
					queries++
				}
				walk(where, v)
			}
		case []any:
			for _, v := range x {
				walk(where, v)
			}
		}
	}
	walk("aily.json", evaluate(t, overridden+`.grafanaDashboards`))
	if queries < 20 {
		t.Errorf("found %d queries in the dashboard, want them all (more than 20)", queries)
	}

	// The rewritten rules must still be valid PromQL.
	checkRules(t, alerts)
}

// checkRules runs promtool check rules on the mixin's rule groups, when
// promtool is on PATH.
func checkRules(t *testing.T, alerts any) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool is not on PATH: the rewritten rules are not checked with promtool check rules")
		return
	}
	b, _ := json.Marshal(alerts)
	file := filepath.Join(t.TempDir(), "alerts.yml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on the rewritten rules: %v\n%s", err, out)
	}
}

// The shipped files name the run success SLO's default objective, 99%, in
// these words; the mixin writes the configured one in their place.
const (
	defaultBudget    = "(1 - 0.99)"
	defaultObjective = "objective of 99%"
)

func TestObjectiveReachesTheSLORulesAndDashboard(t *testing.T) {
	const mixin = `((import "mixin.libsonnet") + { _config+:: { runSuccessObjective: 0.995 } })`
	for _, tc := range []struct {
		name      string
		output    string
		minBudget int // how often the default output names the budget, at least
	}{
		// Four thresholds and two burn rates in each alert's description.
		{"prometheusAlerts", ".prometheusAlerts", 12},
		// The SLO row: the error budget left and the burn rate over 4 windows.
		{"grafanaDashboards", ".grafanaDashboards", 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def := marshal(t, evaluate(t, `(import "mixin.libsonnet")`+tc.output))
			got := marshal(t, evaluate(t, mixin+tc.output))
			if n := strings.Count(def, defaultBudget); n < tc.minBudget {
				t.Errorf("the default output names the budget %s %d times, want at least %d", defaultBudget, n, tc.minBudget)
			}
			if a, b := strings.Count(got, "0.99)"), strings.Count(got, defaultObjective); a+b > 0 {
				t.Errorf("with runSuccessObjective 0.995, the output still names the default objective: %d times 0.99), %d times %q", a, b, defaultObjective)
			}
			if a, b := strings.Count(got, "(1 - 0.995)"), strings.Count(def, defaultBudget); a != b {
				t.Errorf("the budget (1 - 0.995) is written %d times, want %d (where the default output has %s)", a, b, defaultBudget)
			}
			if a, b := strings.Count(got, "objective of 99.5%"), strings.Count(def, defaultObjective); a != b {
				t.Errorf("objective of 99.5%% is written %d times, want %d (where the default output has %q)", a, b, defaultObjective)
			}
			// Nothing else changes.
			back := strings.NewReplacer("(1 - 0.995)", defaultBudget, "objective of 99.5%", defaultObjective).Replace(got)
			if diff := cmp.Diff(def, back); diff != "" {
				t.Errorf("the objective changes more than the budget and the objective's words (-default +0.995, written back):\n%s", diff)
			}
		})
	}
	if strings.Count(marshal(t, evaluate(t, `(import "mixin.libsonnet").prometheusAlerts`)), defaultObjective) < 2 {
		t.Errorf("the alerts' descriptions do not name the %s", defaultObjective)
	}
	checkRules(t, evaluate(t, mixin+`.prometheusAlerts`))

	// An objective that is no share of the runs is refused.
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{})
	if _, err := vm.EvaluateAnonymousSnippet("test.jsonnet",
		`((import "mixin.libsonnet") + { _config+:: { runSuccessObjective: 99 } }).prometheusAlerts`); err == nil ||
		!strings.Contains(err.Error(), "runSuccessObjective must be between 0 and 1") {
		t.Errorf("runSuccessObjective: 99 gave %v, want the objective refused", err)
	}
}

// marshal is v as JSON text, with map keys in order.
func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
