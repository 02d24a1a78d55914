package exporter

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	dto "github.com/prometheus/client_model/go"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/config"
	"github.com/aily-exporter/aily_exporter/internal/sharding"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// shardFleet is one configuration of several apps, served by two fakes that
// hold the same runs: one polled by the shards, one by a single unsharded
// exporter, so that each fake's request counts are one side's.
type shardFleet struct {
	t        *testing.T
	sharded  *feishufake.Fake
	single   *feishufake.Fake
	dir      string
	apps     []string
	sessions map[string][]string // by app
	runs     int
	// shardedURL is the address of the fake the shards poll.
	shardedURL string
}

const (
	fleetApps        = 6
	fleetSessions    = 8 // per app
	fleetSecret      = "fleet-secret"
	fleetCredentials = "cli_fleet"
	fleetBudget      = 86400 // requests a day per app
)

func newShardFleet(t *testing.T) *shardFleet {
	t.Helper()
	f := &shardFleet{t: t, sharded: feishufake.New(feishufake.Options{}), single: feishufake.New(feishufake.Options{}),
		dir: t.TempDir(), sessions: map[string][]string{}}
	var yml strings.Builder
	yml.WriteString("apps:\n")
	for _, fake := range []*feishufake.Fake{f.sharded, f.single} {
		fake.AddApp(fleetCredentials, fleetSecret)
	}
	for a := range fleetApps {
		app := fmt.Sprintf("app_%d", a)
		f.apps = append(f.apps, app)
		for s := range fleetSessions {
			// The fake's sessions are global: an app's are its own by name.
			f.sessions[app] = append(f.sessions[app], fmt.Sprintf("%s_session_%d", app, s))
		}
		fmt.Fprintf(&yml, "  - name: %s\n    app_id: %s\n    app_secret: %s\n    base_url: BASE_URL\n    sessions: [%s]\n",
			app, fleetCredentials, fleetSecret, strings.Join(f.sessions[app], ", "))
	}
	for _, fake := range []*feishufake.Fake{f.sharded, f.single} {
		srv := httptest.NewServer(fake)
		t.Cleanup(srv.Close)
		name := "sharded.yml"
		if fake == f.single {
			name = "single.yml"
		} else {
			f.shardedURL = srv.URL
		}
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(strings.ReplaceAll(yml.String(), "BASE_URL", srv.URL)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Runs before any exporter starts: the baseline, never counted.
	f.finishRuns(func(string, string) bool { return true })
	return f
}

// finishRuns puts one finished run, the same in both fakes, in every
// session for which pick says so, and returns how many it put, by session.
func (f *shardFleet) finishRuns(pick func(app, session string) bool) map[string]int {
	put := map[string]int{}
	for _, app := range f.apps {
		for _, id := range f.sessions[app] {
			if !pick(app, id) {
				continue
			}
			f.runs++
			status := feishu.StatusCompleted
			if f.runs%5 == 0 {
				status = feishu.StatusFailed
			}
			// Created after every listing so far, as a new run is.
			now := time.Now()
			r := feishu.Run{
				ID: fmt.Sprintf("run_%d", f.runs), AppID: "spring_demo__c", SessionID: id, Status: status,
				CreatedAt: now, StartedAt: now, EndedAt: now,
			}
			f.sharded.PutRun(r)
			f.single.PutRun(r)
			put[app+"/"+id]++
		}
	}
	return put
}

// fleetExporter is one exporter of the fleet, in process, over HTTP.
type fleetExporter struct {
	t        *testing.T
	exporter *Exporter
	server   *httptest.Server
	shard    sharding.Shard
}

// start runs an exporter of cfg ("sharded.yml" or "single.yml") as shard,
// keeping its state in stateDir (none when empty), as main would with
// --shard, --total-shards and --shard.key.
func (f *shardFleet) start(cfg string, shard sharding.Shard, stateDir string) *fleetExporter {
	f.t.Helper()
	logger := testkit.Logger(&testkit.LogBuffer{}, "debug")
	var store *Storage
	if stateDir != "" {
		var err error
		if store, err = OpenStorage(stateDir, logger); err != nil {
			f.t.Fatal(err)
		}
	}
	path := filepath.Join(f.dir, cfg)
	x := &fleetExporter{t: f.t, shard: shard}
	x.exporter = New(Options{
		Logger:      logger,
		Storage:     store,
		Shard:       shard,
		DailyBudget: fleetBudget,
		Source:      func() (*config.Config, error) { return config.Load(path) },
		Clients:     ClientOptions{Timeout: 10 * time.Second, PageSize: 50},
		// Every scrape polls every session afresh.
		Watch: watch.Options{Concurrency: 4, MinInterval: -1, IdleInterval: time.Nanosecond},
	})
	if err := x.exporter.Reload(); err != nil {
		f.t.Fatalf("shard %d of %d: %v", shard.Ordinal, shard.Total, err)
	}
	x.server = httptest.NewServer(x.exporter.Routes(RouteOptions{TelemetryPath: "/metrics", TimeoutOffset: time.Second}))
	f.t.Cleanup(x.stop)
	return x
}

// stop shuts the exporter down as SIGTERM does: the state is saved.
func (x *fleetExporter) stop() {
	if x.server == nil {
		return
	}
	x.server.Close()
	x.server = nil
	if err := x.exporter.watcher.Save(); err != nil {
		x.t.Errorf("save at shutdown: %v", err)
	}
	x.exporter.Close()
}

// scrape returns the exporter's samples by metric name and labels.
func (x *fleetExporter) scrape() map[string]float64 {
	x.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, x.server.URL+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "20")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := testkit.Samples(resp.Body, dto.MetricType_COUNTER, dto.MetricType_GAUGE)
	if err != nil {
		x.t.Fatalf("shard %d: %v", x.shard.Ordinal, err)
	}
	return out
}

// perSession sums the series of metric over each session (app/session_id),
// whatever their other labels (status, shard).
func perSession(samples map[string]float64, metric string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range samples {
		name, labels, ok := strings.Cut(k, "{")
		if !ok || name != metric {
			continue
		}
		ls := parseLabels(labels)
		out[ls["app"]+"/"+ls["session_id"]] += v
	}
	return out
}

// parseLabels reads the labels of model.LabelSet.String()'s form.
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	s = strings.TrimSuffix(s, "}")
	for _, kv := range strings.Split(s, ", ") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = strings.Trim(v, `"`)
	}
	return out
}

