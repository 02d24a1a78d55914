// Parts of this file are adapted from github.com/prometheus/client_golang
// (prometheus/histogram.go, v1.25.0), Copyright 2015 The Prometheus Authors,
// licensed under the Apache License, Version 2.0: the native bucket bounds
// (nativeBounds), and the way an observation's native bucket is found
// (nativeIndex), the schema lowered (halveNative) and the buckets encoded as
// spans (nativeSpans). Changed here to keep counts across restarts instead of
// resetting. See LICENSE and NOTICE.

// Package histogram is a run histogram as Prometheus exposes it, classic
// and native buckets, that is saved and restored with the counts it belongs
// to: client_golang's histograms can be neither. The watch package keeps
// them with each session's counts; the collector exposes them.
package histogram

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultBuckets returns the classic buckets of the run duration and queue
// histograms unless configured, in seconds: from a second to an hour, the
// default of --collector.duration-buckets.
func DefaultBuckets() []float64 {
	return []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600}
}

// Native (sparse) bucket settings: a 10% bucket width resolves p95 well
// from seconds to hours, and ~100 buckets bound the memory of a series.
// nativeMinReset is the client_golang setting the histograms were first made
// with, which the tests compare against; these never reset (see Histogram),
// since their counts are kept across restarts.
const (
	nativeBucketFactor    = 1.1
	nativeMaxBucketNumber = 100
	nativeMinReset        = time.Hour
)

// nativeSchema is the schema that client_golang picks for
// nativeBucketFactor 1.1: the coarsest whose bucket growth, 2^(2^-schema),
// is at most the factor (2^(1/8) ≈ 1.0905).
const nativeSchema int32 = 3

// nativeSchemaMinimum is the coarsest schema of a native histogram, where a
// bucket spans a factor of 2^16.
const nativeSchemaMinimum int32 = -4

// nativeBounds holds, for each schema from 0 to nativeSchema, the lower
// bounds (within [0.5, 1)) of the buckets of an octave, as the fraction
// returned by math.Frexp. Copied from client_golang's prometheus/histogram.go
// (nativeHistogramBounds; Copyright The Prometheus Authors, Apache License
// 2.0) so that values on a bucket boundary fall in the same bucket.
var nativeBounds = [...][]float64{
	{0.5},
	{0.5, 0.7071067811865475},
	{0.5, 0.5946035575013605, 0.7071067811865475, 0.8408964152537144},
	{
		0.5, 0.5452538663326288, 0.5946035575013605, 0.6484197773255048,
		0.7071067811865475, 0.7711054127039704, 0.8408964152537144, 0.9170040432046711,
	},
}

// Histogram is a histogram with classic and native buckets whose state can
// be saved and restored. Not safe for concurrent use (the caller locks).
//
// It exposes what a client_golang v1.25 Histogram with the options of
// the collector's run metrics expose, classic buckets and native ones with
// nativeBucketFactor and nativeMaxBucketNumber, with one difference: it never
// resets. Where client_golang, with more than nativeMaxBucketNumber native
// buckets, resets the histogram once nativeMinReset has passed since the last
// reset, this histogram keeps its counts (they are what is saved across
// restarts) and halves its resolution instead, as client_golang does within
// nativeMinReset: it lowers the schema by one, merging pairs of buckets.
type Histogram struct {
	bounds  []float64 // classic upper bounds, increasing, without +Inf; shared, never written
	buckets []uint64  // observations per classic bucket (not cumulative); the +Inf bucket is count
	count   uint64
	sum     float64

	schema        int32
	zeroThreshold float64
	zeroCount     uint64
	// positive and negative are the populated native buckets, sorted by
	// index; the bucket with index i holds the values of magnitude in
	// (2^((i-1)/2^schema), 2^(i/2^schema)].
	positive, negative []nativeBucket

	// created, when not zero, is exposed as the created timestamp. It is
	// kept in the state so that a restored histogram does not look new.
	created time.Time

	// exemplars are, per classic bucket and last the +Inf one, the latest
	// observation given an exemplar; nil until one is. Not saved.
	exemplars []observedExemplar
}

// observedExemplar is an exemplar with the value observed.
type observedExemplar struct {
	Exemplar
	value float64
}

type nativeBucket struct {
	index int32
	count uint64
}

