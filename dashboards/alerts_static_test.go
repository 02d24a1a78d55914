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

// runbookBase is where every alert's runbook_url points: the README's
// "Dashboard and alerts" section, one heading per alert.
const runbookBase = "https://github.com/aily-exporter/aily_exporter/blob/main/README.md#"

// wantAlerts are the alerts issues 4, 7, 8 and 14 ask for.
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
}

// wantShardAlerts are the alerts of sharded exporters (issue 17), whose
// runbooks are in docs/sharding.md.
var wantShardAlerts = []string{
	"AilyShardsMissing",
	"AilyShardingMismatch",
}

// shardRunbookBase is where the runbook_url of wantShardAlerts points.
const shardRunbookBase = "https://github.com/aily-exporter/aily_exporter/blob/main/docs/sharding.md#"

// runbookOf is the runbook_url alert must have.
func runbookOf(alert string) string {
	if slices.Contains(wantShardAlerts, alert) {
		return shardRunbookBase + strings.ToLower(alert)
	}
	return runbookBase + strings.ToLower(alert)
}

// wantStatusURL are the alerts about runs and sessions, which link to the
// exporter's status page filtered to their app (the README's "Status page").
var wantStatusURL = []string{
	"AilyRunFailureRatioHigh",
	"AilyRunFailuresSpike",
	"AilyRunStuck",
	"AilySessionDown",
	"AilyAppDown",
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
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
// is there, in group aily, with a severity, summary, description and a
// runbook_url to its README section.
func TestAlertRules(t *testing.T) {
	var rf ruleFile
	readYAML(t, "alerts.yml", &rf)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name != "aily" {
			t.Errorf("group %q, want aily", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("recording rule %q: alerts.yml holds alerts only", r.Expr)
				continue
			}
			seen[r.Alert] = true
			if r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if want := runbookOf(r.Alert); r.Annotations["runbook_url"] != want {
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
}

// TestAlertRulesTested checks that alerts_test.yml has, for every alert, a
// case where it fires and a case where it stays quiet.
func TestAlertRulesTested(t *testing.T) {
	var tf ruleTestFile
	readYAMLLoose(t, "alerts_test.yml", &tf)
	if len(tf.RuleFiles) != 1 || tf.RuleFiles[0] != "alerts.yml" {
		t.Errorf("rule_files = %v, want [alerts.yml]", tf.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
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

// TestRunbooksInREADME checks that every alert's runbook_url lands on a
// heading of the README: GitHub's anchor of "#### AilyRunStuck" is
// #ailyrunstuck.
func TestRunbooksInREADME(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, a := range wantAlerts {
		heading := regexp.MustCompile(`(?m)^#{2,6} ` + a + `\s*$`)
		if !heading.MatchString(readme) {
			t.Errorf("README.md has no heading %q for the runbook_url #%s", a, strings.ToLower(a))
		}
	}
	if strings.Contains(readme, "<!-- dashboards:") {
		t.Error("README.md still has the dashboards placeholder")
	}
	b, err = os.ReadFile(filepath.Join("..", "docs", "sharding.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range wantShardAlerts {
		heading := regexp.MustCompile(`(?m)^#{2,6} ` + a + `\s*$`)
		if !heading.Match(b) {
			t.Errorf("docs/sharding.md has no heading %q for the runbook_url #%s", a, strings.ToLower(a))
		}
	}
}
