package watch

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aily-exporter/aily_exporter/feishu"
)

// Record is what a session keeps across a restart: its exactly-once state,
// where its listing stands, its schedule and its counts. Times are Unix
// milliseconds, 0 for none, so that a record encodes small and the same on
// every platform.
type Record struct {
	App string `json:"app"`
	ID  string `json:"id"`

	Added       int64 `json:"added"`
	LastPoll    int64 `json:"last_poll,omitempty"`
	LastSuccess int64 `json:"last_success,omitempty"`
	LastNewRun  int64 `json:"last_new_run,omitempty"`

	Tracker TrackerRecord `json:"tracker"`
	Cursor  CursorRecord  `json:"cursor"`

	// Counts are the session's counts when its app has per_session: true;
	// nil when it counted nothing.
	Counts *CountsRecord `json:"counts,omitempty"`
	// Holding says that the session's known series were not ready for a
	// first increment yet: after a restart they wait again.
	Holding bool `json:"holding,omitempty"`
}

// TrackerRecord is a tracker's state.
type TrackerRecord struct {
	WatchStart        int64               `json:"watch_start"`
	Baselined         bool                `json:"baselined,omitempty"`
	Newest            int64               `json:"newest,omitempty"`
	SeenNewest        int64               `json:"seen_newest,omitempty"`
	PrunedAt          int64               `json:"pruned_at,omitempty"`
	InFlight          []InFlightRecord    `json:"in_flight,omitempty"`
	Recent            []RecentRecord      `json:"recent,omitempty"`
	CountedAtBaseline []string            `json:"counted_at_baseline,omitempty"`
	Undated           []string            `json:"undated,omitempty"`
	Finals            feishu.ByFinal[int] `json:"finals"`
	Sweep             *SweepRecord        `json:"sweep,omitempty"`
	NewRuns           int64               `json:"new_runs,omitempty"`
	LastCreated       int64               `json:"last_created,omitempty"`
	AppIDs            []string            `json:"app_ids,omitempty"`
}

// InFlightRecord is a run in flight. It encodes as a JSON array, the
// largest part of a busy session's record: [id, created, status, flags,
// missed, pos, new_runs_at_pos], flags 1 started, 2 in sweep, 4 seen by
// sweep, and the run's metadata as first seen last when it has any (from
// version 3 of the state on).
type InFlightRecord struct {
	ID           string
	Created      int64
	Status       string
	Started      bool
	Missed       uint8
	InSweep      bool
	SeenBySweep  bool
	Pos          int64
	NewRunsAtPos int64
	Metadata     string
}

const (
	flagStarted = 1 << iota
	flagInSweep
	flagSeenBySweep
)

// MarshalJSON encodes the run as an array, by hand: a save encodes every run
// in flight, and reflection would be most of its cost.
func (r InFlightRecord) MarshalJSON() ([]byte, error) {
	flags := int64(0)
	if r.Started {
		flags |= flagStarted
	}
	if r.InSweep {
		flags |= flagInSweep
	}
	if r.SeenBySweep {
		flags |= flagSeenBySweep
	}
	b := make([]byte, 0, 64+len(r.ID)+len(r.Status)+len(r.Metadata))
	b = append(b, '[')
	b = appendJSONString(b, r.ID)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.Created, 10)
	b = append(b, ',')
	b = appendJSONString(b, r.Status)
	for _, n := range []int64{flags, int64(r.Missed), r.Pos, r.NewRunsAtPos} {
		b = append(b, ',')
		b = strconv.AppendInt(b, n, 10)
	}
	if r.Metadata != "" {
		b = append(b, ',')
		b = appendJSONString(b, r.Metadata)
	}
	return append(b, ']'), nil
}

// appendJSONString appends s as a JSON string: as it is when it holds only
// printable ASCII that needs no escape, as encoding/json writes it otherwise.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// UnmarshalJSON decodes the array MarshalJSON writes.
func (r *InFlightRecord) UnmarshalJSON(b []byte) error {
	var flags int
	fields := []any{&r.ID, &r.Created, &r.Status, &flags, &r.Missed, &r.Pos, &r.NewRunsAtPos, &r.Metadata}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("run in flight: %w", err)
	}
	// The metadata is left out when there is none.
	if len(raw) != len(fields) && len(raw) != len(fields)-1 {
		return fmt.Errorf("run in flight: %d fields, want %d or %d", len(raw), len(fields)-1, len(fields))
	}
	fields = fields[:len(raw)]
	for i, f := range fields {
		if err := json.Unmarshal(raw[i], f); err != nil {
			return fmt.Errorf("run in flight, field %d: %w", i, err)
		}
	}
	r.Started, r.InSweep, r.SeenBySweep = flags&flagStarted != 0, flags&flagInSweep != 0, flags&flagSeenBySweep != 0
	return nil
}

