package collector

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
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

// histogram is a histogram with classic and native buckets whose state can
// be saved and restored. Not safe for concurrent use (the caller locks).
//
// It exposes what a client_golang v1.25 Histogram with the options of
// newRunMetrics exposes, classic buckets and native ones with
// nativeBucketFactor and nativeMaxBucketNumber, with one difference: it never
// resets. Where client_golang, with more than nativeMaxBucketNumber native
// buckets, resets the histogram once nativeMinReset has passed since the last
// reset, this histogram keeps its counts (they are what is saved across
// restarts) and halves its resolution instead, as client_golang does within
// nativeMinReset: it lowers the schema by one, merging pairs of buckets.
type histogram struct {
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

	// created, when not zero, is exposed as the created timestamp.
	created time.Time
}

type nativeBucket struct {
	index int32
	count uint64
}

// newHistogram returns an empty histogram with the classic upper bounds
// classicBounds (increasing; a last +Inf is implicit and dropped), which it
// keeps and never modifies. It panics if the bounds do not increase, as
// client_golang does.
func newHistogram(classicBounds []float64) *histogram {
	bounds := classicBounds
	if n := len(bounds); n > 0 && math.IsInf(bounds[n-1], +1) {
		bounds = bounds[:n-1]
	}
	for i := 1; i < len(bounds); i++ {
		if !(bounds[i-1] < bounds[i]) {
			panic(fmt.Sprintf("histogram buckets must be in increasing order: %g >= %g", bounds[i-1], bounds[i]))
		}
	}
	return &histogram{
		bounds:        bounds,
		buckets:       make([]uint64, len(bounds)),
		schema:        nativeSchema,
		zeroThreshold: prometheus.DefNativeHistogramZeroThreshold,
	}
}

// observe adds v. A NaN counts in count and sum (making the sum NaN) and in
// the +Inf classic bucket, but in no native bucket.
func (h *histogram) observe(v float64) {
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

// metric returns the histogram as a prometheus.Metric of desc with the label
// values: classic buckets (cumulative), sum, count, and the native histogram
// fields (schema, zero threshold, zero count, positive spans and deltas;
// negative too if any) in one dto.Histogram, as client_golang writes them.
// The metric is a copy: later observations do not change it. Label values
// that do not fit desc give an invalid metric, which fails the gathering.
func (h *histogram) metric(desc *prometheus.Desc, labelValues ...string) prometheus.Metric {
	// A constant histogram checks desc and the label values and makes the
	// label pairs; Write then replaces its dto.Histogram with this one.
	labels, err := prometheus.NewConstHistogram(desc, 0, 0, nil, labelValues...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
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
	return &histogramMetric{Metric: labels, histogram: his}
}

// histogramMetric is the Metric returned by histogram.metric.
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
