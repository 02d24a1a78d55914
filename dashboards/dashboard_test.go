package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// metricFamilies are the exporter's aily_ metric families, exactly: the
// metrics tables of the README and docs/metrics.md (TestDocsListTheMetrics).
// The end-to-end test checks that a scrape of aily_exporter --demo has these
// and no others. The aily_state_* families (the
// state kept in --storage.path) join the list with the change that exports
// them. The aily_poll_* and aily_session_staleness_seconds families are issue
// 14's (the daily request budget), which the dashboard's "API budget and
// freshness" row reads. aily_app_token_up is issue 15's (the token back-off).
// The aily_sessions_discover* families are served only for apps with a
// sessions_url, which the demo has not, and no panel reads them: they are not
// in this list, but the metrics tables name them (TestDocsListTheMetrics).
var metricFamilies = []string{
	"aily_runs",
	"aily_runs_finished_total",
	"aily_runs_created_total",
	"aily_run_failures_total",
	"aily_run_duration_seconds",
	"aily_run_queue_seconds",
	"aily_runs_oldest_age_seconds",
	"aily_session_last_run_timestamp_seconds",
	"aily_session_info",
	"aily_session_up",
	"aily_session_last_success_timestamp_seconds",
	"aily_session_poll_duration_seconds",
	"aily_sessions",
	"aily_sessions_overdue",
	"aily_session_staleness_seconds",
	"aily_poll_budget_requests_per_day",
	"aily_poll_spend_requests_per_day",
	"aily_up",
	"aily_api_requests_total",
	"aily_api_request_duration_seconds",
	"aily_api_rate_limited_total",
	"aily_app_token_up",
	"aily_tracked_runs",
	"aily_exporter_build_info",
	"aily_exporter_config_last_reload_successful",
	"aily_exporter_config_last_reload_success_timestamp_seconds",
	"aily_exporter_shard_ordinal",
	"aily_exporter_total_shards",
}

// histogramFamilies are the histogram families among them, whose classic
// series carry the suffixes _bucket, _sum and _count.
var histogramFamilies = []string{
	"aily_run_duration_seconds",
	"aily_run_queue_seconds",
	"aily_api_request_duration_seconds",
	"aily_session_staleness_seconds",
}

// familyLabels tells which of the app and session_id labels each family has,
// so that every panel can be checked to filter by the dashboard's variables.
var familyLabels = map[string]struct{ app, session bool }{
	"aily_runs":                                   {true, true},
	"aily_runs_finished_total":                    {true, true},
	"aily_runs_created_total":                     {true, true},
	"aily_run_failures_total":                     {true, true},
	"aily_run_duration_seconds":                   {true, true},
	"aily_run_queue_seconds":                      {true, true},
	"aily_runs_oldest_age_seconds":                {true, true},
	"aily_session_last_run_timestamp_seconds":     {true, true},
	"aily_session_info":                           {true, true},
	"aily_session_up":                             {true, true},
	"aily_session_last_success_timestamp_seconds": {true, true},
	"aily_session_poll_duration_seconds":          {true, true},
	"aily_sessions":                               {true, false},
	"aily_sessions_overdue":                       {true, false},
	"aily_session_staleness_seconds":              {true, false},
	"aily_poll_budget_requests_per_day":           {true, false},
	"aily_poll_spend_requests_per_day":            {true, false},
	"aily_api_requests_total":                     {true, false},
	"aily_api_request_duration_seconds":           {true, false},
	"aily_api_rate_limited_total":                 {true, false},
	"aily_app_token_up":                           {true, false},
}

// familyOf folds a series name into its family: the classic histogram
// suffixes of histogramFamilies go, everything else stays as is.
func familyOf(name string) string {
	for _, h := range histogramFamilies {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if name == h+suffix {
				return h
			}
		}
	}
	return name
}

// dashboard is the part of Grafana's dashboard model the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID          int          `json:"id"`
	Type        string       `json:"type"`
	Title       string       `json:"title"`
	Description string       `json:"description"`
	Datasource  *datasource  `json:"datasource"`
	GridPos     gridPos      `json:"gridPos"`
	Targets     []target     `json:"targets"`
	Panels      []panel      `json:"panels"` // a collapsed row's panels
	FieldConfig *fieldConfig `json:"fieldConfig"`
}

