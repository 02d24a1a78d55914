package feishu

import "testing"

func TestStatusLists(t *testing.T) {
	final := 0
	for _, s := range KnownStatuses() {
		if s.Final() {
			final++
		}
	}
	if final != len(FinalStatuses()) {
		t.Errorf("%d known statuses are final, FinalStatuses has %d", final, len(FinalStatuses()))
	}
	for _, s := range FinalStatuses() {
		if !s.Final() {
			t.Errorf("%s in FinalStatuses is not Final", s)
		}
	}
	if RunStatus("SOMETHING_NEW").Final() {
		t.Error("an unknown status is final")
	}
}
