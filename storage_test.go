package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"

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
			var stdout, stderr syncBuffer
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
