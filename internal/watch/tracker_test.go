package watch

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	testruns "github.com/aily-exporter/aily_exporter/internal/testkit/runs"
)

// The package's tests use the shared epoch and run builder under short
// names: t0 is when the session began to be watched, at(sec) is t0 shifted,
// run builds a run (times in seconds from t0), none leaves a time out.
var (
	t0   = testkit.T0
	at   = testkit.At
	run  = testruns.New
	none = testruns.None
)

// event is what a test expects one listing to count: run ID plus the time
// observed (-1 when the run is counted but untimed).
type event struct {
	ID      string
	Seconds float64
}

type counted struct {
	Finished []event
	Started  []event
	Created  []string
}

func summary(o Observation) counted {
	var c counted
	conv := func(ts []runTiming) []event {
		var out []event
		for _, t := range ts {
			s := -1.0
			if t.Timed {
				s = t.Seconds
			}
			out = append(out, event{t.Run.ID, s})
		}
		return out
	}
	c.Finished = conv(o.Finished)
	c.Started = conv(o.Started)
	for _, r := range o.Created {
		c.Created = append(c.Created, r.ID)
	}
	return c
}

const (
	queued     = feishu.StatusQueued
	inProgress = feishu.StatusInProgress
	completed  = feishu.StatusCompleted
	failed     = feishu.StatusFailed
)

// step is one successful listing, taken at now (seconds from t0), and what it
// must count.
type step struct {
	now     float64
	listing []feishu.Run
	want    counted
}

