package feishu

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMillisParsesEveryTimestampForm(t *testing.T) {
	ts := time.UnixMilli(1711975665710)
	for _, tc := range []struct {
		name, json string
		want       time.Time
		wantErr    string // "" for none
	}{
		{"documented string", `"1711975665710"`, ts, ""},
		{"bare integer", `1711975665710`, ts, ""},
		{"null", `null`, time.Time{}, ""},
		{"empty string", `""`, time.Time{}, ""},
		{"zero", `"0"`, time.UnixMilli(0), ""},
		{"escaped digits", `"\u0031711975665710"`, ts, ""},
		{"19 digits", `"1000000000000000000"`, time.UnixMilli(1e18), ""},
		{"too large", `"99999999999999999999"`, time.Time{}, "not Unix milliseconds"},
		{"negative", `"-5"`, time.Time{}, "not Unix milliseconds"},
		{"bare negative", `-5`, time.Time{}, "not Unix milliseconds"},
		{"words", `"yesterday"`, time.Time{}, `"yesterday" is not Unix milliseconds`},
		{"float", `1.5e12`, time.Time{}, "not Unix milliseconds"},
		{"object", `{}`, time.Time{}, "not Unix milliseconds"},
		{"bool", `true`, time.Time{}, "not Unix milliseconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m millis
			if err := json.Unmarshal([]byte(tc.json), &m); err != nil {
				t.Fatalf("Unmarshal: %v (a bad timestamp must not fail the decoding)", err)
			}
			if !m.t.Equal(tc.want) {
				t.Errorf("time = %v, want %v", m.t, tc.want)
			}
			switch {
			case tc.wantErr == "" && m.err != nil:
				t.Errorf("err = %v, want none", m.err)
			case tc.wantErr != "" && (m.err == nil || !strings.Contains(m.err.Error(), tc.wantErr)):
				t.Errorf("err = %v, want one containing %q", m.err, tc.wantErr)
			}
		})
	}
}

func TestMillisParsesDigitsWithoutAllocating(t *testing.T) {
	var m millis
	for _, in := range []string{`"1711975665710"`, `1711975665710`, `null`} {
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { _ = m.UnmarshalJSON(b) }); n != 0 {
			t.Errorf("UnmarshalJSON(%s) allocates %v times, want 0", in, n)
		}
	}
}

func TestWellFormedPageDecodesInOnePass(t *testing.T) {
	body := []byte(`{"code":0,"msg":"success","data":{"runs":[` +
		`{"id":"run_a","created_at":"1711975665710","status":"COMPLETED","ended_at":"soon"},` +
		`null,` +
		`{"id":"run_b","created_at":1711975665711,"status":"QUEUED","started_at":null}` +
		`],"page_token":"p2","has_more":true}}`)
	var w wireRunsPage
	env, err := w.decode(body, 20)
	if err != nil {
		t.Fatalf("one-pass decode: %v, want a bad timestamp and a null entry to decode", err)
	}
	if env.Code == nil || *env.Code != 0 || env.Msg != "success" {
		t.Errorf("envelope = %+v, want code 0 msg success", env)
	}
	p := w.page("session_x", time.Now())
	if len(p.runs) != 2 || p.runs[0].ID != "run_a" || p.runs[1].ID != "run_b" || p.entries != 3 || p.pageToken != "p2" || !p.hasMore {
		t.Fatalf("page = %+v", p)
	}
	if !p.runs[0].CreatedAt.Equal(time.UnixMilli(1711975665710)) || !p.runs[0].EndedAt.IsZero() ||
		!p.runs[1].CreatedAt.Equal(time.UnixMilli(1711975665711)) || p.runs[1].SessionID != "session_x" {
		t.Errorf("runs = %+v", p.runs)
	}
	if len(p.malformed) != 2 || p.malformed[0].runID != "run_a" || !strings.Contains(p.malformed[0].err.Error(), `ended_at: timestamp "soon"`) ||
		p.malformed[1].runID != "" || !strings.Contains(p.malformed[1].err.Error(), "run without an id") {
		t.Errorf("malformed = %+v, want run_a's ended_at and the null entry", p.malformed)
	}
}

func TestPageWithAFieldOfTheWrongTypeKeepsItsOtherRuns(t *testing.T) {
	body := []byte(`{"code":0,"data":{"runs":[{"id":"run_a","status":42,"created_at":"1711975665710"},{"id":"run_b","status":"QUEUED"}],"has_more":false}}`)
	var w wireRunsPage
	if _, err := w.decode(body, 20); err == nil {
		t.Fatal("one-pass decode of a status 42 succeeded; the test needs a body it cannot decode")
	}
	p, err := decodeRunsPage(body, "session_x", 20, time.Now())
	if err != nil {
		t.Fatalf("decodeRunsPage: %v", err)
	}
	if len(p.runs) != 2 || p.runs[0].Status != "" || !p.runs[0].CreatedAt.Equal(time.UnixMilli(1711975665710)) || p.runs[1].Status != StatusQueued {
		t.Errorf("runs = %+v, want both, run_a without its status", p.runs)
	}
	if len(p.malformed) != 1 || p.malformed[0].runID != "run_a" {
		t.Errorf("malformed = %+v, want run_a", p.malformed)
	}
}
