package watch

import (
	"encoding/json"
	"slices"
	"strings"
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

// DefaultMetadataLabelLimit is how many distinct values of one metadata
// label an app has series for when metadata_label_limit is left out.
const DefaultMetadataLabelLimit = 50

// OtherMetadataValue labels the runs whose value of a metadata label came
// after the app's limit of distinct values was reached.
const OtherMetadataValue = "other"

// MaxMetadataBytes bounds the metadata read of a run (the API caps it at
// 255 characters): longer metadata is not read, and gives "" to every
// label, as invalid JSON does; nor is it kept for a run in flight.
const MaxMetadataBytes = 1024

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
}

func newMetadataLabels(keys []string, limit int) *metadataLabels {
	m := &metadataLabels{keys: slices.Clone(keys), limit: limit, admitted: make([]map[string]struct{}, len(keys))}
	for i := range m.admitted {
		m.admitted[i] = make(map[string]struct{})
	}
	return m
}

// values returns the label values of a run with this metadata: nil when
// the app has no metadata labels or every value is "", the counts of which
// are the app's (or session's) own. A value not admitted yet is admitted
// while the key has fewer than limit; after that it is "other".
func (m *metadataLabels) values(metadata string) []string {
	if m == nil || len(m.keys) == 0 {
		return nil
	}
	raw := metadataValues(metadata, m.keys)
	if raw == nil {
		return nil
	}
	for i, v := range raw {
		if v == "" {
			continue
		}
		if _, ok := m.admitted[i][v]; ok {
			continue
		}
		if len(m.admitted[i]) >= m.limit {
			raw[i] = OtherMetadataValue
			continue
		}
		m.admitted[i][v] = struct{}{}
	}
	return raw
}

// metadataValues returns the values of keys in the metadata JSON, before
// the limit: a string as it is, a number, true or false as its JSON text,
// and "" for an object, an array, null, a missing key, or metadata that is
// not a JSON object (or longer than MaxMetadataBytes); each cut to
// MaxValueBytes. It returns nil when every value is "".
func metadataValues(metadata string, keys []string) []string {
	if len(metadata) < 2 || len(metadata) > MaxMetadataBytes || metadata == "{}" {
		return nil
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal([]byte(metadata), &fields) != nil {
		return nil
	}
	var out []string
	for i, k := range keys {
		raw, ok := fields[k]
		if !ok || len(raw) == 0 {
			continue
		}
		var v string
		switch raw[0] {
		case '"':
			if json.Unmarshal(raw, &v) != nil {
				continue
			}
		case '{', '[', 'n':
			continue
		default:
			v = string(raw)
		}
		if v == "" {
			continue
		}
		if out == nil {
			out = make([]string, len(keys))
		}
		out[i] = BoundedValue(v)
	}
	return out
}

// keptMetadata is the metadata the tracker keeps of a run in flight: "" for
// what gives no label a value anyway, so that the common "{}" costs nothing.
func keptMetadata(metadata string) string {
	if len(metadata) > MaxMetadataBytes || strings.TrimSpace(metadata) == "{}" {
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
	if values := m.values(metadata); values != nil {
		key := strings.Join(values, labelSep)
		lc := cs.labelled[key]
		if lc == nil {
			lc = &labelledCounts{values: values, unready: &servedMark{}}
			if cs.labelled == nil {
				cs.labelled = make(map[string]*labelledCounts)
			}
			cs.labelled[key] = lc
		}
		gc = &lc.counts
		ready = ready && lc.unready == nil
	}
	if ready {
		return gc, &gc.Counts
	}
	return gc, gc.holding()
}
