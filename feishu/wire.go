package feishu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// runsPage is one decoded page of the list-runs response.
type runsPage struct {
	runs      []Run
	malformed []malformedRun
	pageToken string
	hasMore   bool
	entries   int // the entries of data.runs, runs dropped for lack of an ID included
}

// malformedRun is a run (or list entry) that could not be fully decoded.
type malformedRun struct {
	runID string
	err   error
}

// wireRunsPage is the list-runs body as the API sends it: the envelope and
// the data together, so that a page is decoded in one pass.
type wireRunsPage struct {
	apiBody
	Data *wireRunsData `json:"data"`
}

type wireRunsData struct {
	Runs      []wireRun `json:"runs"`
	PageToken string    `json:"page_token"`
	HasMore   bool      `json:"has_more"`
}

// wireRun is a run as the API sends it. Timestamps are millis, so that a
// bad one spoils only itself and a number is accepted as well as the
// documented string.
type wireRun struct {
	ID        string        `json:"id"`
	CreatedAt millis        `json:"created_at"`
	AppID     string        `json:"app_id"`
	SessionID string        `json:"session_id"`
	Status    string        `json:"status"`
	StartedAt millis        `json:"started_at"`
	EndedAt   millis        `json:"ended_at"`
	Error     *wireRunError `json:"error"`
	Metadata  string        `json:"metadata"`
}

type wireRunError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// millis is a timestamp field: decimal Unix milliseconds in a JSON string,
// as documented, or tolerantly a bare JSON integer; null (or absent) is the
// zero time. A malformed value does not fail the body's decoding: it leaves
// the time zero and says why in err, for the run to be reported.
type millis struct {
	t   time.Time
	err error
}

// UnmarshalJSON parses the digits in place. Only a value that is not plain
// digits (empty, escaped, signed, too long, not a number) takes the slow
// path through ParseMillis, for its exact verdict and error message.
func (m *millis) UnmarshalJSON(b []byte) error {
	*m = millis{}
	raw := b
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		raw = b[1 : len(b)-1]
	} else if string(b) == "null" {
		return nil
	}
	if ms, ok := parseDigits(raw); ok {
		m.t = time.UnixMilli(ms)
		return nil
	}
	s := string(raw)
	if len(raw) != len(b) && bytes.IndexByte(raw, '\\') >= 0 {
		// An escaped string ("\u0031…"): unescape it as JSON would.
		if err := json.Unmarshal(b, &s); err != nil {
			m.err = err
			return nil
		}
	}
	m.t, m.err = ParseMillis(s)
	return nil
}

// Timestamps outside [earliestPlausible, now+maxAhead] are treated as
// unparseable: no Aily run predates 2020, and a clock a day ahead of the
// exporter's is wrong, not early. One such value (a year 9999 ended_at) would
// otherwise be observed as a run of 9.22e9 s and spoil a histogram's sum.
var earliestPlausible = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

const maxAhead = 24 * time.Hour

// checkPlausible zeroes a timestamp outside the plausible window at now and
// says why in err.
func (m *millis) checkPlausible(now time.Time) {
	if m.err != nil || m.t.IsZero() {
		return
	}
	if m.t.Before(earliestPlausible) || m.t.After(now.Add(maxAhead)) {
		m.err = fmt.Errorf("timestamp %s is outside the plausible window (from %s to a day after the clock's %s)",
			m.t.UTC().Format(time.RFC3339), earliestPlausible.Format("2006-01-02"), now.UTC().Format(time.RFC3339))
		m.t = time.Time{}
	}
}

// parseDigits parses 1 to 18 ASCII digits, which always fit an int64.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// decode is the body decoder of a list-runs request (see bodyDecoder): it
// decodes the whole body into w in one pass, with room for size runs.
func (w *wireRunsPage) decode(body []byte, size int) (apiBody, error) {
	*w = wireRunsPage{Data: &wireRunsData{Runs: make([]wireRun, 0, size)}}
	err := json.Unmarshal(body, w)
	return w.apiBody, err
}