// New returns an empty histogram with the classic upper bounds
// classicBounds (increasing; a last +Inf is implicit and dropped), which it
// keeps and never modifies. It panics if the bounds do not increase, as
// client_golang does.
func New(classicBounds []float64) *Histogram {
	bounds := classicBounds
	if n := len(bounds); n > 0 && math.IsInf(bounds[n-1], +1) {
		bounds = bounds[:n-1]
	}
	for i := 1; i < len(bounds); i++ {
		if !(bounds[i-1] < bounds[i]) {
			panic(fmt.Sprintf("histogram buckets must be in increasing order: %g >= %g", bounds[i-1], bounds[i]))
		}
	}
	return &Histogram{
		bounds:        bounds,
		buckets:       make([]uint64, len(bounds)),
		schema:        nativeSchema,
		zeroThreshold: prometheus.DefNativeHistogramZeroThreshold,
	}
}

// ObserveWithExemplar adds v, and makes ex the exemplar of the classic
// bucket v falls into.
func (h *Histogram) ObserveWithExemplar(v float64, ex Exemplar) {
	h.Observe(v)
	if math.IsNaN(v) {
		return
	}
	if h.exemplars == nil {
		h.exemplars = make([]observedExemplar, len(h.bounds)+1)
	}
	h.exemplars[sort.SearchFloat64s(h.bounds, v)] = observedExemplar{ex, v}
}

// Observe adds v. A NaN counts in count and sum (making the sum NaN) and in
// the +Inf classic bucket, but in no native bucket.
func (h *Histogram) Observe(v float64) {
	h.count++
	h.sum += v
	// The first bound >= v; NaN is >= none, so it lands in the +Inf bucket.
	if i := sort.SearchFloat64s(h.bounds, v); i < len(h.buckets) {
		h.buckets[i]++
	}
	if math.IsNaN(v) {
		return
	}
	switch {
	case v > h.zeroThreshold:
		h.positive = addNative(h.positive, nativeIndex(v, h.schema), 1)
	case v < -h.zeroThreshold:
		h.negative = addNative(h.negative, nativeIndex(v, h.schema), 1)
	default:
		h.zeroCount++
	}
	// Checked after every observation, not only after one that adds a
	// bucket: halving may leave more than the limit when buckets lie far
	// apart, and client_golang then halves again at the next observation.
	if len(h.positive)+len(h.negative) > nativeMaxBucketNumber && h.schema > nativeSchemaMinimum {
		h.schema--
		h.positive = halveNative(h.positive)
		h.negative = halveNative(h.negative)
	}
}

// Add adds the observations of o, a histogram with the same classic bounds,
// to h, as if h had observed them: the native buckets at the coarser of the
// two schemas, halved further while there are more than
// nativeMaxBucketNumber; o's exemplars, the later ones, where it has some.
// Zero buckets are added as they are (both histograms have the default zero
// threshold). o is left as it was.
func (h *Histogram) Add(o *Histogram) {
	h.count += o.count
	h.sum += o.sum
	for i := range h.buckets {
		h.buckets[i] += o.buckets[i]
	}
	h.zeroCount += o.zeroCount
	for h.schema > o.schema {
		h.schema--
		h.positive = halveNative(h.positive)
		h.negative = halveNative(h.negative)
	}
	for _, side := range []struct {
		dst *[]nativeBucket
		src []nativeBucket
	}{{&h.positive, o.positive}, {&h.negative, o.negative}} {
		src := side.src
		if o.schema > h.schema {
			src = slices.Clone(src)
			for range o.schema - h.schema {
				src = halveNative(src)
			}
		}
		for _, b := range src {
			*side.dst = addNative(*side.dst, b.index, b.count)
		}
	}
	for len(h.positive)+len(h.negative) > nativeMaxBucketNumber && h.schema > nativeSchemaMinimum {
		h.schema--
		h.positive = halveNative(h.positive)
		h.negative = halveNative(h.negative)
	}
	if o.exemplars != nil {
		if h.exemplars == nil {
			h.exemplars = make([]observedExemplar, len(h.bounds)+1)
		}
		for i, e := range o.exemplars {
			if e.RunID != "" {
				h.exemplars[i] = e
			}
		}
	}
}

// Clone returns a copy of h that shares nothing written with it.
func (h *Histogram) Clone() *Histogram {
	c := *h
	c.buckets = slices.Clone(h.buckets)
	c.positive, c.negative = slices.Clone(h.positive), slices.Clone(h.negative)
	c.exemplars = slices.Clone(h.exemplars)
	return &c
}

// Count returns how many values were observed.
func (h *Histogram) Count() uint64 { return h.count }