type gridPos struct{ H, W, X, Y int }

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	Expr       string      `json:"expr"`
	RefID      string      `json:"refId"`
	Datasource *datasource `json:"datasource"`
}

type fieldConfig struct {
	Defaults struct {
		Thresholds struct {
			Steps []struct {
				Value *float64 `json:"value"`
			} `json:"steps"`
		} `json:"thresholds"`
	} `json:"defaults"`
}

type variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Definition string      `json:"definition"`
	Datasource *datasource `json:"datasource"`
	Multi      bool        `json:"multi"`
	IncludeAll bool        `json:"includeAll"`
	AllValue   string      `json:"allValue"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("aily.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("aily.json: %v", err)
	}
	return d
}

// allPanels returns the panels with those inside collapsed rows.
func allPanels(d dashboard) []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

func TestDashboardVariables(t *testing.T) {
	d := readDashboard(t)
	if d.UID != "aily-exporter" {
		t.Errorf("uid = %q, want the stable aily-exporter (links and provisioning use it)", d.UID)
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds := vars["datasource"]; ds.Type != "datasource" || ds.Query != "prometheus" {
		t.Errorf("datasource variable = %+v, want a Prometheus datasource variable", ds)
	}
	for name, want := range map[string]string{
		"app":        "label_values(aily_sessions, app)",
		"session_id": `label_values(aily_session_up{app=~"$app"}, session_id)`,
	} {
		v, ok := vars[name]
		if !ok {
			t.Errorf("no variable %s", name)
			continue
		}
		if v.Type != "query" || v.Definition != want || !v.Multi || !v.IncludeAll || v.AllValue != ".*" {
			t.Errorf("variable %s = %+v, want a multi-select query %s with All = .*", name, v, want)
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s does not use ${datasource}", name)
		}
	}
}

func TestDashboardPanels(t *testing.T) {
	d := readDashboard(t)
	ids := map[int]string{}
	var used [][24]bool // used[y][x]: grid cells taken, to catch overlapping panels
	for _, p := range allPanels(d) {
		if p.Description == "" && p.Type != "row" { // Grafana's schema has no description on rows
			t.Errorf("panel %q has no description", p.Title)
		}
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
			continue
		}
		for y := g.Y; y < g.Y+g.H; y++ {
			for len(used) <= y {
				used = append(used, [24]bool{})
			}
			for x := g.X; x < g.X+g.W; x++ {
				if used[y][x] {
					t.Errorf("panel %q overlaps another at (%d,%d)", p.Title, x, y)
				}
				used[y][x] = true
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use ${datasource}", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s does not use ${datasource}", p.Title, tg.RefID)
			}
			checkExpr(t, p.Title, tg.Expr)
		}
	}
}

var (
	selectorRE = regexp.MustCompile(`\b(aily_[a-z_]+)\b(\{[^}]*\})?`)
	// recordedRE is a series recorded by a rule of alerts.yml (aily:…).
	recordedRE = regexp.MustCompile(`\b(aily:[a-z0-9_:]+)(\{[^}]*\})?`)
	rangeRE    = regexp.MustCompile(`\[([^\]]+)\]`)
)

// checkExpr checks that a panel's query uses only the exporter's metrics and
// the series alerts.yml records, filters by the app and session variables
// wherever the series has those labels (a recorded series has app alone), and
// takes its ranges from Grafana ($__rate_interval, $__range) unless it mirrors
// an alert's fixed window or the SLO's 30 days.
func checkExpr(t *testing.T, title, expr string) {
	t.Helper()
	matches := selectorRE.FindAllStringSubmatch(expr, -1)
	recorded := recordedRE.FindAllStringSubmatch(expr, -1)
	if len(matches) == 0 && len(recorded) == 0 {
		t.Errorf("panel %q: %q reads no aily_ metric and no series alerts.yml records", title, expr)
	}
	for _, m := range recorded {
		if !slices.Contains(recordedSeries(t), m[1]) {
			t.Errorf("panel %q: %s is not recorded by a rule of alerts.yml", title, m[1])
		}
		if !strings.Contains(m[2], `app=~"$app"`) {
			t.Errorf("panel %q: %s%s does not filter by $app", title, m[1], m[2])
		}
	}
	for _, m := range matches {
		family := familyOf(m[1])
		if !slices.Contains(metricFamilies, family) {
			t.Errorf("panel %q: %s is not a metric of the exporter", title, m[1])
			continue
		}
		labels := familyLabels[family]
		if labels.app && !strings.Contains(m[2], `app=~"$app"`) {
			t.Errorf("panel %q: %s%s does not filter by $app", title, m[1], m[2])
		}
		if labels.session && !strings.Contains(m[2], `session_id=~"$session_id"`) {
			t.Errorf("panel %q: %s%s does not filter by $session_id", title, m[1], m[2])
		}
	}
	for _, r := range rangeRE.FindAllStringSubmatch(expr, -1) {
		switch r[1] {
		case "$__rate_interval", "$__range":
		case "10m": // AilyRunFailureRatioHigh's window, so the panel shows what the alert sees
			if !strings.Contains(title, "(10m)") {
				t.Errorf("panel %q: fixed range [10m] outside the failure ratio panel", title)
			}
		case "30d": // the SLO's period, over which the error budget is counted
			if !strings.Contains(title, "(30d)") {
				t.Errorf("panel %q: fixed range [30d] outside the error budget panel", title)
			}
		default:
			t.Errorf("panel %q: range [%s], want $__rate_interval or $__range", title, r[1])
		}
	}
}

// recordedSeries are the series the recording rules of alerts.yml record.
func recordedSeries(t *testing.T) []string {
	t.Helper()
	var rf struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAMLLoose(t, "alerts.yml", &rf)
	var out []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out = append(out, r.Record)
			}
		}
	}
	return out
}

// TestDashboardCoversIssue checks that the panels issues 4, 7, 14 and 18 ask
// for are there, by the metrics they read.
func TestDashboardCoversIssue(t *testing.T) {
	d := readDashboard(t)
	var exprs []string
	types := map[string]bool{}
	thresholdPanels := map[string]bool{}
	rows := map[string]bool{}
	for _, p := range allPanels(d) {
		types[p.Type] = true
		if p.Type == "row" {
			rows[p.Title] = true
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
		if p.FieldConfig != nil {
			for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
				if s.Value != nil {
					thresholdPanels[p.Title] = true
				}
			}
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"aily_runs{",
		"rate(aily_runs_finished_total{",
		`status="FAILED"`,
		"topk(",
		"aily_run_failures_total{",
		"histogram_quantile(0.5, sum by (le) (max without (instance, pod) (rate(aily_run_duration_seconds_bucket{",
		"histogram_quantile(0.9, sum by (le) (max without (instance, pod) (rate(aily_run_duration_seconds_bucket{",
		"histogram_quantile(0.99, sum by (le) (max without (instance, pod) (rate(aily_run_duration_seconds_bucket{",
		"aily_run_queue_seconds_bucket{",
		"aily_runs_oldest_age_seconds{",
		"aily_session_up{",
		"aily_api_requests_total{",
		"aily_api_request_duration_seconds_bucket{",
		"aily_api_rate_limited_total{",
		"aily_session_poll_duration_seconds{",
		"sum by (app, state) (max without (instance, pod) (aily_sessions{",
		"aily_sessions_overdue{",
		"max by (app) (time() - aily_session_last_success_timestamp_seconds{",
		"aily_poll_budget_requests_per_day{",
		"aily_poll_spend_requests_per_day{",
		"histogram_quantile(0.5, sum by (app, le) (rate(aily_session_staleness_seconds_bucket{",
		"histogram_quantile(0.99, sum by (app, le) (rate(aily_session_staleness_seconds_bucket{",
		// Issue 18: the error budget left over 30 days, and the burn rates.
		"sum_over_time(aily:runs_failed:rate5m{",
		"sum_over_time(aily:runs_finished:rate5m{",
		"aily:run_failure_ratio:rate1h{",
		"aily:run_failure_ratio:rate6h{",
		"aily:run_failure_ratio:rate1d{",
		"aily:run_failure_ratio:rate3d{",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel query contains %s", want)
		}
	}
	if !rows["API budget and freshness"] {
		t.Error(`no row "API budget and freshness" (issue 14)`)
	}
	if !rows["Run success SLO"] {
		t.Error(`no row "Run success SLO" (issue 18)`)
	}
	for _, typ := range []string{"stat", "timeseries", "table", "heatmap"} {
		if !types[typ] {
			t.Errorf("no %s panel", typ)
		}
	}
	for _, title := range []string{
		"Failure ratio (10m)",
		"Oldest run age by status",
		"Time since the last successful poll (oldest, by app)",
		"Staleness p50 / p99",
		"Error budget left (30d)",
		"Error budget burn rate",
	} {
		if !thresholdPanels[title] {
			t.Errorf("panel %q has no threshold line", title)
		}
	}
}

func TestSpecFamiliesHaveNoDuplicates(t *testing.T) {
	// The list is compared as a set; keep it free of duplicates.
	s := slices.Clone(metricFamilies)
	sort.Strings(s)
	if len(slices.Compact(s)) != len(metricFamilies) {
		t.Error("metricFamilies has duplicates")
	}
}

// TestDashboardCountsEachRunOnceAcrossReplicas checks that every query that
// sums or counts the run and session metrics merges the replicas of an HA
// pair first, so that two exporters watching the same sessions do not double
// it. The API metrics are left out: each replica makes its own requests.
func TestDashboardCountsEachRunOnceAcrossReplicas(t *testing.T) {
	runMetric := regexp.MustCompile(`\baily_(runs|run_|runs_finished|runs_created|session_up|sessions)\w*`)
	d := readDashboard(t)
	for _, p := range allPanels(d) {
		for _, tg := range p.Targets {
			e := tg.Expr
			if !runMetric.MatchString(e) || !regexp.MustCompile(`\b(sum|count)\b`).MatchString(e) {
				continue
			}
			if !strings.Contains(e, "max without (instance, pod) (") {
				t.Errorf("panel %q: %q sums over replicas: merge them with max without (instance, pod) first", p.Title, e)
			}
		}
	}
}

// rawPanels returns every panel of aily.json as generic JSON, rows' panels
// included, for the checks of field options the panel type does not model.
func rawPanels(t *testing.T) []map[string]any {
	t.Helper()
	b, err := os.ReadFile("aily.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, p := range d.Panels {
		out = append(out, p)
		if sub, ok := p["panels"].([]any); ok {
			for _, s := range sub {
				out = append(out, s.(map[string]any))
			}
		}
	}
	return out
}

// dig reads a nested field of generic JSON, nil when absent.
func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestBadNewsStatsAreGreenAtZero(t *testing.T) {
	for _, p := range rawPanels(t) {
		title, _ := p["title"].(string)
		if title != "Failed runs (time range)" && title != "Sessions down" {
			continue
		}
		if mode := dig(p, "fieldConfig", "defaults", "color", "mode"); mode != "thresholds" {
			t.Errorf("panel %q: color mode %v, want thresholds", title, mode)
		}
		steps, _ := dig(p, "fieldConfig", "defaults", "thresholds", "steps").([]any)
		var base, above any
		for _, s := range steps {
			switch v := dig(s, "value"); {
			case v == nil:
				base = dig(s, "color")
			case v.(float64) > 0 && v.(float64) <= 1:
				above = dig(s, "color")
			}
		}
		if base != "green" || above != "red" {
			t.Errorf("panel %q: thresholds %v, want green at 0 and red from 1", title, steps)
		}
	}
}

func TestTrackedRunsAndUpAreNotOnOneAxis(t *testing.T) {
	found := false
	for _, p := range rawPanels(t) {
		targets, _ := p["targets"].([]any)
		var tracked, up string
		for _, tg := range targets {
			switch expr, _ := dig(tg, "expr").(string); {
			case strings.Contains(expr, "aily_tracked_runs"):
				tracked, _ = dig(tg, "refId").(string)
			case strings.Contains(expr, "aily_up"):
				up, _ = dig(tg, "refId").(string)
			}
		}
		if tracked == "" || up == "" {
			continue
		}
		found = true
		// Both in one panel: aily_up must be drawn on its own (right) axis.
		right := false
		overrides, _ := dig(p, "fieldConfig", "overrides").([]any)
		for _, o := range overrides {
			if dig(o, "matcher", "id") != "byFrameRefID" || dig(o, "matcher", "options") != up {
				continue
			}
			props, _ := dig(o, "properties").([]any)
			for _, pr := range props {
				if dig(pr, "id") == "custom.axisPlacement" && dig(pr, "value") == "right" {
					right = true
				}
			}
		}
		if !right {
			t.Errorf("panel %q draws aily_tracked_runs and aily_up on one axis: put aily_up (refId %s) on the right axis", p["title"], up)
		}
	}
	if !found {
		t.Log("aily_tracked_runs and aily_up are in separate panels")
	}
}

// TestDocsNameThePanels checks the tour of the dashboard in docs/alerts.md
// against aily.json: each panel it lists by name (an italic name opening a
// list item, a bold row) is named as in the dashboard, and every panel but the
// stats, whose names the tour weaves into a sentence, is named in it.
func TestDocsNameThePanels(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## The Grafana dashboard\n")
	if !ok {
		t.Fatal(`docs/alerts.md has no section "## The Grafana dashboard"`)
	}
	// The section ends at the next heading, whatever its level.
	if end := regexp.MustCompile(`\n#{1,6} `).FindStringIndex(section); end != nil {
		section = section[:end[0]]
	}

	titles := map[string]string{} // title → type
	for _, p := range allPanels(readDashboard(t)) {
		titles[p.Title] = p.Type
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+- \*([^*]+)\*`).FindAllStringSubmatch(section, -1) {
		if _, ok := titles[m[1]]; !ok {
			t.Errorf("docs/alerts.md lists a panel *%s*, which aily.json has not (by that name)", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^\d+\. \*\*([^*]+?)\.\*\*`).FindAllStringSubmatch(section, -1) {
		if titles[m[1]] != "row" {
			t.Errorf("docs/alerts.md names a row **%s**, which aily.json has not (by that name)", m[1])
		}
	}
	named := map[string]bool{}
	// Single stars only: a bold row is not a panel's name.
	for _, m := range regexp.MustCompile(`(?:^|[^*\w])\*([^*\s][^*]*)\*(?:[^*\w]|$)`).FindAllStringSubmatch(section, -1) {
		named[m[1]] = true
	}
	for title, typ := range titles {
		if typ != "row" && typ != "stat" && !named[title] {
			t.Errorf("docs/alerts.md does not name the panel *%s*", title)
		}
	}
}

