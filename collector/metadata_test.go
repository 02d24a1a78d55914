package collector

import (
	"context"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/feishu/feishufake"
	"github.com/aily-exporter/aily_exporter/internal/testkit"
	"github.com/aily-exporter/aily_exporter/internal/testkit/runs"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// withMetadata returns r with the metadata.
func withMetadata(r feishu.Run, metadata string) feishu.Run {
	r.Metadata = metadata
	return r
}

// TestMetadataLabelsOfASummedAppWaitAgainAfterARestart: the series of label
// values whose first increment was held when the state was saved are served
// at zero again after a restart before it shows, as a held error code is.
func TestMetadataLabelsOfASummedAppWaitAgainAfterARestart(t *testing.T) {
	clk := feishufake.NewClock(testkit.T0)
	lister := newMemLister()
	lister.set("s1")
	saver := &memSaver{}
	apps := []watch.App{{Name: "b", API: lister, Identity: "cli_b", Sessions: []string{"s1"}, MetadataLabels: []string{"skill"}}}
	c := newTestCollector(t, clk, nil, 0, saving(saver))
	c.SetApps(apps)
	baselineServedTwice(t, c)
	gather(t, context.Background(), c)
	lister.set("s1", withMetadata(runs.New("x1", completed, 11, 12, 14), `{"skill":"refund"}`),
		withMetadata(runs.New("x2", completed, 11, 12, 15), `{"channel":"im"}`))
	clk.Advance(20 * time.Second)
	refund := map[string]string{"app": "b", "skill": "refund", "status": "COMPLETED"}
	none := map[string]string{"app": "b", "skill": "", "status": "COMPLETED"}
	mfs := gather(t, context.Background(), c)
	if v, ok := value(mfs, "aily_runs_finished_total", refund); !ok || v != 0 {
		t.Fatalf("a new skill's series = %v (served %v), want served at 0 first", v, ok)
	}
	if v, _ := value(mfs, "aily_runs_finished_total", none); v != 1 {
		t.Fatalf("a run without the key counted %v under skill=\"\", want 1 at once", v)
	}

	c2 := newTestCollector(t, clk, nil, 0, saving(saver))
	if err := c2.w.Restore(saver.load(t), apps); err != nil {
		t.Fatal(err)
	}
	c2.SetApps(apps)
	for i, want := range []float64{0, 0, 1} {
		mfs := gather(t, context.Background(), c2)
		if v, ok := value(mfs, "aily_runs_finished_total", refund); !ok || v != want {
			t.Errorf("scrape %d after the restart: %v (served %v), want %v", i+1, v, ok, want)
		}
		if v, _ := value(mfs, "aily_runs_finished_total", none); v != 1 {
			t.Errorf("scrape %d after the restart: skill=\"\" %v, want 1", i+1, v)
		}
	}

	// A reload that changes the labels starts the app's counts afresh: its
	// series change shape.
	apps[0].MetadataLabels = []string{"skill", "channel"}
	c2.SetApps(apps)
	mfs = gather(t, context.Background(), c2)
	if _, ok := value(mfs, "aily_runs_finished_total", refund); ok {
		t.Errorf("the series without the new label are still served")
	}
	both := map[string]string{"app": "b", "skill": "", "channel": "", "status": "COMPLETED"}
	if v, ok := value(mfs, "aily_runs_finished_total", both); !ok || v != 0 {
		t.Errorf("after the labels changed: %v (served %v), want the new series from 0", v, ok)
	}
}
