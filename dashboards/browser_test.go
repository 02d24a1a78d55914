package dashboards

import (
	"context"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromiumArgs are the flags of a headless Chromium that loads one page and
// prints its DOM, touching nothing but the page.
func chromiumArgs(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + profile}
}

// findChromium returns Debian's chromium. Without it the browser check is
// skipped, unless in CI (CI set), where .ci/run installs it.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if bin, err := exec.LookPath(name); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium in PATH: .ci/run installs Debian's chromium package")
	}
	t.Skip("no chromium in PATH: apt-get install -y --no-install-recommends chromium to check the status page in a browser")
	return ""
}

var (
	failingRowRE = regexp.MustCompile(`<tr class="session" data-app="[^"]*" data-session-id="` + failingSession + `" data-state="failing">`)
	failedRunRE  = regexp.MustCompile(`(?s)<tr class="failed-run" data-run-id="([^"]*)">.*?<td class="msg">(.*?)</td>`)
)

// checkStatusPageInBrowser loads base's /status in headless Chromium and
// checks the DOM it built: the demo's failing session shown failing, and the
// failed runs of /status.json with their messages.
func checkStatusPageInBrowser(t *testing.T, base string) {
	bin := findChromium(t)
	// The failed runs the exporter knows, from the JSON.
	body, err := httpGet(base + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		FailedRuns []struct {
			RunID   string `json:"run_id"`
			Message string `json:"error_message"`
		} `json:"failed_runs"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.FailedRuns) == 0 {
		t.Fatal("/status.json lists no failed run after the bursts")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	began := time.Now()
	cmd := exec.CommandContext(ctx, bin, append(chromiumArgs(t.TempDir()), "--dump-dom", base+"/status?sort=state")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	dom := string(out)
	t.Logf("chromium loaded /status in %s (%d bytes of DOM)", time.Since(began).Round(10*time.Millisecond), len(dom))

	if !failingRowRE.MatchString(dom) {
		t.Errorf("the DOM does not show session %s failing:\n%s", failingSession, dom)
	}
	rows := failedRunRE.FindAllStringSubmatch(dom, -1)
	if len(rows) == 0 {
		t.Fatalf("the DOM shows no failed run:\n%s", dom)
	}
	shown := map[string]string{}
	for _, r := range rows {
		shown[r[1]] = html.UnescapeString(r[2])
	}
	// The newest failed run of the JSON (a scrape may have added runs
	// between the two requests, so not necessarily the first row).
	found := false
	for _, f := range page.FailedRuns {
		if msg, ok := shown[f.RunID]; ok {
			found = true
			if msg != f.Message {
				t.Errorf("run %s: the DOM shows the message %q, /status.json %q", f.RunID, msg, f.Message)
			}
		}
	}
	if !found {
		t.Errorf("none of the %d failed runs of /status.json is in the DOM", len(page.FailedRuns))
	}
}
