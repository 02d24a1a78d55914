package watch

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestMetadataValues(t *testing.T) {
	long := strings.Repeat("é", 100) // 200 bytes
	keys := []string{"skill", "channel"}
	for _, tc := range []struct {
		name, metadata string
		want           []string // nil: every value ""
	}{
		{"strings", `{"skill":"refund","channel":"im","other":"x"}`, []string{"refund", "im"}},
		{"a missing key", `{"channel":"im"}`, []string{"", "im"}},
		{"a number and a bool as their JSON text", `{"skill":12.50,"channel":true}`, []string{"12.50", "true"}},
		{"an object, an array", `{"skill":{"a":1},"channel":[1]}`, nil},
		{"null", `{"skill":null,"channel":"im"}`, []string{"", "im"}},
		{"an empty string", `{"skill":"","channel":""}`, nil},
		{"no metadata", ``, nil},
		{"an empty object", `{}`, nil},
		{"invalid JSON", `{"skill":"refund"`, nil},
		{"not an object", `["refund"]`, nil},
		{"a JSON string", `"refund"`, nil},
		{"longer than MaxMetadataBytes", `{"skill":"refund","pad":"` + strings.Repeat("x", maxMetadataBytes) + `"}`, nil},
		{"a value cut at 128 bytes", `{"skill":"` + long + `"}`, []string{strings.Repeat("é", 62) + "…", ""}},
		{"escapes decoded", `{"skill":"a\"b\u00e9"}`, []string{`a"bé`, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := metadataValues(tc.metadata, keys)
			if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("metadataValues(%q) = %q, want %q", tc.metadata, got, tc.want)
			}
			for _, v := range got {
				if len(v) > maxValueBytes {
					t.Errorf("value of %d bytes, more than %d", len(v), maxValueBytes)
				}
			}
		})
	}
}

func TestMetadataLabelLimitPerKey(t *testing.T) {
	m := newMetadataLabels([]string{"skill", "channel"}, 2)
	for _, tc := range []struct {
		metadata string
		want     []string
	}{
		{`{"skill":"a","channel":"im"}`, []string{"a", "im"}},
		{`{"skill":"b"}`, []string{"b", ""}},
		// The limit is per key: a third skill is other, a second channel
		// is not.
		{`{"skill":"c","channel":"web"}`, []string{otherMetadataValue, "web"}},
		{`{"skill":"a","channel":"mail"}`, []string{"a", otherMetadataValue}},
		{`{"skill":"b","channel":"web"}`, []string{"b", "web"}},
		{`{}`, nil},
	} {
		if got := m.valuesOf(tc.metadata); !slices.Equal(got, tc.want) {
			t.Errorf("values(%s) = %q, want %q", tc.metadata, got, tc.want)
		}
	}
}

func TestInFlightRecordKeepsTheMetadata(t *testing.T) {
	for _, r := range []InFlightRecord{
		{ID: "r1", Created: 5, Status: "QUEUED", Started: true, Pos: 3, Metadata: `{"skill":"refund"}`},
		{ID: "r2", Created: 6, Status: "IN_PROGRESS"},
	} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Metadata == "" && strings.Count(string(b), ",") != 6 {
			t.Errorf("a run without metadata encodes as %s, want the 7 fields of version 2", b)
		}
		var got InFlightRecord
		if err := json.Unmarshal(b, &got); err != nil || got != r {
			t.Errorf("%s decodes to %+v, %v; want %+v", b, got, err, r)
		}
	}
	var got InFlightRecord
	if err := json.Unmarshal([]byte(`["r",1,"QUEUED",0,0,0,0,"{}",1]`), &got); err == nil {
		t.Errorf("a run in flight of 9 fields decoded")
	}
}

func TestMigrateStateFromVersion2KeepsItAsItIs(t *testing.T) {
	v2 := `{"duration_buckets":[1],"apps":[{"name":"a","identity":"i","per_session":true,"totals":{"finished":[0,0,0,0]}}],` +
		`"sessions":[{"app":"a","id":"s1","added":1,"tracker":{"watch_start":1,"in_flight":[["r1",1,"QUEUED",0,0,0,0]]},"cursor":{}}]}`
	b, err := MigrateState(2, []byte(v2))
	if err != nil || string(b) != v2 {
		t.Fatalf("MigrateState(2) = %s, %v; want it as it is", b, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if in := st.Sessions[0].Tracker.InFlight; len(in) != 1 || in[0].ID != "r1" || in[0].Metadata != "" {
		t.Errorf("runs in flight of version 2 = %+v", in)
	}
}

// referenceValues is metadataValues by encoding/json: the metadata decoded
// into a map.
func referenceValues(metadata string, keys []string) []string {
	if len(metadata) > maxMetadataBytes {
		return nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(metadata), &fields) != nil || fields == nil {
		return nil
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		raw, ok := fields[k]
		if !ok {
			continue
		}
		var v string
		switch raw[0] {
		case '"':
			_ = json.Unmarshal(raw, &v)
		case '{', '[', 'n':
		default:
			v = string(raw)
		}
		out[i] = BoundedValue(v)
	}
	if !slices.ContainsFunc(out, func(v string) bool { return v != "" }) {
		return nil
	}
	return out
}

func FuzzMetadataValues(f *testing.F) {
	for _, s := range []string{
		`{"skill":"refund","channel":"im"}`, ` { "skill" : 1.5e3 , "channel" : [ "x" , {"a":"}"} ] } `,
		`{"skill":"a\"b","skill":"c"}`, `{"ski\u006cl":"x"}`, `{"channel":"\ud83d\ude00\n"}`, `{"skill":true}`,
		`{"skill":null}`, `[1]`, `"x"`, `{"skill":"` + "\xff" + `"}`, `{"a":{"skill":"nested"}}`, `{}`, ``,
	} {
		f.Add(s)
	}
	keys := []string{"skill", "channel"}
	f.Fuzz(func(t *testing.T, metadata string) {
		got, want := metadataValues(metadata, keys), referenceValues(metadata, keys)
		if !slices.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("metadataValues(%q) = %q, encoding/json says %q", metadata, got, want)
		}
	})
}
