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
			checkSelected(t, rule["alert"].(string), expr)
			if upRef.MatchString(expr) && !strings.Contains(expr, `up{job="aily-exporter"}`) {
				t.Errorf("%s: the job selector is not applied:\n%s", rule["alert"], expr)
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
