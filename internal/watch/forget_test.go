package watch

import (
	"slices"
	"testing"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// A run in flight that a completing listing would forget (missing from it,
// after missing from the one before) is named first, so that get run can
// count it if it ended; one seen, or missing for the first time, is not.
func TestRunsAboutToBeForgottenAreThoseMissingTwice(t *testing.T) {
	tr := newTracker(t0)
	fullListing(tr, []feishu.Run{
		run("twice", inProgress, 1, 1, none), run("once", inProgress, 2, 2, none), run("seen", inProgress, 3, 3, none),
	}, at(4))
	// A complete pass without "twice": its first absence.
	tr.beginPass()
	var obs Observation
	for _, r := range []feishu.Run{run("once", inProgress, 2, 2, none), run("seen", inProgress, 3, 3, none)} {
		tr.see(&r, false, &obs)
	}
	tr.endCompletePass()

	tr.beginPass()
	r := run("seen", inProgress, 3, 3, none)
	tr.see(&r, false, &obs)
	if got := tr.aboutToBeForgotten(false); !slices.Equal(got, []string{"twice"}) {
		t.Errorf("in a pass: about to be forgotten %v, want [twice] (missing twice; once is missing for the first time, seen was seen)", got)
	}

	tr.startSweep()
	r = run("seen", inProgress, 3, 3, none)
	tr.see(&r, true, &obs)
	if got := tr.aboutToBeForgotten(true); !slices.Equal(got, []string{"twice"}) {
		t.Errorf("in a full listing: about to be forgotten %v, want [twice]", got)
	}
}
