package watch

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// Labels from run metadata (docs/configuration.md, "Labels from run
// metadata"): an app's metadata_labels are top-level keys of its runs'
// metadata JSON whose values label the app's run counters and histograms.
//
// A run's label values are read from its metadata as first seen: the
// tracker keeps the metadata of a run in flight (inflightRun.metadata), so
// that its start and end are counted under the labels its creation was.
// Which values have series of their own is a fact about the app (at most
// its limit per key, the rest "other"), saved with its counts; a value
// admitted stays admitted, so that the same metadata always gives the same
// labels.

// defaultMetadataLabelLimit is how many distinct values of one metadata
// label an app has series for when metadata_label_limit is left out.
const defaultMetadataLabelLimit = 50

// otherMetadataValue labels the runs whose value of a metadata label came
// after the app's limit of distinct values was reached.
const otherMetadataValue = "other"

// maxMetadataBytes bounds the metadata read of a run (the API caps it at
// 255 characters): longer metadata is not read, and gives "" to every
// label, as invalid JSON does; nor is it kept for a run in flight.
const maxMetadataBytes = 1024

// labelSep joins label values into a map key: it cannot occur in valid
// UTF-8, which every value is (decoded JSON, cut on a rune boundary).
const labelSep = "\xff"

// metadataLabels are an app's metadata labels and the values with series of
// their own. Guarded by Watcher.countMu.
type metadataLabels struct {
	keys  []string
	limit int
	// admitted are, per key (in the order of keys), the values with series
	// of their own: at most limit, unless the limit was lowered since.
	admitted []map[string]struct{}
	// values and key are scratch space of values and target, so that
	// counting a run of known values allocates nothing.
	values []string
	key    []byte
}

func newMetadataLabels(keys []string, limit int) *metadataLabels {
	m := &metadataLabels{keys: slices.Clone(keys), limit: limit, admitted: make([]map[string]struct{}, len(keys)),
		values: make([]string, len(keys))}
	for i := range m.admitted {
		m.admitted[i] = make(map[string]struct{})
	}
	return m
}

// values returns the label values of a run with this metadata, in scratch
// space valid until the next call: nil when the app has no metadata labels
// or every value is "", the counts of which are the app's (or session's)
// own. A value not admitted yet is admitted while the key has fewer than
// limit; after that it is "other".
func (m *metadataLabels) valuesOf(metadata string) []string {
	if m == nil || len(m.keys) == 0 || !metadataValuesInto(metadata, m.keys, m.values) {
		return nil
	}
	for i, v := range m.values {
		if v == "" {
			continue
		}
		if _, ok := m.admitted[i][v]; ok {
			continue
		}
		if len(m.admitted[i]) >= m.limit {
			m.values[i] = otherMetadataValue
			continue
		}
		m.admitted[i][v] = struct{}{}
	}
	return m.values
}

// metadataValues returns the values of keys in the metadata JSON, before
// the limit (metadataValuesInto); nil when every value is "".
func metadataValues(metadata string, keys []string) []string {
	out := make([]string, len(keys))
	if !metadataValuesInto(metadata, keys, out) {
		return nil
	}
	return out
}

// metadataValuesInto sets out[i] to the value of keys[i] in the metadata
// JSON: a string as it is, a number, true or false as its JSON text, and ""
// for an object, an array, null, a missing key, or metadata that is not a
// JSON object (or longer than MaxMetadataBytes); each cut to MaxValueBytes.
// When a key is there twice, the last one counts, as encoding/json has it.
// It reports whether any value is not "".
//
// It reads the metadata in place, once checked valid (json.Valid), rather
// than decoding it into a map: a run's metadata is read at each of its
// events, and this allocates nothing but the check's copy and escaped
// strings (BenchmarkMetadataLabels).
func metadataValuesInto(metadata string, keys, out []string) bool {
	clear(out)
	if len(metadata) < 2 || len(metadata) > maxMetadataBytes || metadata == "{}" || !json.Valid([]byte(metadata)) {
		return false
	}
	s := metadata
	i := skipSpace(s, 0)
	if s[i] != '{' {
		return false
	}
	found := false
	for i = skipSpace(s, i+1); s[i] == '"'; {
		end := endOfString(s, i)
		key := jsonString(s[i:end])
		i = skipSpace(s, end)
		i = skipSpace(s, i+1) // the colon
		end = endOfValue(s, i)
		if k := slices.Index(keys, key); k >= 0 {
			out[k] = scalarText(s[i:end])
			found = found || out[k] != ""
		}
		i = skipSpace(s, end)
		if s[i] != ',' {
			break
		}
		i = skipSpace(s, i+1)
	}
	if !found {
		return false
	}
	for k := range out {
		out[k] = BoundedValue(out[k])
	}
	return slices.ContainsFunc(out, func(v string) bool { return v != "" })
}

// The scanners below read JSON already checked valid.

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the string starting at s[i].
func endOfString(s string, i int) int {
	for i++; s[i] != '"'; i++ {
		if s[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// endOfValue returns the index after the value starting at s[i].
func endOfValue(s string, i int) int {
	switch s[i] {
	case '"':
		return endOfString(s, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch s[i] {
			case '"':
				i = endOfString(s, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(s) && !strings.ContainsRune(",}] \t\r\n", rune(s[i])) {
		i++
	}
	return i
}

// jsonString returns the value of a JSON string, quotes included in q: as
// it is when it has no escape and is valid UTF-8, else decoded.
func jsonString(q string) string {
	v := q[1 : len(q)-1]
	if strings.IndexByte(v, '\\') < 0 && utf8.ValidString(v) {
		return v
	}
	var out string
	_ = json.Unmarshal([]byte(q), &out) // valid JSON: it decodes
	return out
}

// scalarText returns what a JSON value gives a label: a string's value, the
// text of a number, true or false, and "" for null, objects and arrays.
func scalarText(v string) string {
	switch v[0] {
	case '"':
		return jsonString(v)
	case '{', '[', 'n':
		return ""
	}
	return v
}

// keptMetadata is the metadata the tracker keeps of a run in flight: "" for
// what gives no label a value anyway, so that the common "{}" costs nothing.
func keptMetadata(metadata string) string {
	if len(metadata) > maxMetadataBytes || strings.TrimSpace(metadata) == "{}" {
		return ""
	}
	return metadata
}

// labelledCounts are the counts of the runs whose metadata labels have the
// same values, not all "".
type labelledCounts struct {
	values []string
	counts // its extra and labelled are unused
	// unready is how its known series have been served while they wait
	// for their first increment, as those of an error code new to a
	// session (hold.go); nil once they are ready.
	unready *servedMark
}

// target returns the counts within cs of the runs with the metadata, and
// where the increments of their known series go: shown when ready (the
// series of cs are, and those of the label values), else held.
func (cs *counts) target(m *metadataLabels, metadata string, ready bool) (*counts, *Counts) {
	gc := cs
	if values := m.valuesOf(metadata); values != nil {
		m.key = m.key[:0]
		for i, v := range values {
			if i > 0 {
				m.key = append(m.key, labelSep...)
			}
			m.key = append(m.key, v...)
		}
		lc := cs.labelled[string(m.key)]
		if lc == nil {
			lc = &labelledCounts{values: slices.Clone(values), unready: &servedMark{}}
			if cs.labelled == nil {
				cs.labelled = make(map[string]*labelledCounts)
			}
			cs.labelled[string(m.key)] = lc
		}
		gc = &lc.counts
		ready = ready && lc.unready == nil
	}
	if ready {
		return gc, &gc.Counts
	}
	return gc, gc.holding()
}