// TestDocsListTheMetrics checks the metrics tables of the README and of
// docs/metrics.md against metricFamilies: each names every family, and no
// other. The aily_state_* families, exported only with --storage.path, and
// the aily_sessions_discover* families, exported only for apps with a
// sessions_url, are in the tables too.
func TestDocsListTheMetrics(t *testing.T) {
	want := slices.Concat(metricFamilies, []string{
		"aily_state_last_save_timestamp_seconds",
		"aily_state_save_duration_seconds",
		"aily_state_bytes",
		"aily_state_save_failures_total",
		"aily_sessions_discovery_up",
		"aily_sessions_discovery_last_success_timestamp_seconds",
		"aily_sessions_discovered",
	})
	slices.Sort(want)
	row := regexp.MustCompile("(?m)^\\| (`aily_[^|]*)\\|")
	name := regexp.MustCompile("`(aily_[a-z_]+)`")
	for _, doc := range []string{"README.md", filepath.Join("docs", "metrics.md")} {
		b, err := os.ReadFile(filepath.Join("..", doc))
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, r := range row.FindAllStringSubmatch(string(b), -1) {
			for _, n := range name.FindAllStringSubmatch(r[1], -1) {
				listed = append(listed, n[1])
			}
		}
		slices.Sort(listed)
		if !slices.Equal(listed, want) {
			t.Errorf("%s lists the metrics\n%v\nwant\n%v", doc, listed, want)
		}
	}
}
