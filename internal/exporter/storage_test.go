package exporter

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/state"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

func TestStateOfOtherAppsIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := &watch.State{Apps: []watch.AppRecord{{Name: "someone-else", Identity: "app_id=cli_x base_url=https://open.feishu.cn"}}}
	if err := st.Save(foreign, stateFingerprint); err != nil {
		t.Fatal(err)
	}
	e := newTestEnvWith(t, dir)
	if !regexp.MustCompile(`level=warn [^\n]*moved aside`).MatchString(e.logs.String()) {
		t.Errorf("no warning that the state was moved aside:\n%s", e.logs.String())
	}
	aside, _ := filepath.Glob(filepath.Join(dir, "state.json.corrupt-*"))
	if len(aside) != 1 {
		t.Errorf("files moved aside: %v, want the foreign state", aside)
	}
	if body := e.scrape(); !hasLine(body, sessionUp("helpdesk", "session_ok", 1)) {
		t.Errorf("the exporter does not serve after moving the state aside:\n%s", body)
	}
}

func TestFailedSavesAreCountedAndTheExporterServes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	e := newTestEnvWith(t, dir)
	e.scrape()
	// The directory goes (a volume unmounted, a full disk): saves fail.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A run finishes: what counts it must be saved before it is served.
	now := time.Now()
	e.fake.PutRun(feishu.Run{ID: "run_new", AppID: "spring_demo__c", SessionID: "session_ok", Status: feishu.StatusCompleted,
		CreatedAt: now, StartedAt: now, EndedAt: now.Add(time.Millisecond)})
	body := e.scrape()
	if !hasLine(body, sessionUp("helpdesk", "session_ok", 1)) {
		t.Errorf("the exporter does not serve while saves fail:\n%s", body)
	}
	if !regexp.MustCompile(`(?m)^aily_state_save_failures_total [1-9]`).MatchString(body) {
		t.Errorf("aily_state_save_failures_total did not count the failed save:\n%s", grepLines(body, "aily_state_"))
	}
	if !strings.Contains(e.logs.String(), "Saving the state failed") {
		t.Errorf("no warning that the save failed:\n%s", e.logs.String())
	}
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
