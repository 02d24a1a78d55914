package state

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"
)

// The payload of the benchmarks: shaped like the exporter's state at 10,000
// sessions, each with 10 runs in flight.
type (
	benchState struct {
		Sessions []benchSession `json:"sessions"`
	}
	benchSession struct {
		App          string        `json:"app"`
		ID           string        `json:"id"`
		WatchStart   int64         `json:"watch_start"`
		Newest       int64         `json:"newest"`
		SeenNewest   int64         `json:"seen_newest"`
		PrunedAt     int64         `json:"pruned_at"`
		LastCreated  int64         `json:"last_created"`
		LastSuccess  int64         `json:"last_success"`
		LastNewRun   int64         `json:"last_new_run"`
		Pass         uint64        `json:"pass"`
		NewRuns      int64         `json:"new_runs"`
		Baselined    bool          `json:"baselined"`
		Failures     int           `json:"failures"`
		Finals       [4]int        `json:"finals"`
		CursorPage   string        `json:"cursor_page"`
		CursorOffset int           `json:"cursor_offset"`
		AppIDs       []string      `json:"app_ids"`
		Recent       []string      `json:"recent"`
		Counters     benchCounters `json:"counters"`
		InFlight     []benchRun    `json:"in_flight"`
	}
	benchCounters struct {
		Started   int            `json:"started"`
		Finished  int            `json:"finished"`
		Succeeded int            `json:"succeeded"`
		Failed    int            `json:"failed"`
		ByError   map[string]int `json:"by_error"`
	}
	benchRun struct {
		ID        string `json:"id"`
		CreatedAt int64  `json:"created_at"`
		Status    string `json:"status"`
		Started   bool   `json:"started"`
		Missed    int    `json:"missed"`
		Polls     int    `json:"polls"`
	}
)

// benchPayload returns a state of the given number of sessions with runs
// runs in flight each.
func benchPayload(sessions, runs int) benchState {
	st := benchState{Sessions: make([]benchSession, sessions)}
	const t0 = 1_795_000_000_000 // milliseconds, as the API's created_at
	for i := range st.Sessions {
		s := &st.Sessions[i]
		*s = benchSession{
			App: fmt.Sprintf("app-%02d", i%20), ID: fmt.Sprintf("sess_%016x", i*7919),
			WatchStart: t0, Newest: t0 + int64(i)*1000, SeenNewest: t0 + int64(i)*1000 + 500, PrunedAt: t0,
			LastCreated: t0 + int64(i)*1000 + 500, LastSuccess: t0 + 3_600_000, LastNewRun: t0 + 3_000_000,
			Pass: 1234, NewRuns: 5678, Baselined: true, Finals: [4]int{9000 + i%100, 120, 30, 4},
			CursorPage: fmt.Sprintf("page_%012d", i), CursorOffset: 40,
			AppIDs:   []string{fmt.Sprintf("cli_%016x", i%20)},
			Recent:   []string{fmt.Sprintf("run_%016x", i), fmt.Sprintf("run_%016x", i+1)},
			Counters: benchCounters{Started: 9154, Finished: 9144, Succeeded: 9000, Failed: 144, ByError: map[string]int{"timeout": 100, "quota": 44}},
			InFlight: make([]benchRun, runs),
		}
		for j := range s.InFlight {
			s.InFlight[j] = benchRun{
				ID: fmt.Sprintf("run_%016x", i*runs+j), CreatedAt: t0 + int64(i*runs+j)*997,
				Status: []string{"queued", "running"}[j%2], Started: j%2 == 1, Polls: 3 + j,
			}
		}
	}
	return st
}

// BenchmarkSave measures a Save of the state of 10,000 sessions with 10 runs
// in flight each, fsyncs included, and the size of the file.
func BenchmarkSave(b *testing.B) {
	for _, sessions := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("sessions=%d/runs=10", sessions), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			st := benchPayload(sessions, 10)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Save(st, "fp1"); err != nil {
					b.Fatal(err)
				}
			}
			fi, err := os.Stat(s.Path())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(fi.Size()), "file-bytes")
			b.SetBytes(fi.Size())
		})
	}
}

// BenchmarkLoad measures a Load of the same state, as at a start.
func BenchmarkLoad(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Save(benchPayload(10_000, 10), "fp1"); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(s.Stats().Bytes)
	b.ReportAllocs()
	for b.Loop() {
		var st benchState
		if ok, err := s.Load(&st, "fp1"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkEncode measures the encoding alone, without the file and its
// fsyncs, to tell their shares of a Save apart.
func BenchmarkEncode(b *testing.B) {
	st := benchPayload(10_000, 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encode(io.Discard, st, "fp1", defaultVersion, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}
