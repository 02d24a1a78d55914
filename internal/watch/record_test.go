package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// restart saves the watcher's state through JSON, as the state file does,
// and returns a new watcher carrying on from it, as after a restart.
func restart(t *testing.T, w *Watcher, apps []App, clock func() time.Time, rec Recorder) *Watcher {
	t.Helper()
	st, _, _, _ := w.state()
	saved, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var restored State
	if err := json.Unmarshal(saved, &restored); err != nil {
		t.Fatal(err)
	}
	w2 := NewRecorded(Options{Now: clock, MinInterval: time.Second, IdleInterval: time.Second}, rec)
	if err := w2.Restore(&restored, apps); err != nil {
		t.Fatal(err)
	}
	w2.SetApps(apps)
	return w2
}

// records returns the records of w's sessions, as a save writes them.
func records(w *Watcher) []*Record {
	st, _, _, _ := w.state()
	return st.Sessions
}

type countRecorder struct {
	finished map[string]int
	created  map[string]int
}

func (c *countRecorder) Record(_ *Session, obs *Observation) {
	for _, f := range obs.Finished {
		c.finished[f.Run.ID]++
	}
	for _, r := range obs.Created {
		c.created[r.ID]++
	}
}

func TestRestartCarriesOnWithoutABaseline(t *testing.T) {
	for _, o := range orders {
		t.Run(o.String(), func(t *testing.T) {
			mem := newMemAPI(o, 10)
			runs := longHistory(200, 100) // a run in flight deep in history
			mem.put(runs...)
			now := t0
			clock := func() time.Time { return now }
			rec := &countRecorder{finished: map[string]int{}, created: map[string]int{}}
			apps := []App{{Name: "a", API: mem, Sessions: []string{"s1"}}}
			w := NewRecorded(Options{Now: clock, MinInterval: time.Second, IdleInterval: time.Second}, rec)
			w.SetApps(apps)
			w.Poll(context.Background())
			mem.put(run("r1", inProgress, 5, 5, none))
			now = at(10)
			w.Poll(context.Background())
			mem.requests()

			// Down: r1 and the deep run finish, a new run comes and goes.
			deep := runs[100]
			deep.Status, deep.EndedAt = completed, at(15)
			mem.put(deep, run("r1", failed, 5, 5, 16), run("r2", completed, 17, 17, 18))
			w = restart(t, w, apps, clock, rec)
			now = at(30)
			w.Poll(context.Background())
			if lists, gets := mem.requests(); lists+gets > 2 {
				t.Errorf("first poll after the restart made %d list and %d get requests, want the incremental price (at most 2)", lists, gets)
			}
			for _, id := range []string{deep.ID, "r1", "r2"} {
				if rec.finished[id] != 1 {
					t.Errorf("run %s counted finished %d times, want once", id, rec.finished[id])
				}
			}
			if len(rec.finished) != 3 || rec.created["r1"] != 1 || rec.created["r2"] != 1 {
				t.Errorf("finished %v, created %v: want r1, r2 and the deep run, each once", rec.finished, rec.created)
			}
		})
	}
}

func TestRestoreDropsSessionsNoLongerConfigured(t *testing.T) {
	mem := newMemAPI(newestFirst, 10)
	mem.put(run("x", completed, -5, -5, -4))
	clock := func() time.Time { return t0 }
	rec := &countRecorder{finished: map[string]int{}, created: map[string]int{}}
	w := NewRecorded(Options{MinInterval: flagMinInterval, Now: clock}, rec)
	w.SetApps([]App{{Name: "a", API: mem, Sessions: []string{"s1", "s2"}}})
	w = restart(t, w, []App{{Name: "a", API: mem, Sessions: []string{"s1"}}}, clock, rec)
	var got []string
	for _, r := range records(w) {
		got = append(got, r.App+"/"+r.ID)
	}
	if fmt.Sprint(got) != "[a/s1]" {
		t.Errorf("records after the restart: %v, want only a/s1", got)
	}
}