// nativeIndex returns the index of the native bucket of |v| at schema, the
// way client_golang computes it; ±Inf goes to the bucket after the one of
// ±math.MaxFloat64.
func nativeIndex(v float64, schema int32) int32 {
	inf := math.IsInf(v, 0)
	if inf {
		v = math.MaxFloat64
	}
	frac, exp := math.Frexp(math.Abs(v))
	var i int
	if schema > 0 {
		bounds := nativeBounds[schema]
		i = sort.SearchFloat64s(bounds, frac) + (exp-1)*len(bounds)
	} else {
		i = exp
		if frac == 0.5 {
			i--
		}
		offset := (1 << -schema) - 1
		i = (i + offset) >> -schema
	}
	if inf {
		i++
	}
	return int32(i)
}

// addNative adds n to the bucket index of the sorted buckets bs.
func addNative(bs []nativeBucket, index int32, n uint64) []nativeBucket {
	i := sort.Search(len(bs), func(i int) bool { return bs[i].index >= index })
	if i < len(bs) && bs[i].index == index {
		bs[i].count += n
		return bs
	}
	bs = append(bs, nativeBucket{})
	copy(bs[i+1:], bs[i:])
	bs[i] = nativeBucket{index: index, count: n}
	return bs
}

// halveNative merges the sorted buckets bs pairwise into the buckets of the
// next lower schema, in place: index i becomes ⌈i/2⌉.
func halveNative(bs []nativeBucket) []nativeBucket {
	out := bs[:0]
	for _, b := range bs {
		index := b.index
		if index > 0 {
			index++
		}
		index /= 2 // rounds towards zero: ⌈i/2⌉ for i <= 0 as well
		if n := len(out); n > 0 && out[n-1].index == index {
			out[n-1].count += b.count
			continue
		}
		out = append(out, nativeBucket{index: index, count: b.count})
	}
	return out
}

// Metric returns the histogram as a prometheus.Metric of desc with the label
// values: classic buckets (cumulative), sum, count, and the native histogram
// fields (schema, zero threshold, zero count, positive spans and deltas;
// negative too if any) in one dto.Histogram, as client_golang writes them.
// The metric is a copy: later observations do not change it. Label values
// that do not fit desc give an invalid metric, which fails the gathering.
func (h *Histogram) Metric(desc *prometheus.Desc, labelValues ...string) prometheus.Metric {
	return With(h.Fields(), desc, labelValues...)
}