func shardsOf(t testing.TB, total int, key sharding.Key) []sharding.Shard {
	t.Helper()
	out := make([]sharding.Shard, total)
	for i := range out {
		s, err := sharding.New(i, total, key)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

// TestShardsCountEachRunOnce runs three shards and one unsharded exporter of
// the same configuration against fakes holding the same runs: every session
// is polled and exported by exactly one shard; together the shards count
// what the unsharded exporter counts, with as many API requests (±5%); and
// after going from three shards to four (each shard restarted on its state,
// the fourth afresh), the shards' increases add up to the runs that
// finished, none twice.
func TestShardsCountEachRunOnce(t *testing.T) {
	for _, key := range []sharding.Key{sharding.KeyApp, sharding.KeySession} {
		t.Run(string(key), func(t *testing.T) { testShardsCountEachRunOnce(t, key) })
	}
}

func testShardsCountEachRunOnce(t *testing.T, key sharding.Key) {
	f := newShardFleet(t)
	stateDirs := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	single := f.start("single.yml", sharding.Shard{}, "")
	var shards []*fleetExporter
	for i, s := range shardsOf(t, 3, key) {
		shards = append(shards, f.start("sharded.yml", s, stateDirs[i]))
	}
	scrapeAll := func(xs []*fleetExporter) []map[string]float64 {
		out := make([]map[string]float64, len(xs))
		for i, x := range xs {
			out[i] = x.scrape()
		}
		return out
	}
	everyone := append([]*fleetExporter{single}, shards...)
	// The baseline, then a scrape that serves every series at 0.
	scrapeAll(everyone)
	scrapeAll(everyone)
	f.finishRuns(func(string, string) bool { return true })
	f.finishRuns(func(app, _ string) bool { return app != "app_0" })
	scrapeAll(everyone)
	samples := scrapeAll(everyone)

	// Exactly one shard exports each session, and the shard that owns it.
	want := perSession(samples[0], "aily_session_up")
	if len(want) != fleetApps*fleetSessions {
		t.Fatalf("the unsharded exporter exports %d sessions, want %d", len(want), fleetApps*fleetSessions)
	}
	for session := range want {
		app, id, _ := strings.Cut(session, "/")
		var by []int
		for i, s := range samples[1:] {
			if _, ok := perSession(s, "aily_session_up")[session]; ok {
				by = append(by, i)
				if !shards[i].shard.OwnsSession(app, id) {
					t.Errorf("shard %d exports session %s, which it does not own", i, session)
				}
			}
		}
		if len(by) != 1 {
			t.Errorf("session %s is exported by shards %v, want exactly one", session, by)
		}
	}
	for i, s := range samples[1:] {
		if s[fmt.Sprintf(`aily_exporter_shard_ordinal{shard="%d"}`, i)] != float64(i) || s[fmt.Sprintf(`aily_exporter_total_shards{shard="%d"}`, i)] != 3 {
			t.Errorf("shard %d does not export its ordinal and the total with its shard label", i)
		}
	}

	// With session keys each shard spends a third of each app's budget.
	for i, s := range samples[1:] {
		for _, app := range f.apps {
			want := float64(fleetBudget)
			if key == sharding.KeySession {
				want /= 3
			} else if !shards[i].shard.OwnsApp(app) {
				continue
			}
			if got := s[fmt.Sprintf(`aily_poll_budget_requests_per_day{app="%s", shard="%d"}`, app, i)]; got != want {
				t.Errorf("shard %d: app %s's daily budget is %v, want %v", i, app, got, want)
			}
		}
	}

	// The union of the shards' counts is the unsharded exporter's.
	union := map[string]float64{}
	for _, s := range samples[1:] {
		for k, v := range perSession(s, "aily_runs_finished_total") {
			union[k] += v
		}
	}
	single3 := perSession(samples[0], "aily_runs_finished_total")
	if total(single3) != float64(2*fleetApps*fleetSessions-fleetSessions) {
		t.Fatalf("the unsharded exporter counted %v runs, want %d", total(single3), 2*fleetApps*fleetSessions-fleetSessions)
	}
	for k, v := range single3 {
		if union[k] != v {
			t.Errorf("session %s: the shards counted %v finished runs, the unsharded exporter %v", k, union[k], v)
		}
	}

	// Together the shards ask the API what one exporter asks (tokens
	// aside: each shard gets its own).
	requests := func(fk *feishufake.Fake) int { return fk.Requests("list_runs") + fk.Requests("get_run") }
	got, one := requests(f.sharded), requests(f.single)
	t.Logf("%s keys: 3 shards made %d list and get-run requests, one exporter %d", key, got, one)
	if math.Abs(float64(got-one)) > 0.05*float64(one) {
		t.Errorf("3 shards made %d list and get-run requests, one exporter %d: more than 5%% apart", got, one)
	}

	// 3 → 4 shards: the three stop (saving their state) and start again as
	// three of four; the fourth starts afresh. Runs that finish meanwhile
	// are lost for the sessions that move (the documented cost), counted
	// by their owner for those that stay.
	for _, x := range shards {
		x.stop()
	}
	three, four := shardsOf(t, 3, key), shardsOf(t, 4, key)
	moved := func(app, id string) bool {
		for i := range three {
			if three[i].OwnsSession(app, id) != four[i].OwnsSession(app, id) {
				return true
			}
		}
		return false
	}
	gap := f.finishRuns(func(string, string) bool { return true })
	shards = shards[:0]
	for i, s := range four {
		shards = append(shards, f.start("sharded.yml", s, stateDirs[i]))
	}
	scrapeAll(shards)
	before := scrapeAll(shards)
	lost, kept, movedSessions := 0, 0, 0
	for k, n := range gap {
		app, id, _ := strings.Cut(k, "/")
		if moved(app, id) {
			lost += n
			movedSessions++
		} else {
			kept += n
		}
	}
	t.Logf("%s keys, 3 → 4 shards: %d of %d sessions moved; of the %d runs that finished while the shards restarted, %d (those of moved sessions) are not counted",
		key, movedSessions, len(gap), lost+kept, lost)
	added := f.finishRuns(func(string, string) bool { return true })
	scrapeAll(shards)
	after := scrapeAll(shards)

	// Sum over the shards of the increase of each series: the runs that
	// finished since the four shards' baseline, each once.
	increase := map[string]float64{}
	for i := range shards {
		b, a := perSession(before[i], "aily_runs_finished_total"), perSession(after[i], "aily_runs_finished_total")
		for k, v := range a {
			increase[k] += v - b[k]
		}
	}
	for k, n := range added {
		if app, id, _ := strings.Cut(k, "/"); increase[k] != float64(n) {
			t.Errorf("after 3 → 4 shards, session %s: the shards' increases add up to %v, want %d (moved: %v)",
				k, increase[k], n, moved(app, id))
		}
	}
	// The sessions that stayed carried on from their state: their runs
	// of the gap were counted, by their owner alone.
	for i, s := range before {
		for k, v := range perSession(s, "aily_runs_finished_total") {
			app, id, _ := strings.Cut(k, "/")
			if !four[i].OwnsSession(app, id) {
				t.Errorf("after 3 → 4 shards, shard %d exports session %s, which it does not own", i, k)
			}
			if want := single3[k] + float64(gap[k]); !moved(app, id) && v != want {
				t.Errorf("after 3 → 4 shards, session %s stayed on shard %d and counts %v finished runs, want %v", k, i, v, want)
			}
		}
	}
	if lost == 0 && key == sharding.KeySession {
		t.Error("no session moved from 3 to 4 shards: the test shows nothing")
	}
}

func total(m map[string]float64) float64 {
	n := 0.0
	for _, v := range m {
		n += v
	}
	return n
}

// ownedOf returns the sessions of app among ids that shard owns.
func ownedOf(shard sharding.Shard, app string, ids []string) map[string]bool {
	out := map[string]bool{}
	if !shard.OwnsApp(app) {
		return out
	}
	for _, id := range ids {
		if shard.Key == sharding.KeyApp || shard.OwnsSession(app, id) {
			out[id] = true
		}
	}
	return out
}

// exportedSessions are the session IDs of app whose aily_session_up the
// samples hold.
func exportedSessions(samples map[string]float64, app string) map[string]bool {
	out := map[string]bool{}
	for k := range perSession(samples, "aily_session_up") {
		if a, id, _ := strings.Cut(k, "/"); a == app {
			out[id] = true
		}
	}
	return out
}

// TestShardsShareOutTheSessionsOfASessionsURL: the sessions a sessions_url
// lists are shared out as configured ones are, at the first fetch and when
// the list changes: with session keys each shard polls and exports its
// share of them, with app keys only the app's owner fetches the URL at all.
func TestShardsShareOutTheSessionsOfASessionsURL(t *testing.T) {
	for _, key := range []sharding.Key{sharding.KeyApp, sharding.KeySession} {
		t.Run(string(key), func(t *testing.T) {
			f := newShardFleet(t)
			listed := func(from, to int) []string {
				var ids []string
				for i := from; i < to; i++ {
					ids = append(ids, fmt.Sprintf("discovered_%d", i))
				}
				return ids
			}
			asJSON := func(ids []string) string { return `["` + strings.Join(ids, `", "`) + `"]` }
			agent := newSessionsAgent(t, asJSON(listed(0, 24)))
			// Two apps, one with configured sessions, both with a sessions_url.
			cfg := "apps:\n"
			for _, app := range []string{"app_0", "app_1"} {
				cfg += fmt.Sprintf("  - name: %s\n    app_id: %s\n    app_secret: %s\n    base_url: %s\n    sessions_url: %s/%s\n    sessions_refresh_interval: 1h\n",
					app, fleetCredentials, fleetSecret, f.shardedURL, agent.srv.URL, app)
			}
			cfg += "    sessions: [configured_0, configured_1, configured_2, configured_3]\n"
			if err := os.WriteFile(filepath.Join(f.dir, "url.yml"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			shards := shardsOf(t, 2, key)
			var xs []*fleetExporter
			for _, s := range shards {
				xs = append(xs, f.start("url.yml", s, ""))
			}
			check := func(when string, ids map[string][]string) {
				t.Helper()
				for _, app := range []string{"app_0", "app_1"} {
					union := map[string]int{}
					for i, x := range xs {
						got := exportedSessions(x.scrape(), app)
						want := ownedOf(shards[i], app, ids[app])
						if fmt.Sprint(got) != fmt.Sprint(want) {
							t.Errorf("%s: shard %d exports the sessions %v of %s, want %v", when, i, got, app, want)
						}
						for id := range got {
							union[id]++
						}
					}
					if len(union) != len(ids[app]) {
						t.Errorf("%s: the shards export %d sessions of %s, want the %d configured and listed", when, len(union), app, len(ids[app]))
					}
					for id, n := range union {
						if n != 1 {
							t.Errorf("%s: session %s of %s is exported by %d shards", when, id, app, n)
						}
					}
					// With app keys the app's other shard has no source.
					for i, x := range xs {
						x.exporter.mu.Lock()
						_, fetching := x.exporter.discoveries[app]
						x.exporter.mu.Unlock()
						if fetching != shards[i].OwnsApp(app) {
							t.Errorf("%s: shard %d fetches the sessions_url of %s: %v, want %v", when, i, app, fetching, shards[i].OwnsApp(app))
						}
					}
				}
			}
			configured := []string{"configured_0", "configured_1", "configured_2", "configured_3"}
			check("first fetch", map[string][]string{"app_0": listed(0, 24), "app_1": append(listed(0, 24), configured...)})

			// The list changes: 8 sessions go, 16 come.
			agent.set(asJSON(listed(8, 40)), 0, false)
			for _, x := range xs {
				x.exporter.mu.Lock()
				sources := make([]*appDiscovery, 0, len(x.exporter.discoveries))
				for _, d := range x.exporter.discoveries {
					sources = append(sources, d)
				}
				x.exporter.mu.Unlock()
				for _, d := range sources {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					err := d.source.Refresh(ctx)
					cancel()
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			check("after the list changed", map[string][]string{"app_0": listed(8, 40), "app_1": append(listed(8, 40), configured...)})
		})
	}
}

// TestAShardSavesOnlyWhatItOwns: a shard that starts on the state of an
// exporter that watched everything (of the current format, or of version 1,
// migrated) carries on with the sessions it owns, counts and all, and at
// once saves a state without the apps and sessions it does not own.
func TestAShardSavesOnlyWhatItOwns(t *testing.T) {
	f := newShardFleet(t)
	dir := t.TempDir()
	whole := f.start("sharded.yml", sharding.Shard{}, dir)
	whole.scrape()
	whole.scrape()
	f.finishRuns(func(string, string) bool { return true })
	whole.scrape()
	counted := perSession(whole.scrape(), "aily_runs_finished_total")
	whole.stop()
	if total(counted) != fleetApps*fleetSessions {
		t.Fatalf("the unsharded exporter counted %v runs, want %d", total(counted), fleetApps*fleetSessions)
	}
	v2, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	v1 := stateOfVersion1(t, v2)

	for _, tc := range []struct {
		name  string
		file  []byte
		key   sharding.Key
		shard int
	}{
		{"version 2, app keys", v2, sharding.KeyApp, 0},
		{"version 2, session keys", v2, sharding.KeySession, 1},
		{"version 1, app keys", v1, sharding.KeyApp, 1},
		{"version 1, session keys", v1, sharding.KeySession, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shard, err := sharding.New(tc.shard, 2, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "state.json"), tc.file, 0o600); err != nil {
				t.Fatal(err)
			}
			x := f.start("sharded.yml", shard, dir)
			defer x.stop() // before dir goes

			// Saved at start, before any scrape: only what the shard owns.
			st := savedState(t, dir)
			owned := 0
			for _, app := range f.apps {
				owned += len(ownedOf(shard, app, f.sessions[app]))
			}
			if len(st.Sessions) != owned || owned == 0 || owned == fleetApps*fleetSessions {
				t.Errorf("the state saved at start holds %d sessions, want the %d of %d the shard owns", len(st.Sessions), owned, fleetApps*fleetSessions)
			}
			for _, r := range st.Sessions {
				if !ownedOf(shard, r.App, []string{r.ID})[r.ID] {
					t.Errorf("the state saved at start holds session %s/%s, which the shard does not own", r.App, r.ID)
				}
				finished := 0.0
				if r.Counts != nil {
					for _, n := range r.Counts.Finished {
						finished += n
					}
				}
				if finished != 1 {
					t.Errorf("session %s/%s is saved without the run it counted: %+v", r.App, r.ID, r.Counts)
				}
			}
			for _, a := range st.Apps {
				if !shard.OwnsApp(a.Name) {
					t.Errorf("the state saved at start holds app %s, which the shard does not own", a.Name)
				}
			}

			// The owned sessions carry on with their counts; no other is served.
			got := perSession(x.scrape(), "aily_runs_finished_total")
			for k, v := range got {
				app, id, _ := strings.Cut(k, "/")
				if !ownedOf(shard, app, []string{id})[id] {
					t.Errorf("the shard serves session %s, which it does not own", k)
				} else if v != counted[k] {
					t.Errorf("session %s: %v finished runs after the restart, want the %v counted before", k, v, counted[k])
				}
			}
			if len(got) != owned {
				t.Errorf("the shard serves the counts of %d sessions, want %d", len(got), owned)
			}
		})
	}
}

// savedState reads the state file in dir as the exporter does at start.
func savedState(t *testing.T, dir string) *watch.State {
	t.Helper()
	s, err := OpenStorage(dir, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if s.pending == nil {
		t.Fatalf("no usable state in %s", dir)
	}
	return s.pending
}

// stateOfVersion1 rewrites a state file of version 2 in version 1's form:
// each session's counts and holding beside its record rather than in it.
func stateOfVersion1(t *testing.T, file []byte) []byte {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(file, &env); err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(env["data"], &data); err != nil {
		t.Fatal(err)
	}
	var sessions []map[string]json.RawMessage
	if err := json.Unmarshal(data["sessions"], &sessions); err != nil {
		t.Fatal(err)
	}
	old := make([]map[string]json.RawMessage, 0, len(sessions))
	for _, r := range sessions {
		s := map[string]json.RawMessage{}
		for _, k := range []string{"counts", "holding"} {
			if v, ok := r[k]; ok {
				s[k] = v
				delete(r, k)
			}
		}
		s["watch"] = mustJSON(t, r)
		old = append(old, s)
	}
	data["sessions"] = mustJSON(t, old)
	env["data"] = mustJSON(t, data)
	env["version"] = json.RawMessage("1")
	env["data_crc32c"] = mustJSON(t, fmt.Sprintf("%08x", crc32.Checksum(env["data"], crc32.MakeTable(crc32.Castagnoli))))
	return mustJSON(t, env)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkShards is 100 apps × 100 sessions (one finished run each at
// first) against a loopback fake, watched by one exporter, and by the same
// configuration over 4 shards with app keys (four exporters in this process,
// --shard=0..3 --total-shards=4); with the apps' per_session left to its
// default (true: 100 sessions) and set to false. docs/performance.md
// ("Sharding: 100 apps × 100 sessions") has the figures, and why the flags
// are these:
//
//	go test -run '^$' -bench BenchmarkShards -benchtime 1x -benchmem ./internal/exporter/
//
// Every session is polled at every scrape (no min interval, idle sessions
// always due): the most a scrape can do. The rate limit and the daily budget
// are off (--feishu.rate-limit 0 --poll.daily-budget 0), so that a scrape
// measures the work of polling and answering, not the wait for the limiter;
// -shards.rate-limit and -shards.concurrency (after -args) set
// --feishu.rate-limit and --feishu.concurrency.
//
// Each exporter first scrapes until every session it owns has its baseline
// (not timed). Then each iteration puts one new final run in a tenth of the
// sessions and scrapes the exporters over HTTP as Prometheus does, one after
// the other: each shard alone on the machine, as it would be on its own.
// Reported per iteration: the slowest exporter's scrape (what a scrape of
// the shards takes when each has a machine of its own), the process's CPU
// time (getrusage; the fake's side of the exchanges and the reading of the
// answers included) in all and per app, the requests that reached the fake
// and the series answered; and once, the exporters' live heap per app (what
// a GC frees when they are dropped, their connections closed first: neither
// the fake's heap nor the connections' buffers). Each exporter's figures are
// logged.
func BenchmarkShards(b *testing.B) {
	for _, perSession := range []bool{true, false} {
		for _, total := range []int{1, 4} {
			b.Run(fmt.Sprintf("per_session=%t/shards=%d", perSession, total), func(b *testing.B) {
				benchShards(b, perSession, total)
			})
		}
	}
}

// BenchmarkShards' --feishu.rate-limit and --feishu.concurrency.
var (
	shardsRateLimit   = flag.Float64("shards.rate-limit", 0, "BenchmarkShards' --feishu.rate-limit (0: none)")
	shardsConcurrency = flag.Int("shards.concurrency", watch.DefaultConcurrency, "BenchmarkShards' --feishu.concurrency")
)

func benchShards(b *testing.B, perSession bool, total int) {
	const apps, sessions = 100, 100
	fake := feishufake.New(feishufake.Options{})
	fake.AddApp(fleetCredentials, fleetSecret)
	api := httptest.NewServer(fake)
	defer api.Close()
	ids := make([][]string, apps) // by app
	var yml strings.Builder
	yml.WriteString("apps:\n")
	then := time.Now().Add(-time.Hour)
	for a := range apps {
		app := fmt.Sprintf("app_%d", a)
		for s := range sessions {
			// The fake's sessions are global: an app's are its own by name.
			id := fmt.Sprintf("%s_session_%d", app, s)
			ids[a] = append(ids[a], id)
			fake.PutRun(feishu.Run{ID: "run_" + id, AppID: "spring_demo__c", SessionID: id, Status: feishu.StatusCompleted,
				CreatedAt: then, StartedAt: then, EndedAt: then.Add(time.Second)})
		}
		fmt.Fprintf(&yml, "  - name: %s\n    app_id: %s\n    app_secret: %s\n    base_url: %s\n    sessions: [%s]\n",
			app, fleetCredentials, fleetSecret, api.URL, strings.Join(ids[a], ", "))
		if !perSession {
			yml.WriteString("    per_session: false\n")
		}
	}
	path := filepath.Join(b.TempDir(), "aily.yml")
	if err := os.WriteFile(path, []byte(yml.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	runs := 0
	// newRuns puts one new final run in every tenth session, a different
	// tenth each time.
	newRuns := func() {
		now := time.Now()
		turn := runs / (apps * sessions / 10)
		for _, app := range ids {
			for s, id := range app {
				if (s+turn)%10 != 0 {
					continue
				}
				runs++
				status := feishu.StatusCompleted
				if runs%5 == 0 {
					status = feishu.StatusFailed
				}
				fake.PutRun(feishu.Run{ID: fmt.Sprintf("run_%d", runs), AppID: "spring_demo__c", SessionID: id,
					Status: status, CreatedAt: now, StartedAt: now, EndedAt: now})
			}
		}
	}
	requests := func() int {
		return fake.Requests("list_runs") + fake.Requests("get_run") + fake.Requests("tenant_token")
	}

	shards := make([]*benchShard, total)
	for i, shard := range shardsOf(b, total, sharding.KeyApp) {
		logger := testkit.Logger(io.Discard, "warn")
		e := New(Options{
			Logger: logger,
			Shard:  shard,
			Source: func() (*config.Config, error) { return config.Load(path) },
			// --poll.daily-budget 0 is dailyBudget's zero.
			Clients: ClientOptions{Timeout: 10 * time.Second, PageSize: 50, RateLimit: *shardsRateLimit, Concurrency: *shardsConcurrency},
			Watch: watch.Options{MinInterval: -1, IdleInterval: time.Nanosecond,
				RateLimit: *shardsRateLimit, Concurrency: *shardsConcurrency},
		})
		if err := e.Reload(); err != nil {
			b.Fatal(err)
		}
		shards[i] = &benchShard{exporter: e, client: &http.Client{},
			server: httptest.NewServer(e.Routes(RouteOptions{TelemetryPath: "/metrics", TimeoutOffset: time.Second}))}
	}
	defer func() {
		for _, s := range shards {
			s.close()
		}
	}()
	for _, s := range shards {
		s.baseline(b)
	}

	for b.Loop() {
		b.StopTimer()
		newRuns()
		b.StartTimer()
		for _, s := range shards {
			r0, c0, t0 := requests(), testkit.CPUTime(), time.Now()
			s.scrape(b)
			s.wall += time.Since(t0)
			s.cpu += testkit.CPUTime() - c0
			s.requests += requests() - r0
		}
	}

	// Each exporter's live heap: what a GC frees once it is dropped. The
	// connections to the fake are closed first, on both ends, so that their
	// buffers are not counted (nor do their transports keep the exporters).
	api.CloseClientConnections()
	time.Sleep(50 * time.Millisecond) // let the connections' goroutines end
	heap := testkit.LiveHeap()
	// Each exporter is told to be freed, or its figure would be wrong.
	var freed atomic.Int32
	for _, s := range shards {
		runtime.AddCleanup(s.exporter, func(int) { freed.Add(1) }, 0)
	}
	for _, s := range shards {
		s.close()
		after := testkit.LiveHeap()
		s.heap, heap = int64(heap)-int64(after), after
	}
	for deadline := time.Now().Add(time.Second); freed.Load() < int32(total) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := freed.Load(); n < int32(total) {
		b.Errorf("%d of %d exporters still live after they were dropped: their heap is not measured", int32(total)-n, total)
	}
	var slowest, cpu time.Duration
	var reqs, series int
	var heapAll int64
	n := float64(b.N)
	for i, s := range shards {
		slowest = max(slowest, s.wall)
		cpu += s.cpu
		reqs += s.requests
		series += s.series
		heapAll += s.heap
		a := float64(s.apps)
		b.Logf("shard %d of %d: %d apps, %d sessions, %d series: %.0f ms a scrape, %.0f ms CPU (%.1f ms an app), %.0f requests, %.0f KiB live heap an app",
			i, total, s.apps, s.sessions, s.series, testkit.Millis(s.wall)/n, testkit.Millis(s.cpu)/n, testkit.Millis(s.cpu)/n/a, float64(s.requests)/n, float64(s.heap)/1024/a)
	}
	b.ReportMetric(testkit.Millis(slowest)/n, "scrape-ms")
	b.ReportMetric(testkit.Millis(cpu)/n, "cpu-ms/op")
	b.ReportMetric(testkit.Millis(cpu)/n/apps, "cpu-ms/app")
	b.ReportMetric(float64(reqs)/n, "requests/op")
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(heapAll)/1024/apps, "heap-KiB/app")
}

// benchShard is one exporter of BenchmarkShards and what it measured.
type benchShard struct {
	exporter *Exporter
	server   *httptest.Server
	client   *http.Client

	apps, sessions, series int // owned; answered by the last scrape
	wall, cpu              time.Duration
	requests               int
	heap                   int64
}

// baseline scrapes until every session the exporter owns has its baseline.
func (s *benchShard) baseline(b *testing.B) {
	for range 5 {
		s.scrape(b)
		apps := map[string]bool{}
		s.sessions = 0
		pending := 0
		s.exporter.watcher.EachSnapshot(func(snap *watch.Snapshot) {
			apps[snap.App] = true
			s.sessions++
			if snap.LastSuccess.IsZero() {
				pending++
			}
		})
		s.apps = len(apps)
		if pending == 0 {
			return
		}
	}
	b.Fatal("sessions still without a baseline after 5 scrapes")
}

// scrape gets /metrics as Prometheus does, with a 60 s timeout, and reads
// the answer to the end.
func (s *benchShard) scrape(b *testing.B) {
	req, _ := http.NewRequest(http.MethodGet, s.server.URL+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "60")
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3")
	req.Header.Set("Accept-Encoding", "gzip") // and read compressed, as Prometheus reads it
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	s.series = s.exporter.collector.AnswerCost().Series
}

func (s *benchShard) close() {
	if s.server == nil {
		return
	}
	s.server.Close()
	s.client.CloseIdleConnections()
	s.exporter.Close()
	s.server, s.client, s.exporter = nil, nil, nil
}
