package state

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOlderVersionIsMigratedAndTheRestMovedAside(t *testing.T) {
	// Version 1 kept a number as "n"; version 2 as "count".
	migrate := func(from int, data []byte) ([]byte, error) {
		if from != 1 {
			return nil, errors.New("no such version")
		}
		var v1 struct{ N int }
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int{"count": v1.N})
	}
	for _, tc := range []struct {
		name    string
		migrate func(int, []byte) ([]byte, error)
		saved   any
		found   bool
		want    int
		log     string
	}{
		{"migrated", migrate, map[string]int{"n": 7}, true, 7, "Migrated the saved state"},
		{"a migration that fails", migrate, "not an object", false, 0, "whose migration to version 2 failed"},
		{"no migration", nil, map[string]int{"n": 7}, false, 0, "cannot migrate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			logs := &logRecorder{}
			now := func() time.Time { return testNow }
			v1, err := Open(dir, Options{Now: now, Logger: logs})
			if err != nil {
				t.Fatal(err)
			}
			mustSave(t, v1, tc.saved, "fp1")
			v2, err := Open(dir, Options{Now: now, Logger: logs, Version: 2, Migrate: tc.migrate})
			if err != nil {
				t.Fatal(err)
			}
			var got struct{ Count int }
			found, err := v2.Load(&got, "fp1")
			if err != nil || found != tc.found || got.Count != tc.want {
				t.Errorf("Load = %v, %v, count %d; want %v, nil, %d", found, err, got.Count, tc.found, tc.want)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log %q, want %q", logs.String(), tc.log)
			}
			if aside, _ := filepath.Glob(filepath.Join(dir, FileName+corruptInfix+"*")); len(aside) != map[bool]int{true: 0, false: 1}[tc.found] {
				t.Errorf("files moved aside: %v", aside)
			}
		})
	}
}
