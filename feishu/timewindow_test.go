package feishu_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

func TestTimestampsOutsideThePlausibleWindowAreMalformed(t *testing.T) {
	// The client's clock is epoch (2026-03-01 12:00 UTC). A timestamp
	// before 2020 or more than a day after that clock is treated as
	// unparseable: the run is kept with that field zero, and reported.
	ms := func(t time.Time) string { return `"` + feishu.FormatMillis(t) + `"` }
	year9999 := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	runs := []string{
		`{"id":"run_ok","status":"COMPLETED","created_at":` + ms(epoch.Add(-time.Hour)) +
			`,"started_at":` + ms(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) + `,"ended_at":` + ms(epoch.Add(23*time.Hour)) + `}`,
		`{"id":"run_9999","status":"COMPLETED","created_at":` + ms(epoch.Add(-time.Hour)) + `,"ended_at":` + ms(year9999) + `}`,
		`{"id":"run_1970","status":"COMPLETED","created_at":"1000","started_at":` + ms(time.Date(2019, 12, 31, 23, 59, 59, 0, time.UTC)) + `,"ended_at":` + ms(epoch) + `}`,
		`{"id":"run_tomorrow","status":"FAILED","created_at":` + ms(epoch) + `,"ended_at":` + ms(epoch.Add(25*time.Hour)) + `}`,
	}
	check := func(t *testing.T, got []feishu.Run, obs *observer) {
		t.Helper()
		byID := map[string]feishu.Run{}
		for _, r := range got {
			byID[r.ID] = r
		}
		if len(byID) != 4 {
			t.Fatalf("runs = %v, want all 4 kept", runIDs(got))
		}
		if r := byID["run_ok"]; r.CreatedAt.IsZero() || r.StartedAt.IsZero() || r.EndedAt.IsZero() {
			t.Errorf("run_ok = %+v, want its times (2020-01-01, up to a day ahead) kept", r)
		}
		if r := byID["run_9999"]; !r.EndedAt.IsZero() || r.CreatedAt.IsZero() || r.Status != feishu.StatusCompleted {
			t.Errorf("run_9999 = %+v, want ended_at zero and the rest kept", r)
		}
		if r := byID["run_1970"]; !r.CreatedAt.IsZero() || !r.StartedAt.IsZero() || r.EndedAt.IsZero() {
			t.Errorf("run_1970 = %+v, want created_at and started_at zero, ended_at kept", r)
		}
		if r := byID["run_tomorrow"]; !r.EndedAt.IsZero() || r.CreatedAt.IsZero() {
			t.Errorf("run_tomorrow = %+v, want ended_at zero", r)
		}
		obs.mu.Lock()
		defer obs.mu.Unlock()
		want := map[string][]string{
			"run_9999":     {"ended_at", "9999"},
			"run_1970":     {"created_at", "started_at", "1970"},
			"run_tomorrow": {"ended_at"},
		}
		reported := map[string]string{}
		for _, m := range obs.malformed {
			id := strings.TrimSuffix(strings.Fields(m)[1], ":")
			reported[id] = m
		}
		if len(obs.malformed) != len(want) {
			t.Errorf("malformed runs reported = %q, want %d", obs.malformed, len(want))
		}
		for id, words := range want {
			for _, w := range words {
				if !strings.Contains(reported[id], w) {
					t.Errorf("report of %s = %q, want it to mention %q", id, reported[id], w)
				}
			}
		}
	}
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"one-pass decoding", nil},
		// A field of the wrong type sends the page down the run-by-run path.
		{"run-by-run decoding", []string{`{"id":"run_badtype","status":42}`}},
	} {
		t.Run("list "+tc.name, func(t *testing.T) {
			obs := &observer{}
			c := newClientOf(t, &staticHandler{responses: []cannedResponse{jsonOK(page(false, "", append(runs, tc.extra...)...))}},
				func(c *feishu.Config) { c.Now = func() time.Time { return epoch }; c.Observer = obs })
			got := mustList(t, c)
			if len(tc.extra) > 0 {
				got = got[:len(got)-1]
				obs.malformed = obs.malformed[:len(obs.malformed)-1]
			}
			check(t, got, obs)
		})
	}
	t.Run("get run", func(t *testing.T) {
		obs := &observer{}
		var got []feishu.Run
		for _, r := range runs {
			c := newClientOf(t, &staticHandler{responses: []cannedResponse{jsonOK(`{"code":0,"msg":"success","data":{"run":` + r + `}}`)}},
				func(c *feishu.Config) { c.Now = func() time.Time { return epoch }; c.Observer = obs })
			id := strings.Split(r, `"`)[3]
			run, err := c.GetRun(context.Background(), testSession, id)
			if err != nil {
				t.Fatalf("GetRun %s: %v", id, err)
			}
			got = append(got, run)
		}
		check(t, got, obs)
	})
}
