package feishu

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// exampleResponse is the example response of list-runs.md.
const exampleResponse = `{
  "code": 0,
  "msg": "success",
  "data": {
    "runs": [
      {
        "id": "run_4dfrxvctjqzzj",
        "created_at": "1711975665710",
        "app_id": "spring_xxx__c",
        "session_id": "session_4dfunz7sp1g8m",
        "status": "IN_PROGRESS",
        "started_at": "1711975665710",
        "ended_at": "1711975665710",
        "error": { "code": "sp_ec_sm_900101", "message": "技能不存在或已删除" },
        "metadata": "{}"
      }
    ],
    "page_token": "eVQrYzJBNDNONlk4VFZBZVlSdzlKdFJ4bVVHVExENDNKVHoxaVdiVnViQT0=",
    "has_more": true
  }
}`

func TestDecodeRunsPageOfTheDocumentedExample(t *testing.T) {
	page, err := decodeRunsPage([]byte(exampleResponse), "session_4dfunz7sp1g8m", 20, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts := time.UnixMilli(1711975665710)
	want := Run{
		ID: "run_4dfrxvctjqzzj", AppID: "spring_xxx__c", SessionID: "session_4dfunz7sp1g8m",
		Status: StatusInProgress, CreatedAt: ts, StartedAt: ts, EndedAt: ts,
		Error: &RunError{Code: "sp_ec_sm_900101", Message: "技能不存在或已删除"}, Metadata: "{}",
	}
	if len(page.runs) != 1 || len(page.malformed) != 0 || !page.hasMore ||
		page.pageToken != "eVQrYzJBNDNONlk4VFZBZVlSdzlKdFJ4bVVHVExENDNKVHoxaVdiVnViQT0=" {
		t.Fatalf("page = %+v", page)
	}
	got := page.runs[0]
	if got.ID != want.ID || got.AppID != want.AppID || got.SessionID != want.SessionID || got.Status != want.Status ||
		!got.CreatedAt.Equal(ts) || !got.StartedAt.Equal(ts) || !got.EndedAt.Equal(ts) ||
		*got.Error != *want.Error || got.Metadata != want.Metadata {
		t.Errorf("run = %+v, want %+v", got, want)
	}
}

func FuzzDecodeRunsPage(f *testing.F) {
	for _, seed := range []string{
		exampleResponse,
		exampleResponse[:len(exampleResponse)/2],
		`{"code":0,"msg":"success","data":{"runs":[],"has_more":false}}`,
		`{"code":99991400,"msg":"request trigger frequency limit"}`,
		`{"code":0,"data":{"runs":[{"id":"r","created_at":1711975665710,"started_at":"x","ended_at":{}}]}}`,
		`{"code":0,"data":{"runs":[null,1,"s",[],{"id":7}]}}`,
		`{"code":0,"data":null}`,
		`{"code":"0"}`,
		"404 page not found\n",
		"<html><body>502 Bad Gateway</body></html>",
		"",
		"\xff\xfe",
	} {
		f.Add([]byte(seed), 200)
	}
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		page, err := decodeRunsPage(body, "session_x", 20, time.Now())
		if err == nil {
			for _, r := range page.runs {
				if r.ID == "" {
					t.Errorf("run without an ID kept: %+v", r)
				}
			}
		}
		for _, ep := range []Endpoint{EndpointListRuns, EndpointTenantToken} {
			resp := newResponse(status, http.Header{}, body, nil)
			apiErr := checkResponse(ep, resp, newKnownSecrets("s3cr3t"))
			_ = resultCode(resp)
			if apiErr == nil {
				continue
			}
			_ = apiErr.Error()
			if apiErr.Code == 0 && len(apiErr.Msg) > 2*excerptBytes {
				t.Errorf("msg of %d bytes", len(apiErr.Msg))
			}
		}
		if e := bodyExcerpt(EndpointListRuns, body, nil); len(e) > excerptBytes || !utf8.ValidString(e) {
			t.Errorf("excerpt %q: %d bytes or invalid UTF-8", e, len(e))
		}
	})
}

func FuzzParseMillis(f *testing.F) {
	for _, seed := range []string{"1711975665710", "", "0", "-1", "+5", "9223372036854775807", "99999999999999999999", "1.5e12", " 1", "１２", "abc", strings.Repeat("\x95", 11)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseMillis(s)
		// The decoder's in-place parsing of a JSON string agrees with it.
		quoted, _ := json.Marshal(s)
		var m millis
		if uerr := m.UnmarshalJSON(quoted); uerr != nil || (m.err == nil) != (err == nil) || !m.t.Equal(ts) {
			t.Errorf("millis of %s = %v, %v (%v); ParseMillis(%q) = %v, %v", quoted, m.t, m.err, uerr, s, ts, err)
		}
		if err != nil {
			if !ts.IsZero() {
				t.Errorf("ParseMillis(%q) = %v with error %v, want the zero time", s, ts, err)
			}
			// The value is quoted with %q, so 32 bytes may take 4 each.
			if len(err.Error()) > 200 {
				t.Errorf("error %q is long", err)
			}
			return
		}
		back, err := ParseMillis(FormatMillis(ts))
		if err != nil || !back.Equal(ts) {
			t.Errorf("ParseMillis(FormatMillis(ParseMillis(%q))) = %v, %v; want %v", s, back, err, ts)
		}
	})
}

func TestRateLimitWait(t *testing.T) {
	for _, tc := range []struct {
		header http.Header
		want   time.Duration
	}{
		{http.Header{}, time.Second},
		{http.Header{"X-Ogw-Ratelimit-Reset": {"3"}}, 3 * time.Second},
		{http.Header{"X-Ogw-Ratelimit-Reset": {" 0 "}}, 0},
		{http.Header{"X-Ogw-Ratelimit-Reset": {"NaN"}}, time.Second},
		{http.Header{"X-Ogw-Ratelimit-Reset": {"Inf"}}, maxRateLimitWait},
		{http.Header{"Retry-After": {"Wed, 21 Oct 2015 07:28:00 GMT"}}, time.Second},
	} {
		if got := rateLimitWait(tc.header); got != tc.want {
			t.Errorf("rateLimitWait(%v) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestTruncateCutsOnARuneBoundary(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 10, "abcdefghij"},
		{"abcdefghijk", 10, "abcdefg…"},
		{strings.Repeat("é", 10), 10, "ééé…"},
		{"abcdefghijk", 2, "…"},
	} {
		got := truncate(tc.s, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