// RecentRecord is a final run remembered by ID.
type RecentRecord struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
}

// SweepRecord is the tally of a full listing under way.
type SweepRecord struct {
	Finals   feishu.ByFinal[int] `json:"finals"`
	Finished map[string]string   `json:"finished,omitempty"`
}

// CursorRecord is where a session's listing stands.
type CursorRecord struct {
	Order     string   `json:"order,omitempty"` // "newest_first", "oldest_first" or empty
	NeedFull  bool     `json:"need_full,omitempty"`
	NextFull  int64    `json:"next_full,omitempty"`
	LastToken string   `json:"last_token,omitempty"`
	LastIDs   []string `json:"last_ids,omitempty"`
	LastPos   int64    `json:"last_pos,omitempty"`
	LastIndex int      `json:"last_index,omitempty"`

	Sweep *SweepCursorRecord `json:"sweep,omitempty"`
}

// SweepCursorRecord is where a full listing under way stands.
type SweepCursorRecord struct {
	Token   string   `json:"token,omitempty"`
	PrevIDs []string `json:"prev_ids,omitempty"`
	Pos     int64    `json:"pos,omitempty"`
	Pages   int      `json:"pages,omitempty"`
	Last    int64    `json:"last,omitempty"`
	Up      bool     `json:"up,omitempty"`
	Down    bool     `json:"down,omitempty"`
	// PrevToken fetched the page of PrevIDs; Unverified marks a listing one
	// of whose page boundaries could not be checked.
	PrevToken  string `json:"prev_token,omitempty"`
	Unverified bool   `json:"unverified,omitempty"`
}

func millisOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOf(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// record returns the session's record but its counts. s.mu is held and no
// poll is under way.
func (s *Session) record() *Record {
	return &Record{
		App: s.app.name, ID: s.id,
		Added: millisOf(s.added), LastPoll: millisOf(s.lastPoll),
		LastSuccess: millisOf(s.lastSuccess), LastNewRun: millisOf(s.lastNewRun),
		Tracker: s.tracker.record(),
		Cursor:  s.cursor.record(),
	}
}

func (t *tracker) record() TrackerRecord {
	r := TrackerRecord{
		WatchStart: millisOf(t.watchStart), Baselined: t.baselined,
		Newest: millisOf(t.newest), SeenNewest: millisOf(t.seenNewest), PrunedAt: millisOf(t.prunedAt),
		Finals: t.finals, NewRuns: t.newRuns, LastCreated: millisOf(t.lastCreated),
		AppIDs: t.appIDs,
	}
	for id, ir := range t.inflight {
		r.InFlight = append(r.InFlight, InFlightRecord{
			ID: id, Created: millisOf(ir.created), Status: string(ir.status), Started: ir.started,
			Missed: ir.missed, InSweep: ir.inSweep, SeenBySweep: ir.seenBySweep,
			Pos: ir.pos, NewRunsAtPos: ir.newRunsAtPos, Metadata: ir.metadata,
		})
	}
	slices.SortFunc(r.InFlight, func(a, b InFlightRecord) int { return cmp.Compare(a.ID, b.ID) })
	t.recent.each(func(id string, created int64) {
		r.Recent = append(r.Recent, RecentRecord{ID: id, Created: created / int64(time.Millisecond)})
	})
	slices.SortFunc(r.Recent, func(a, b RecentRecord) int { return cmp.Compare(a.ID, b.ID) })
	r.CountedAtBaseline = sortedKeys(t.countedAtBaseline)
	r.Undated = sortedKeys(t.undated)
	if t.sweep != nil {
		sw := &SweepRecord{Finals: t.sweep.finals}
		if len(t.sweep.finished) > 0 {
			sw.Finished = make(map[string]string, len(t.sweep.finished))
			for id, st := range t.sweep.finished {
				sw.Finished[id] = string(st)
			}
		}
		r.Sweep = sw
	}
	return r
}

func (c *cursor) record() CursorRecord {
	r := CursorRecord{
		NeedFull: c.needFull, NextFull: millisOf(c.nextFull),
		LastToken: c.lastToken, LastIDs: slices.Clone(c.lastIDs), LastPos: c.lastPos, LastIndex: c.lastIndex,
	}
	switch c.order {
	case newestFirst:
		r.Order = "newest_first"
	case oldestFirst:
		r.Order = "oldest_first"
	}
	if sw := c.sweep; sw != nil {
		r.Sweep = &SweepCursorRecord{
			Token: sw.token, PrevIDs: slices.Clone(sw.prevIDs), Pos: sw.pos, Pages: sw.pages,
			Last: millisOf(sw.last), Up: sw.up, Down: sw.down,
			PrevToken: sw.prevToken, Unverified: sw.unverified,
		}
	}
	return r
}

// restore sets up a new session from its record.
func (s *Session) restore(r *Record) error {
	t, err := trackerFromRecord(&r.Tracker)
	if err != nil {
		return err
	}
	c, err := cursorFromRecord(&r.Cursor)
	if err != nil {
		return err
	}
	s.tracker, s.cursor = t, c
	s.added = timeOf(r.Added)
	s.lastPoll, s.lastSuccess, s.lastNewRun = timeOf(r.LastPoll), timeOf(r.LastSuccess), timeOf(r.LastNewRun)
	s.baselined, s.inflight, s.tracked = t.baselined, t.inFlight(), t.len()
	s.lastCreated = t.lastCreated
	s.polled = !s.lastPoll.IsZero()
	if t.baselined {
		st := t.current()
		s.view = &st
	}
	return nil
}

var errRecord = errors.New("malformed session record")

func trackerFromRecord(r *TrackerRecord) (tracker, error) {
	if r.WatchStart == 0 {
		return tracker{}, fmt.Errorf("%w: no watch start", errRecord)
	}
	t := tracker{
		watchStart: timeOf(r.WatchStart), baselined: r.Baselined,
		newest: timeOf(r.Newest), seenNewest: timeOf(r.SeenNewest), prunedAt: timeOf(r.PrunedAt),
		finals: r.Finals, newRuns: r.NewRuns, lastCreated: timeOf(r.LastCreated),
		appIDs: slices.Clone(r.AppIDs),
	}
	for _, n := range r.Finals {
		if n < 0 {
			return tracker{}, fmt.Errorf("%w: negative final count", errRecord)
		}
	}
	for _, ir := range r.InFlight {
		if ir.ID == "" {
			return tracker{}, fmt.Errorf("%w: run in flight without an ID", errRecord)
		}
		if t.inflight == nil {
			t.inflight = make(map[string]*inflightRun, len(r.InFlight))
		}
		t.inflight[ir.ID] = &inflightRun{
			created: timeOf(ir.Created), status: feishu.RunStatus(ir.Status), started: ir.Started,
			missed: ir.Missed, inSweep: ir.InSweep, seenBySweep: ir.SeenBySweep,
			pos: ir.Pos, newRunsAtPos: ir.NewRunsAtPos, metadata: keptMetadata(ir.Metadata),
		}
	}
	for _, rr := range r.Recent {
		t.recent.add(rr.ID, timeOf(rr.Created))
	}
	t.countedAtBaseline = keySet(r.CountedAtBaseline)
	t.undated = keySet(r.Undated)
	if r.Sweep != nil {
		t.sweep = &sweepTally{finals: r.Sweep.Finals, finished: make(map[string]feishu.RunStatus, len(r.Sweep.Finished))}
		for id, st := range r.Sweep.Finished {
			if !feishu.RunStatus(st).Final() {
				return tracker{}, fmt.Errorf("%w: run %s finished in status %q", errRecord, id, st)
			}
			t.sweep.finished[id] = feishu.RunStatus(st)
		}
	}
	return t, nil
}

func cursorFromRecord(r *CursorRecord) (cursor, error) {
	c := cursor{
		needFull: r.NeedFull, nextFull: timeOf(r.NextFull),
		lastToken: r.LastToken, lastIDs: slices.Clone(r.LastIDs), lastPos: r.LastPos, lastIndex: r.LastIndex,
	}
	switch r.Order {
	case "newest_first":
		c.order = newestFirst
	case "oldest_first":
		c.order = oldestFirst
	case "":
	default:
		return cursor{}, fmt.Errorf("%w: listing order %q", errRecord, r.Order)
	}
	if sw := r.Sweep; sw != nil {
		c.sweep = &sweepCursor{
			token: sw.Token, prevIDs: slices.Clone(sw.PrevIDs), pos: sw.Pos, pages: sw.Pages,
			last: timeOf(sw.Last), up: sw.Up, down: sw.Down,
			prevToken: sw.PrevToken, unverified: sw.Unverified,
		}
	}
	return c, nil
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func keySet(keys []string) map[string]struct{} {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}
