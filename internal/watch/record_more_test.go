package watch

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// roundTrip encodes a record as the state file does and decodes it again.
func roundTrip(t *testing.T, r TrackerRecord) TrackerRecord {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back TrackerRecord
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

func TestBackoffDoublesUpToTheIdleInterval(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, 5 * time.Second}, {2, 10 * time.Second}, {3, 20 * time.Second}, {6, 160 * time.Second}, {7, 300 * time.Second}, {50, 300 * time.Second}} {
		if got := backoff(5*time.Second, 5*time.Minute, tc.n); got != tc.want {
			t.Errorf("after %d failures: %v, want %v", tc.n, got, tc.want)
		}
	}
	if got := backoff(0, time.Minute, 1); got != time.Second {
		t.Errorf("with no min interval: %v, want 1s", got)
	}
}

func TestIDSetIsASliceWhileSmall(t *testing.T) {
	var s idSet
	base := t0
	for i := range smallSet {
		s.add(string(rune('a'+i)), base.Add(time.Duration(i)*time.Second))
	}
	if s.big != nil || s.len() != smallSet {
		t.Fatalf("%d IDs: map %v, len %d; want a slice of %d", smallSet, s.big != nil, s.len(), smallSet)
	}
	s.add("extra", base.Add(time.Hour))
	if s.big == nil || s.len() != smallSet+1 || !s.has("a") || !s.has("extra") {
		t.Fatalf("%d IDs: map %v, len %d; want a map holding them all", smallSet+1, s.big != nil, s.len())
	}
	// Pruned to one more than half the slice's size it stays a map; to half,
	// it is a slice again.
	s.pruneBefore(base.Add(time.Duration(smallSet/2) * time.Second))
	if s.big == nil || s.len() != smallSet/2+1 || s.has("a") || !s.has("extra") {
		t.Errorf("after pruning to %d IDs: map %v, len %d; want a map", smallSet/2+1, s.big != nil, s.len())
	}
	s.pruneBefore(base.Add(time.Duration(smallSet/2+1) * time.Second))
	if s.big != nil || s.len() != smallSet/2 || !s.has("extra") {
		t.Errorf("after pruning to %d IDs: map %v, len %d; want a slice", smallSet/2, s.big != nil, s.len())
	}
	// One created exactly at the horizon stays: only older ones go.
	var e idSet
	e.add("edge", base)
	e.pruneBefore(base)
	if !e.has("edge") {
		t.Error("an ID created exactly at the horizon was pruned")
	}
}
