package watch

import (
	"encoding/json"
	"testing"
)

func TestMigrateStateFromVersion1MovesTheCountsIntoTheRecords(t *testing.T) {
	v1 := `{"duration_buckets":[1],"apps":[{"name":"a","identity":"i","per_session":true,"totals":{"finished":[0,0,0,0]}}],` +
		`"sessions":[{"watch":{"app":"a","id":"s1","added":1,"tracker":{"watch_start":1},"cursor":{}},` +
		`"counts":{"finished":[1,2,0,0],"created":3},"holding":true},{"counts":{"finished":[9,0,0,0]}}]}`
	b, err := MigrateState(1, []byte(v1))
	if err != nil {
		t.Fatal(err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 1 || len(st.Apps) != 1 || len(st.DurationBuckets) != 1 {
		t.Fatalf("migrated %s, want the one session with a record, the app and the buckets", b)
	}
	r := st.Sessions[0]
	if r.App != "a" || r.ID != "s1" || r.Tracker.WatchStart != 1 || !r.Holding || r.Counts == nil ||
		r.Counts.Finished[1] != 2 || r.Counts.Created != 3 {
		t.Errorf("migrated session %+v, counts %+v", r, r.Counts)
	}
}

func TestMigrateStateRefusesWhatItDoesNotKnow(t *testing.T) {
	for _, tc := range []struct {
		from int
		data string
	}{
		{0, `{}`},
		{StateVersion + 1, `{}`},
		{1, `not json`},
		{1, `{"sessions":[{"watch":[]}]}`},
	} {
		if b, err := MigrateState(tc.from, []byte(tc.data)); err == nil {
			t.Errorf("MigrateState(%d, %s) = %s, want an error", tc.from, tc.data, b)
		}
	}
	if b, err := MigrateState(StateVersion, []byte(`{"x":1}`)); err != nil || string(b) != `{"x":1}` {
		t.Errorf("MigrateState of the current version = %s, %v; want it as it is", b, err)
	}
}