// With returns the histogram fields his as a prometheus.Metric of
// desc with the label values; its Write shares his, which must not change.
func With(his *dto.Histogram, desc *prometheus.Desc, labelValues ...string) prometheus.Metric {
	// A constant histogram checks desc and the label values and makes the
	// label pairs; Write then replaces its dto.Histogram with his.
	labels, err := prometheus.NewConstHistogram(desc, 0, 0, nil, labelValues...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return &histogramMetric{Metric: labels, histogram: his}
}

// Fields returns the histogram as client_golang writes it, a copy.
func (h *Histogram) Fields() *dto.Histogram {
	n := len(h.bounds)
	buckets := make([]dto.Bucket, n)
	upper := make([]float64, n)
	cumulative := make([]uint64, n)
	his := &dto.Histogram{
		Bucket:        make([]*dto.Bucket, n),
		SampleCount:   new(h.count),
		SampleSum:     new(h.sum),
		Schema:        new(h.schema),
		ZeroThreshold: new(h.zeroThreshold),
		ZeroCount:     new(h.zeroCount),
	}
	var below uint64
	for i, bound := range h.bounds {
		below += h.buckets[i]
		cumulative[i], upper[i] = below, bound
		buckets[i].CumulativeCount = &cumulative[i]
		buckets[i].UpperBound = &upper[i]
		his.Bucket[i] = &buckets[i]
	}
	if h.exemplars != nil {
		for i := range his.Bucket {
			his.Bucket[i].Exemplar = h.exemplars[i].Proto(h.exemplars[i].value)
		}
		// As client_golang: a +Inf bucket is written only to carry an
		// exemplar; exposition adds it otherwise.
		if ex := h.exemplars[n].Proto(h.exemplars[n].value); ex != nil {
			his.Bucket = append(his.Bucket, &dto.Bucket{
				CumulativeCount: new(h.count), UpperBound: new(math.Inf(+1)), Exemplar: ex,
			})
		}
	}
	his.PositiveSpan, his.PositiveDelta = nativeSpans(h.positive)
	his.NegativeSpan, his.NegativeDelta = nativeSpans(h.negative)
	// As client_golang: without a zero threshold and observations, a no-op
	// span keeps the histogram from looking like a classic one.
	if h.zeroThreshold == 0 && h.zeroCount == 0 && len(his.PositiveSpan) == 0 && len(his.NegativeSpan) == 0 {
		his.PositiveSpan = []*dto.BucketSpan{{Offset: new(int32(0)), Length: new(uint32(0))}}
	}
	if !h.created.IsZero() {
		his.CreatedTimestamp = timestamppb.New(h.created)
	}
	return his
}

// histogramMetric is the Metric returned by Metric and With.
type histogramMetric struct {
	prometheus.Metric // a constant histogram: the desc and the label pairs
	histogram         *dto.Histogram
}

func (m *histogramMetric) Write(out *dto.Metric) error {
	if err := m.Metric.Write(out); err != nil {
		return err
	}
	out.Histogram = m.histogram
	return nil
}

// nativeSpans encodes the sorted buckets bs as client_golang does: spans of
// consecutive indices, where a gap of one or two empty buckets is written as
// zero counts rather than as a new span, and each count as the delta to the
// previous one.
func nativeSpans(bs []nativeBucket) ([]*dto.BucketSpan, []int64) {
	if len(bs) == 0 {
		return nil, nil
	}
	var (
		spans  []*dto.BucketSpan
		deltas = make([]int64, 0, len(bs))
		prev   int64
		next   int32
	)
	appendDelta := func(count int64) {
		*spans[len(spans)-1].Length++
		deltas = append(deltas, count-prev)
		prev = count
	}
	for n, b := range bs {
		gap := b.index - next
		if n == 0 || gap > 2 {
			spans = append(spans, &dto.BucketSpan{Offset: new(gap), Length: new(uint32(0))})
		} else {
			for range gap {
				appendDelta(0)
			}
		}
		appendDelta(int64(b.count))
		next = b.index + 1
	}
	return spans, deltas
}

// State is a histogram's state for saving. Its meaning does not
// depend on this program's version: native bucket indices are those of
// Prometheus native histograms at Schema. In JSON a sum that is NaN or ±Inf
// is the string "NaN", "+Inf" or "-Inf".
type State struct {
	// Bounds are the classic upper bounds, without +Inf; Buckets the
	// observations in each (not cumulative). The +Inf bucket is Count.
	Bounds  []float64 `json:"bounds,omitempty"`
	Buckets []uint64  `json:"buckets"`
	Count   uint64    `json:"count"`
	Sum     float64   `json:"sum"`

	Schema        int32   `json:"schema"`
	ZeroThreshold float64 `json:"zero_threshold"`
	ZeroCount     uint64  `json:"zero_count"`
	// Positive and Negative are the populated native buckets, in
	// increasing index order.
	Positive []NativeSpan `json:"positive,omitempty"`
	Negative []NativeSpan `json:"negative,omitempty"`

	// Created is when the histogram began counting; zero if not known.
	Created time.Time `json:"created,omitzero"`
}

// NativeSpan is a run of consecutive native buckets: Counts[i] is the count
// of the bucket with index Start+i. A zero count is an empty bucket, written
// where that is shorter than starting a new span.
type NativeSpan struct {
	Start  int32    `json:"start"`
	Counts []uint64 `json:"counts"`
}

// State returns the state of h, sharing nothing with it.
func (h *Histogram) State() State {
	return State{
		Bounds:        append([]float64(nil), h.bounds...),
		Buckets:       append([]uint64(nil), h.buckets...),
		Count:         h.count,
		Sum:           h.sum,
		Schema:        h.schema,
		ZeroThreshold: h.zeroThreshold,
		ZeroCount:     h.zeroCount,
		Positive:      stateSpans(h.positive),
		Negative:      stateSpans(h.negative),
		Created:       h.created,
	}
}

// stateSpans writes the sorted buckets bs as spans, filling a gap of up to
// two buckets with zeros (shorter in JSON than a new span).
func stateSpans(bs []nativeBucket) []NativeSpan {
	var spans []NativeSpan
	for _, b := range bs {
		if n := len(spans); n > 0 {
			last := &spans[n-1]
			if gap := int64(b.index) - int64(last.Start) - int64(len(last.Counts)); gap <= 2 {
				for ; gap > 0; gap-- {
					last.Counts = append(last.Counts, 0)
				}
				last.Counts = append(last.Counts, b.count)
				continue
			}
		}
		spans = append(spans, NativeSpan{Start: b.index, Counts: []uint64{b.count}})
	}
	return spans
}

// FromState returns the histogram with the classic upper bounds
// classicBounds (as for New) and the state s. It fails if s does not
// fit: other classic buckets, a schema finer than this histogram's, native
// buckets out of order, or counts that do not add up.
func FromState(classicBounds []float64, s State) (*Histogram, error) {
	h := New(classicBounds)
	if len(s.Buckets) != len(h.bounds) || len(s.Bounds) != len(h.bounds) {
		return nil, fmt.Errorf("state has %d classic buckets (%d bounds), the histogram %d", len(s.Buckets), len(s.Bounds), len(h.bounds))
	}
	for i, b := range h.bounds {
		if s.Bounds[i] != b {
			return nil, fmt.Errorf("classic bucket %d of the state has the upper bound %g, the histogram's %g", i+1, s.Bounds[i], b)
		}
	}
	if s.Schema < nativeSchemaMinimum || s.Schema > nativeSchema {
		return nil, fmt.Errorf("state has native schema %d, outside %d to %d", s.Schema, nativeSchemaMinimum, nativeSchema)
	}
	if !(s.ZeroThreshold >= 0) || math.IsInf(s.ZeroThreshold, 0) {
		return nil, fmt.Errorf("state has an invalid zero threshold %g", s.ZeroThreshold)
	}
	var classic uint64
	for _, n := range s.Buckets {
		classic += n
	}
	if classic > s.Count {
		return nil, fmt.Errorf("state has %d observations in classic buckets but a count of %d", classic, s.Count)
	}
	positive, err := bucketsFromSpans(s.Positive)
	if err != nil {
		return nil, fmt.Errorf("positive native buckets of the state: %w", err)
	}
	negative, err := bucketsFromSpans(s.Negative)
	if err != nil {
		return nil, fmt.Errorf("negative native buckets of the state: %w", err)
	}
	native := s.ZeroCount
	for _, bs := range [][]nativeBucket{positive, negative} {
		for _, b := range bs {
			native += b.count
		}
	}
	if native > s.Count {
		return nil, fmt.Errorf("state has %d observations in native buckets but a count of %d", native, s.Count)
	}
	copy(h.buckets, s.Buckets)
	h.count, h.sum = s.Count, s.Sum
	h.schema, h.zeroThreshold, h.zeroCount = s.Schema, s.ZeroThreshold, s.ZeroCount
	h.positive, h.negative = positive, negative
	h.created = s.Created
	return h, nil
}

// bucketsFromSpans returns the populated buckets of spans, which must be in
// increasing index order.
func bucketsFromSpans(spans []NativeSpan) ([]nativeBucket, error) {
	var bs []nativeBucket
	next := int64(math.MinInt32)
	for _, s := range spans {
		if int64(s.Start) < next {
			return nil, fmt.Errorf("span at %d overlaps or precedes the one before", s.Start)
		}
		if end := int64(s.Start) + int64(len(s.Counts)); end > math.MaxInt32+1 {
			return nil, fmt.Errorf("span at %d of %d buckets goes beyond the largest index", s.Start, len(s.Counts))
		}
		for i, n := range s.Counts {
			if n > 0 {
				bs = append(bs, nativeBucket{index: s.Start + int32(i), count: n})
			}
		}
		next = int64(s.Start) + int64(len(s.Counts))
	}
	return bs, nil
}

// MarshalJSON writes s with a sum that is not a finite number as a string.
func (s State) MarshalJSON() ([]byte, error) {
	type plain State
	return json.Marshal(struct {
		plain
		Sum jsonFloat `json:"sum"`
	}{plain(s), jsonFloat(s.Sum)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *State) UnmarshalJSON(b []byte) error {
	type plain State
	var v struct {
		plain
		Sum jsonFloat `json:"sum"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = State(v.plain)
	s.Sum = float64(v.Sum)
	return nil
}

// jsonFloat is a float64 that is a JSON number when finite, else one of the
// strings "NaN", "+Inf" and "-Inf".
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, +1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(v)
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '"' {
		return json.Unmarshal(b, (*float64)(f))
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	switch s {
	case "NaN":
		*f = jsonFloat(math.NaN())
	case "+Inf":
		*f = jsonFloat(math.Inf(+1))
	case "-Inf":
		*f = jsonFloat(math.Inf(-1))
	default:
		return fmt.Errorf("a number, \"NaN\", \"+Inf\" or \"-Inf\" expected, got %q", s)
	}
	return nil
}
