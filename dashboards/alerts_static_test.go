package dashboards

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// runbookBase is where every alert's runbook_url points, followed by the
// page of its runbook (runbookDoc) and "#" and its heading's anchor:
// docs/alerts.md ("Dashboard and alerts"), one heading per alert, or the page
// of runbookDocs.
const runbookBase = "https://github.com/aily-exporter/aily_exporter/blob/main/"

// runbookDocs are the alerts whose runbooks are not in docs/alerts.md, and
// the page that has them.
var runbookDocs = map[string]string{
	"AilyErrorBudgetBurnFast": "docs/slo.md",
	"AilyErrorBudgetBurnSlow": "docs/slo.md",
	"AilyShardsMissing":       "docs/sharding.md",
	"AilyShardingMismatch":    "docs/sharding.md",
}

// runbookDoc is the page with the runbook of alert.
func runbookDoc(alert string) string {
	if doc, ok := runbookDocs[alert]; ok {
		return doc
	}
	return "docs/alerts.md"
}

// sloGroup is the group of the run success SLO: its recording rules and its
// burn-rate alerts (issue 18).
const sloGroup = "aily-slo"

// wantRecorded are the series the SLO's recording rules record: the failure
// ratio over each window of the burn-rate alerts, and the 5m rates the
// dashboard's error budget sums over 30 days.
var wantRecorded = []string{
	"aily:runs_finished:rate5m",
	"aily:runs_failed:rate5m",
	"aily:run_failure_ratio:rate5m",
	"aily:run_failure_ratio:rate30m",
	"aily:run_failure_ratio:rate1h",
	"aily:run_failure_ratio:rate2h",
	"aily:run_failure_ratio:rate6h",
	"aily:run_failure_ratio:rate1d",
	"aily:run_failure_ratio:rate3d",
}

// sloAlerts are the burn-rate alerts of the SLO, in group sloGroup.
var sloAlerts = []string{"AilyErrorBudgetBurnFast", "AilyErrorBudgetBurnSlow"}

// ruleTestFiles are the promtool test files of alerts.yml: the SLO's have
// their own, at the step their windows need.
var ruleTestFiles = []string{"alerts_test.yml", "slo_fast_test.yml", "slo_slow_test.yml"}

// wantAlerts are the alerts issues 4, 7, 8, 14 and 18 ask for.
var wantAlerts = []string{
	"AilyRunFailureRatioHigh",
	"AilyRunFailuresSpike",
	"AilyRunStuck",
	"AilySessionDown",
	"AilyExporterDown",
	"AilyAPIRateLimited",
	"AilyPollBudgetExhausted",
	"AilyPollSpendOverBudget",
	"AilySessionStale",
	"AilyAppDown",
	"AilyErrorBudgetBurnFast",
	"AilyErrorBudgetBurnSlow",
}

// wantShardAlerts are the alerts of sharded exporters (issue 17), in group
// aily, whose runbooks are in docs/sharding.md (runbookDocs).
var wantShardAlerts = []string{
	"AilyShardsMissing",
	"AilyShardingMismatch",
}