func TestTrackerExactlyOnce(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		// wantLen, when not -1, is how many runs the tracker remembers at the end.
		wantLen int
	}{
		{
			name: "run finishing between scrapes is counted once",
			steps: []step{
				{now: 10, listing: []feishu.Run{run("r1", inProgress, 5, 6, none)},
					want: counted{Started: []event{{"r1", 1}}, Created: []string{"r1"}}},
				{now: 20, listing: []feishu.Run{run("r1", completed, 5, 6, 16)},
					want: counted{Finished: []event{{"r1", 10}}}},
				{now: 30, listing: []feishu.Run{run("r1", completed, 5, 6, 16)}},
				{now: 40, listing: []feishu.Run{run("r1", completed, 5, 6, 16)}},
			},
			wantLen: 1,
		},
		{
			name: "run seen twice in one listing is counted once",
			steps: []step{
				{now: 10, listing: nil},
				{now: 20, listing: []feishu.Run{
					run("r1", completed, 11, 12, 15),
					run("r2", completed, 13, 13, 14),
					run("r1", completed, 11, 12, 15), // a shifted page shows it again
				}, want: counted{
					Finished: []event{{"r1", 3}, {"r2", 1}},
					Started:  []event{{"r1", 1}, {"r2", 0}},
					Created:  []string{"r1", "r2"},
				}},
			},
			wantLen: 2,
		},
		{
			name: "run final before watching began is not counted",
			steps: []step{
				{now: 1, listing: []feishu.Run{run("old", completed, -100, -90, -50)}},
				{now: 10, listing: []feishu.Run{run("old", completed, -100, -90, -50)}},
			},
			wantLen: 1,
		},
		{
			name: "run final after the watch began is counted at the baseline",
			steps: []step{
				// Configured at t0, first listed successfully at 30 (earlier
				// listings failed): r1 ended at 20, while watched.
				{now: 30, listing: []feishu.Run{
					run("r1", failed, -10, -5, 20),
					run("old", completed, -10, -5, -1),
				}, want: counted{Finished: []event{{"r1", 25}}}},
			},
			wantLen: 2,
		},
		{
			name: "run in flight at start is counted when it finishes",
			steps: []step{
				{now: 1, listing: []feishu.Run{
					run("r1", inProgress, -60, -50, none),
					run("q1", queued, -30, none, none),
				}},
				{now: 10, listing: []feishu.Run{
					run("r1", completed, -60, -50, 5),
					run("q1", inProgress, -30, 8, none),
				}, want: counted{Finished: []event{{"r1", 55}}, Started: []event{{"q1", 38}}}},
				{now: 20, listing: []feishu.Run{
					run("r1", completed, -60, -50, 5),
					run("q1", completed, -30, 8, 18),
				}, want: counted{Finished: []event{{"q1", 10}}}},
			},
			wantLen: 2,
		},
		{
			name: "a restart starts at zero with no jump",
			// A new tracker (a restarted exporter) watching since t0 sees
			// runs that an earlier process already counted.
			steps: []step{
				{now: 1, listing: []feishu.Run{
					run("a", completed, -300, -290, -200),
					run("b", failed, -250, -240, -100),
					run("c", inProgress, -50, -40, none),
					run("d", queued, -5, none, none),
				}},
				{now: 10, listing: []feishu.Run{
					run("a", completed, -300, -290, -200),
					run("b", failed, -250, -240, -100),
					run("c", completed, -50, -40, 5),
					run("d", inProgress, -5, 6, none),
				}, want: counted{Finished: []event{{"c", 45}}, Started: []event{{"d", 11}}}},
			},
			// a and b are history, older than the watermark by more than the
			// settle window: known by their created_at, not remembered.
			wantLen: 2,
		},
		{
			name: "negative duration counts as 0",
			steps: []step{
				{now: 1, listing: nil},
				{now: 10, listing: []feishu.Run{run("skew", completed, 5, 4, 3)},
					want: counted{
						Finished: []event{{"skew", 0}},
						Started:  []event{{"skew", 0}},
						Created:  []string{"skew"},
					}},
			},
			wantLen: 1,
		},
		{
			name: "missing timestamps leave the run out of the histograms only",
			steps: []step{
				{now: 1, listing: []feishu.Run{run("r1", inProgress, 0.5, none, none)},
					want: counted{Created: []string{"r1"}}},
				{now: 10, listing: []feishu.Run{
					run("r1", completed, 0.5, none, 8), // never had a started_at
					run("r2", failed, 2, 3, none),      // no ended_at
					run("r3", completed, none, 4, 6),   // no created_at
				}, want: counted{
					Finished: []event{{"r1", -1}, {"r2", -1}, {"r3", 2}},
					Started:  []event{{"r2", 1}, {"r3", -1}},
					Created:  []string{"r2", "r3"},
				}},
			},
			wantLen: 3,
		},
		{
			name: "status change after final is not counted again",
			steps: []step{
				{now: 1, listing: []feishu.Run{run("r1", inProgress, 0.5, 0.5, none)},
					want: counted{Started: []event{{"r1", 0}}, Created: []string{"r1"}}},
				{now: 10, listing: []feishu.Run{run("r1", failed, 0.5, 0.5, 5.5)},
					want: counted{Finished: []event{{"r1", 5}}}},
				{now: 20, listing: []feishu.Run{run("r1", completed, 0.5, 0.5, 15)}},
				{now: 30, listing: []feishu.Run{run("r1", inProgress, 0.5, 0.5, none)}},
			},
			wantLen: 1,
		},
		{
			name: "final run listed again after falling behind the watermark is not counted again",
			steps: []step{
				{now: 1, listing: []feishu.Run{run("r1", inProgress, 0.5, 0.5, none)},
					want: counted{Started: []event{{"r1", 0}}, Created: []string{"r1"}}},
				{now: 10, listing: []feishu.Run{run("r1", completed, 0.5, 0.5, 5.5)},
					want: counted{Finished: []event{{"r1", 5}}}},
				{now: 20, listing: nil},
				{now: 35, listing: []feishu.Run{run("r1", completed, 0.5, 0.5, 5.5)}},
				// r2 moves the watermark more than the settle window past r1,
				// which is then forgotten; listed again it is history.
				{now: 70, listing: []feishu.Run{
					run("r1", completed, 0.5, 0.5, 5.5),
					run("r2", completed, 65, 66, 68),
				}, want: counted{
					Finished: []event{{"r2", 2}},
					Started:  []event{{"r2", 1}},
					Created:  []string{"r2"},
				}},
				{now: 80, listing: []feishu.Run{run("r1", completed, 0.5, 0.5, 5.5)}},
			},
			wantLen: 1,
		},
		{
			name: "run in flight missing from two full listings is forgotten, uncounted",
			steps: []step{
				{now: 1, listing: []feishu.Run{run("r1", inProgress, 0.5, 0.5, none)},
					want: counted{Started: []event{{"r1", 0}}, Created: []string{"r1"}}},
				{now: 10, listing: nil}, // once: maybe a page that shifted
				{now: 20, listing: []feishu.Run{run("r1", inProgress, 0.5, 0.5, none)}},
				{now: 30, listing: nil},
				{now: 40, listing: nil}, // twice in a row: the API stopped listing it
			},
			wantLen: 0,
		},
		{
			name: "forgotten run that ended before the watch began is not counted when it reappears",
			steps: []step{
				{now: 1, listing: []feishu.Run{run("old", completed, -100, -90, -50)}},
				{now: 10, listing: nil},
				{now: 20, listing: nil},
				{now: 30, listing: nil},
				{now: 40, listing: []feishu.Run{run("old", completed, -100, -90, -50)}},
			},
			wantLen: 1,
		},
		{
			name: "run first listed after the baseline but ended before the watch began is not counted",
			// Hidden from the baseline listing (a shifted page), it is history.
			steps: []step{
				{now: 1, listing: nil},
				{now: 10, listing: []feishu.Run{run("hidden", completed, -100, -90, -50)}},
			},
			wantLen: 1,
		},
		{
			name: "unknown status is kept and not final",
			steps: []step{
				{now: 1, listing: []feishu.Run{run("r1", "PAUSED", 0.5, 0.6, none)},
					want: counted{Started: []event{{"r1", 0.1}}, Created: []string{"r1"}}},
				{now: 10, listing: []feishu.Run{run("r1", "PAUSED", 0.5, 0.6, none)}},
				{now: 20, listing: []feishu.Run{run("r1", completed, 0.5, 0.6, 15)},
					want: counted{Finished: []event{{"r1", 14.4}}}},
			},
			wantLen: 1,
		},
		{
			name: "run created and finished between scrapes is counted once",
			steps: []step{
				{now: 1, listing: nil},
				{now: 10, listing: []feishu.Run{run("r1", completed, 2, 3, 7)},
					want: counted{Finished: []event{{"r1", 4}}, Started: []event{{"r1", 1}}, Created: []string{"r1"}}},
				{now: 20, listing: []feishu.Run{run("r1", completed, 2, 3, 7)}},
			},
			wantLen: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(t0)
			for i, s := range tt.steps {
				got := summary(fullListing(tr, s.listing, at(s.now)))
				if diff := cmp.Diff(s.want, got, cmp.Comparer(approx)); diff != "" {
					t.Errorf("listing %d (at t0+%gs): counted (-want +got):\n%s", i, s.now, diff)
				}
			}
			if tt.wantLen >= 0 && tr.len() != tt.wantLen {
				t.Errorf("tracker remembers %d runs, want %d", tr.len(), tt.wantLen)
			}
		})
	}
}

// fullListing feeds a complete listing to the tracker, as a poll that lists
// every page does, and returns what it counted.
func fullListing(tr *tracker, runs []feishu.Run, now time.Time) Observation {
	var obs Observation
	tr.startSweep()
	for i := range runs {
		tr.see(&runs[i], true, &obs)
	}
	tr.endSweep(now)
	return obs
}

// incremental feeds the runs an incremental listing reads (the new ones and
// those in flight) and returns what they counted.
func incremental(tr *tracker, runs []feishu.Run, now time.Time) Observation {
	var obs Observation
	tr.beginPass()
	for i := range runs {
		tr.see(&runs[i], false, &obs)
	}
	tr.advance(now)
	return obs
}

func approx(a, b float64) bool {
	d := a - b
	return d < 1e-9 && d > -1e-9
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