func TestRestoreOfAMalformedRecordStartsTheSessionAfresh(t *testing.T) {
	clock := func() time.Time { return t0 }
	w := NewRecorded(Options{MinInterval: flagMinInterval, Now: clock}, &countRecorder{})
	apps := []App{{Name: "a", API: newMemAPI(newestFirst, 10), Sessions: []string{"s1"}}}
	st := &State{Apps: []AppRecord{{Name: "a"}}, Sessions: []*Record{{App: "a", ID: "s1", Tracker: TrackerRecord{WatchStart: 0}}}}
	if err := w.Restore(st, apps); err != nil {
		t.Fatal(err)
	}
	w.SetApps(apps)
	if rs := records(w); len(rs) != 1 || rs[0].Tracker.WatchStart != t0.UnixMilli() || rs[0].Tracker.Baselined {
		t.Errorf("records %+v, want s1 started afresh at t0", rs)
	}
}

// roundTrip encodes a record as the state file does and decodes it again.
func roundTrip(t *testing.T, r TrackerRecord) (back TrackerRecord) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return back
}

func TestTrackerRecordKeepsEverythingThroughJSON(t *testing.T) {
	tr := newTracker(t0)
	var obs Observation
	tr.startSweep()
	for _, r := range []feishu.Run{
		run("a-started", inProgress, 1, 2, none),
		run("b-queued", queued, 3, none, none),
		run("c-final", completed, 4, 5, 6),
		run("d-undated", inProgress, none, 7, none),
	} {
		tr.see(&r, true, &obs)
	}
	tr.setPosition("a-started", 41)
	tr.inflight["b-queued"].missed = 1
	tr.inflight["a-started"].seenBySweep = false
	tr.countedAtBaseline = map[string]struct{}{"c-final": {}}
	tr.sweep.finished["z-done"] = feishu.StatusFailed
	want := tr.record()
	got := roundTrip(t, want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("record changed through JSON (-want +got):\n%s", diff)
	}
	back, err := trackerFromRecord(&got)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, back.record()); diff != "" {
		t.Errorf("a tracker restored from its record differs (-want +got):\n%s", diff)
	}
	for _, flags := range [][3]bool{{true, false, false}, {false, true, false}, {false, false, true}, {true, true, true}} {
		r := InFlightRecord{ID: "r", Started: flags[0], InSweep: flags[1], SeenBySweep: flags[2]}
		var back InFlightRecord
		b, _ := json.Marshal(r)
		if err := json.Unmarshal(b, &back); err != nil || back != r {
			t.Errorf("flags %v: %s decodes to %+v (%v)", flags, b, back, err)
		}
	}
}

func TestInFlightRecordOfLongFieldsEncodes(t *testing.T) {
	for _, r := range []InFlightRecord{
		{ID: strings.Repeat("i", 200), Status: "IN_PROGRESS"},
		{ID: "r", Status: strings.Repeat("S", 200)},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back InFlightRecord
		if err := json.Unmarshal(b, &back); err != nil || back != r {
			t.Errorf("%.20s…: decodes to %.20s… (%v)", b, back.ID, err)
		}
	}
}

func TestIDsAndStatusesEncodeAsEncodingJSONWould(t *testing.T) {
	for _, s := range []string{"run_4dfrxvctjqzzj", "", `"`, `\`, "<", ">", "&", "\x01", "\x7f", "é", "运行", "a b", "\u2028", "\xff"} {
		want, _ := json.Marshal(s)
		if got := string(appendJSONString(nil, s)); got != string(want) {
			t.Errorf("%q encodes as %s, want %s", s, got, want)
		}
	}
}

func TestRecentRunsKeepTheirCreatedAtThroughARecord(t *testing.T) {
	tr := newTracker(t0)
	fullListing(tr, []feishu.Run{run("x", completed, 10.5, 11, 12)}, at(20))
	rec := tr.record()
	if len(rec.Recent) != 1 || rec.Recent[0].Created != at(10.5).UnixMilli() {
		t.Fatalf("recent runs in the record: %+v, want x created at %d", rec.Recent, at(10.5).UnixMilli())
	}
}