// page turns a decoded body into a page: a run with malformed fields is kept
// with them zero and reported in malformed, and an entry without an ID is
// dropped and reported.
func (w *wireRunsPage) page(sessionID string, now time.Time) *runsPage {
	page := &runsPage{}
	if w.Data == nil {
		return page
	}
	page.pageToken, page.hasMore = w.Data.PageToken, w.Data.HasMore
	page.entries = len(w.Data.Runs)
	page.runs = make([]Run, 0, len(w.Data.Runs))
	for i := range w.Data.Runs {
		page.add(&w.Data.Runs[i], sessionID, nil, now)
	}
	return page
}

// add converts a decoded run and adds it to the page, or reports it;
// decodeErr is an error met decoding it, now the client's clock.
func (p *runsPage) add(w *wireRun, sessionID string, decodeErr error, now time.Time) {
	r, err := w.run(sessionID, decodeErr, now)
	switch {
	case r.ID == "":
		p.malformed = append(p.malformed, malformedRun{err: errors.Join(err, errors.New("run without an id"))})
		return
	case err != nil:
		p.malformed = append(p.malformed, malformedRun{runID: r.ID, err: err})
	}
	p.runs = append(p.runs, r)
}

// run converts a decoded run. Its error joins decodeErr and the errors of
// its malformed timestamps, those outside the plausible window at now
// included; nil when the run is whole.
func (w *wireRun) run(sessionID string, decodeErr error, now time.Time) (Run, error) {
	for _, m := range []*millis{&w.CreatedAt, &w.StartedAt, &w.EndedAt} {
		m.checkPlausible(now)
	}
	r := Run{
		ID:        w.ID,
		AppID:     w.AppID,
		SessionID: w.SessionID,
		Status:    RunStatus(w.Status),
		CreatedAt: w.CreatedAt.t,
		StartedAt: w.StartedAt.t,
		EndedAt:   w.EndedAt.t,
		Metadata:  w.Metadata,
	}
	if r.SessionID == "" {
		r.SessionID = sessionID
	}
	if w.Error != nil && (w.Error.Code != "" || w.Error.Message != "") {
		r.Error = &RunError{Code: w.Error.Code, Message: w.Error.Message}
	}
	if decodeErr == nil && w.CreatedAt.err == nil && w.StartedAt.err == nil && w.EndedAt.err == nil {
		return r, nil
	}
	var errs []error
	if decodeErr != nil {
		errs = append(errs, fmt.Errorf("decode run: %w", decodeErr))
	}
	for _, f := range []struct {
		name string
		err  error
	}{{"created_at", w.CreatedAt.err}, {"started_at", w.StartedAt.err}, {"ended_at", w.EndedAt.err}} {
		if f.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, f.err))
		}
	}
	return r, errors.Join(errs...)
}

// decodeRunsPage decodes a list-runs body: in one pass when it is
// well-formed, else as decodeRunsPageSlowly does. Only a body that is not a
// JSON object, or whose envelope is of the wrong shape, is an error.
func decodeRunsPage(body []byte, sessionID string, size int, now time.Time) (*runsPage, error) {
	var w wireRunsPage
	if _, err := w.decode(body, size); err != nil {
		return decodeRunsPageSlowly(body, sessionID, now)
	}
	return w.page(sessionID, now), nil
}

// decodeRunsPageSlowly decodes a body whose one-pass decoding failed: a field
// of the wrong type fails a whole json.Unmarshal without saying which run it
// is in, so each run is decoded on its own, and a run with such a field is
// kept with that field zero and reported, like a malformed timestamp. It
// costs a pass over the body and one per run, and only such rare bodies pay.
func decodeRunsPageSlowly(body []byte, sessionID string, now time.Time) (*runsPage, error) {
	var w struct {
		apiBody
		Data *struct {
			Runs      []json.RawMessage `json:"runs"`
			PageToken string            `json:"page_token"`
			HasMore   bool              `json:"has_more"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("decode runs page: %w", err)
	}
	page := &runsPage{}
	if w.Data == nil {
		return page, nil
	}
	page.pageToken, page.hasMore = w.Data.PageToken, w.Data.HasMore
	page.entries = len(w.Data.Runs)
	for _, raw := range w.Data.Runs {
		var r wireRun
		// On a field of the wrong type Unmarshal still fills the other
		// fields and returns the first such error.
		page.add(&r, sessionID, json.Unmarshal(raw, &r), now)
	}
	return page, nil
}