// wantStatusURL are the alerts about runs and sessions, which link to the
// exporter's status page filtered to their app (docs/troubleshooting.md,
// "The status page").
var wantStatusURL = []string{
	"AilyRunFailureRatioHigh",
	"AilyRunFailuresSpike",
	"AilyRunStuck",
	"AilySessionDown",
	"AilyAppDown",
	"AilyErrorBudgetBurnFast",
	"AilyErrorBudgetBurnSlow",
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAlertRules checks what promtool does not: every alert of wantAlerts
// is there, in group aily (the SLO's in group aily-slo, with the recording
// rules of wantRecorded), with a severity, summary, description and a
// runbook_url to its section of docs/alerts.md (or of runbookDocs).
func TestAlertRules(t *testing.T) {
	var rf ruleFile
	readYAML(t, "alerts.yml", &rf)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name != "aily" && g.Name != sloGroup {
			t.Errorf("group %q, want aily or %s", g.Name, sloGroup)
		}
		for _, r := range g.Rules {
			if r.Record != "" {
				if g.Name != sloGroup {
					t.Errorf("recording rule %s in group %s: the SLO's recording rules are in %s, the other groups hold alerts only", r.Record, g.Name, sloGroup)
				}
				seen[r.Record] = true
				continue
			}
			seen[r.Alert] = true
			// The SLO's alerts are in the group of their recording rules,
			// which a group evaluates first.
			wantGroup := "aily"
			if slices.Contains(sloAlerts, r.Alert) {
				wantGroup = sloGroup
			}
			if g.Name != wantGroup {
				t.Errorf("%s is in group %s, want %s", r.Alert, g.Name, wantGroup)
			}
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if want := runbookBase + runbookDoc(r.Alert) + "#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if r.For == "" {
				t.Errorf("%s: no for: a single evaluation should not page", r.Alert)
			}
			if u := r.Annotations["status_url"]; slices.Contains(wantStatusURL, r.Alert) &&
				!strings.HasSuffix(u, "/status?app={{ $labels.app | urlquery }}") {
				t.Errorf("%s: status_url %q, want the status page of the alert's app", r.Alert, u)
			}
		}
	}
	for _, a := range slices.Concat(wantAlerts, wantShardAlerts) {
		if !seen[a] {
			t.Errorf("no alert %s", a)
		}
	}
	for _, r := range wantRecorded {
		if !seen[r] {
			t.Errorf("no recording rule %s", r)
		}
	}
}

// TestAlertRulesTested checks that the rule test files have, for every
// alert, a case where it fires and a case where it stays quiet, and that
// make test-rules runs every one of them.
func TestAlertRulesTested(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	if want := slices.Sorted(slices.Values(ruleTestFiles)); !slices.Equal(files, want) {
		t.Errorf("rule test files %v, want %v", files, want)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, name := range files {
		if !bytes.Contains(makefile, []byte("test rules dashboards/"+name+"\n")) {
			t.Errorf("make test-rules does not run promtool test rules dashboards/%s", name)
		}
		var tf ruleTestFile
		readYAMLLoose(t, name, &tf)
		if len(tf.RuleFiles) != 1 || tf.RuleFiles[0] != "alerts.yml" {
			t.Errorf("%s: rule_files = %v, want [alerts.yml]", name, tf.RuleFiles)
		}
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	for _, a := range slices.Concat(wantAlerts, wantShardAlerts) {
		if !fires[a] {
			t.Errorf("no test where %s fires", a)
		}
		if !quiet[a] {
			t.Errorf("no test where %s stays quiet", a)
		}
	}
}

// readYAMLLoose reads only the fields v names; promtool checks the rest.
func readYAMLLoose(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestRunbooksInDocs checks that every alert's runbook_url lands on a
// heading of docs/alerts.md (or of its page in runbookDocs): GitHub's anchor
// of "### AilyRunStuck" is #ailyrunstuck.
func TestRunbooksInDocs(t *testing.T) {
	pages := map[string]string{}
	for _, a := range slices.Concat(wantAlerts, wantShardAlerts) {
		doc := runbookDoc(a)
		if _, ok := pages[doc]; !ok {
			b, err := os.ReadFile(filepath.Join("..", doc))
			if err != nil {
				t.Fatal(err)
			}
			pages[doc] = string(b)
		}
		heading := regexp.MustCompile(`(?m)^#{2,6} ` + a + `\s*$`)
		if !heading.MatchString(pages[doc]) {
			t.Errorf("%s has no heading %q for the runbook_url #%s", doc, a, strings.ToLower(a))
		}
	}
	for _, name := range []string{"README.md", filepath.Join("docs", "alerts.md")} {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "<!-- dashboards:") {
			t.Errorf("%s still has the dashboards placeholder", name)
		}
	}
}
