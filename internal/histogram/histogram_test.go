package histogram

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/aily-exporter/aily_exporter/internal/testkit"
)

// equalHistograms compares dto messages; a NaN sum equals a NaN sum.
var equalHistograms = cmp.Options{protocmp.Transform(), cmpopts.EquateNaNs()}

// referenceHistogram is the client_golang histogram that ours must match.
func referenceHistogram(bounds []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                            "reference",
		Buckets:                         bounds,
		NativeHistogramBucketFactor:     nativeBucketFactor,
		NativeHistogramMaxBucketNumber:  nativeMaxBucketNumber,
		NativeHistogramMinResetDuration: nativeMinReset,
	})
}

var testDesc = prometheus.NewDesc("test_seconds", "A test histogram.", []string{"status"}, nil)

// written returns what m writes.
func writtenMetric(t testing.TB, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatalf("write: %v", err)
	}
	return &out
}

// histogramFields returns the dto.Histogram of m without the created
// timestamp, which client_golang sets to the time it was made.
func histogramFields(t testing.TB, m prometheus.Metric) *dto.Histogram {
	t.Helper()
	h := writtenMetric(t, m).GetHistogram()
	if h == nil {
		t.Fatal("the metric has no histogram")
	}
	h.CreatedTimestamp = nil
	return h
}

func randomDurations(seed uint64, n int, scale float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = r.Float64() * scale
	}
	return vs
}

// withNeighbours returns each value and the floats just below and above it.
func withNeighbours(vs ...float64) []float64 {
	var out []float64
	for _, v := range vs {
		out = append(out, math.Nextafter(v, math.Inf(-1)), v, math.Nextafter(v, math.Inf(+1)))
	}
	return out
}

// nativeBoundaries returns the bucket boundaries of schema 3 from 2^lowExp
// to 2^highExp (exclusive), as client_golang computes them.
func nativeBoundaries(lowExp, highExp int) []float64 {
	var vs []float64
	for e := lowExp; e < highExp; e++ {
		for _, frac := range nativeBounds[3] {
			vs = append(vs, math.Ldexp(frac, e+1))
		}
	}
	return vs
}

func negated(vs []float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = -v
	}
	return out
}

func concatValues(vss ...[]float64) []float64 {
	var out []float64
	for _, vs := range vss {
		out = append(out, vs...)
	}
	return out
}

func manyBounds(n int) []float64 {
	bounds := make([]float64, n)
	for i := range bounds {
		bounds[i] = float64(i+1) * 10
	}
	return bounds
}

// powersOfTwo returns 2^from, 2^(from+step), … up to 2^to.
func powersOfTwo(from, to, step int) []float64 {
	var vs []float64
	for e := from; e <= to; e += step {
		vs = append(vs, math.Ldexp(1, e))
	}
	return vs
}

var defZeroThreshold = prometheus.DefNativeHistogramZeroThreshold

// histogramCases are data sets observed by the tests that compare with
// client_golang. schema is the native schema after all the observations.
var histogramCases = []struct {
	name   string
	bounds []float64
	values []float64
	schema int32
}{
	{name: "no observations", bounds: DefaultBuckets(), schema: 3},
	{name: "one observation", bounds: DefaultBuckets(), values: []float64{42}, schema: 3},
	{
		name:   "random durations up to two hours within 100 native buckets",
		bounds: DefaultBuckets(), values: randomDurations(1, 2000, 7200), schema: 3,
	},
	{
		name:   "random durations up to two hours beyond 100 native buckets halve the resolution",
		bounds: DefaultBuckets(), values: randomDurations(2, 100000, 7200), schema: 2,
	},
	{
		name:   "values on and next to the classic bucket bounds",
		bounds: DefaultBuckets(), values: withNeighbours(DefaultBuckets()...), schema: 3,
	},
	{
		name:   "values on and next to native bucket boundaries",
		bounds: DefaultBuckets(), values: withNeighbours(nativeBoundaries(-1, 3)...), schema: 3,
	},
	{
		name:   "values on native bucket boundaries of a halved resolution",
		bounds: DefaultBuckets(), values: nativeBoundaries(-10, 10), schema: 2,
	},
	{
		name:   "powers of two, on a boundary at every schema",
		bounds: DefaultBuckets(), values: withNeighbours(powersOfTwo(-8, 12, 1)...), schema: 3,
	},
	{name: "zero and negative zero in the zero bucket", bounds: DefaultBuckets(), values: []float64{0, math.Copysign(0, -1), 0, 1}, schema: 3},
	{
		name:   "values at and below the zero threshold in the zero bucket",
		bounds: DefaultBuckets(),
		values: concatValues(withNeighbours(defZeroThreshold, -defZeroThreshold), []float64{math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 1e-300, 1e-40}),
		schema: 3,
	},
	{
		name:   "negative values in negative buckets",
		bounds: DefaultBuckets(), values: negated(randomDurations(3, 1000, 100)), schema: 3,
	},
	{
		name:   "positive and negative values beyond 100 native buckets halve both",
		bounds: DefaultBuckets(),
		values: concatValues(randomDurations(4, 500, 7200), negated(randomDurations(5, 500, 0.01)), nativeBoundaries(-3, 4)),
		schema: 2,
	},
	{
		name:   "NaN counts and sums but has no native bucket",
		bounds: DefaultBuckets(), values: []float64{1, math.NaN(), 3, math.NaN()}, schema: 3,
	},
	{
		name:   "infinities and the largest floats in buckets of their own",
		bounds: DefaultBuckets(),
		values: []float64{math.Inf(+1), math.MaxFloat64, 1, math.Inf(-1), -math.MaxFloat64, math.Inf(+1)},
		schema: 3,
	},
	{
		name:   "a wide range lowers the schema several times",
		bounds: DefaultBuckets(), values: powersOfTwo(-100, 100, 1), schema: -2,
	},
	{
		name:   "buckets too far apart to merge lower the schema to -4 and no further",
		bounds: DefaultBuckets(), values: concatValues(powersOfTwo(-1000, 1000, 8), negated(powersOfTwo(-200, 200, 8))), schema: -4,
	},
	{
		name:   "buckets still too many after halving halve again at the next observation",
		bounds: DefaultBuckets(), values: concatValues(powersOfTwo(-110, 1000, 11), []float64{1, 1, 1}), schema: -1,
	},
	{name: "no classic buckets", bounds: nil, values: randomDurations(6, 500, 100), schema: 3},
	{name: "an explicit +Inf classic bucket is dropped", bounds: []float64{1, 10, math.Inf(+1)}, values: []float64{0.5, 5, 50, math.Inf(+1)}, schema: 3},
	{
		name:   "many classic buckets, searched by bisection in client_golang",
		bounds: manyBounds(50), values: withNeighbours(manyBounds(50)...), schema: 3,
	},
}

func TestHistogramMatchesClientGolang(t *testing.T) {
	for _, tc := range histogramCases {
		t.Run(tc.name, func(t *testing.T) {
			ours, ref := New(tc.bounds), referenceHistogram(tc.bounds)
			// Compare at a few points along the way too: client_golang
			// swaps its hot and cold counts at every Write.
			step := max(len(tc.values)/4, 1)
			for i, v := range tc.values {
				ours.Observe(v)
				ref.Observe(v)
				if (i+1)%step == 0 {
					want, got := histogramFields(t, ref), histogramFields(t, ours.Metric(testDesc, "x"))
					if diff := cmp.Diff(want, got, equalHistograms); diff != "" {
						t.Fatalf("after %d observations (-client_golang +ours):\n%s", i+1, diff)
					}
				}
			}
			want, got := histogramFields(t, ref), histogramFields(t, ours.Metric(testDesc, "x"))
			if diff := cmp.Diff(want, got, equalHistograms); diff != "" {
				t.Errorf("(-client_golang +ours):\n%s", diff)
			}
			if got.GetSchema() != tc.schema {
				t.Errorf("schema %d, want %d", got.GetSchema(), tc.schema)
			}
		})
	}
}

// restored returns h saved to JSON and restored.
func restored(t *testing.T, bounds []float64, h *Histogram) *Histogram {
	t.Helper()
	b, err := json.Marshal(h.State())
	if err != nil {
		t.Fatalf("marshal state: %v", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("unmarshal state %s: %v", b, err)
	}
	r, err := FromState(bounds, s)
	if err != nil {
		t.Fatalf("restore state %s: %v", b, err)
	}
	return r
}

func TestHistogramRestoredFromStateIsTheSame(t *testing.T) {
	created := testkit.T0
	for _, tc := range histogramCases {
		t.Run(tc.name, func(t *testing.T) {
			h := New(tc.bounds)
			h.created = created
			for _, v := range tc.values {
				h.Observe(v)
			}
			r := restored(t, tc.bounds, h)
			want, got := writtenMetric(t, h.Metric(testDesc, "x")), writtenMetric(t, r.Metric(testDesc, "x"))
			if diff := cmp.Diff(want, got, equalHistograms); diff != "" {
				t.Errorf("metric (-saved +restored):\n%s", diff)
			}
			if diff := cmp.Diff(h.State(), r.State(), cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("state (-saved +restored):\n%s", diff)
			}
		})
	}
}

func TestHistogramRestoredMidwayMatchesClientGolangWithoutRestart(t *testing.T) {
	for _, tc := range histogramCases {
		t.Run(tc.name, func(t *testing.T) {
			ours, ref := New(tc.bounds), referenceHistogram(tc.bounds)
			half := len(tc.values) / 2
			for _, v := range tc.values[:half] {
				ours.Observe(v)
				ref.Observe(v)
			}
			ours = restored(t, tc.bounds, ours)
			for _, v := range tc.values[half:] {
				ours.Observe(v)
				ref.Observe(v)
			}
			want, got := histogramFields(t, ref), histogramFields(t, ours.Metric(testDesc, "x"))
			if diff := cmp.Diff(want, got, equalHistograms); diff != "" {
				t.Errorf("(-client_golang +ours):\n%s", diff)
			}
		})
	}
}

func TestHistogramMetric(t *testing.T) {
	h := New([]float64{1, 5})
	for _, v := range []float64{0.5, 2, 3, 10} {
		h.Observe(v)
	}
	h.created = time.Unix(1700000000, 0)
	got := writtenMetric(t, h.Metric(testDesc, "SUCCEEDED"))
	want := &dto.Metric{
		Label: []*dto.LabelPair{{Name: new("status"), Value: new("SUCCEEDED")}},
		Histogram: &dto.Histogram{
			SampleCount: new(uint64(4)),
			SampleSum:   new(15.5),
			Bucket: []*dto.Bucket{
				{UpperBound: new(1.0), CumulativeCount: new(uint64(1))},
				{UpperBound: new(5.0), CumulativeCount: new(uint64(3))},
			},
			CreatedTimestamp: got.GetHistogram().GetCreatedTimestamp(),
			Schema:           new(int32(3)),
			ZeroThreshold:    new(defZeroThreshold),
			ZeroCount:        new(uint64(0)),
			// 0.5 is the upper bound of bucket -8; 2, 3 and 10 are in
			// buckets 8, 13 and 27.
			PositiveSpan: []*dto.BucketSpan{
				{Offset: new(int32(-8)), Length: new(uint32(1))},
				{Offset: new(int32(15)), Length: new(uint32(1))},
				{Offset: new(int32(4)), Length: new(uint32(1))},
				{Offset: new(int32(13)), Length: new(uint32(1))},
			},
			PositiveDelta: []int64{1, 0, 0, 0},
		},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := got.GetHistogram().GetCreatedTimestamp().AsTime(); !got.Equal(h.created) {
		t.Errorf("created timestamp %v, want %v", got, h.created)
	}

	t.Run("is a copy that later observations leave alone", func(t *testing.T) {
		m := h.Metric(testDesc, "SUCCEEDED")
		h.Observe(1)
		if got := writtenMetric(t, m).GetHistogram().GetSampleCount(); got != 4 {
			t.Errorf("sample count %d, want 4", got)
		}
	})
	t.Run("without a created time has no created timestamp", func(t *testing.T) {
		if ts := writtenMetric(t, New(nil).Metric(testDesc, "x")).GetHistogram().GetCreatedTimestamp(); ts != nil {
			t.Errorf("created timestamp %v, want none", ts)
		}
	})
	t.Run("with the wrong number of label values is invalid", func(t *testing.T) {
		var out dto.Metric
		err := h.Metric(testDesc, "a", "b").Write(&out)
		if err == nil || !strings.Contains(err.Error(), "label") {
			t.Errorf("error %v, want one about labels", err)
		}
	})
}

func TestHistogramStateJSON(t *testing.T) {
	h := New([]float64{1, 5})
	for _, v := range []float64{0.5, 2, 2.1, 2.5, 10, 0, -1} {
		h.Observe(v)
	}
	h.created = testkit.T0
	b, err := json.Marshal(h.State())
	if err != nil {
		t.Fatal(err)
	}
	// 2, 2.1 and 2.5 are in buckets 8, 9 and 11: one span, with 10 empty.
	want := `{"bounds":[1,5],"buckets":[3,3],"count":7,"schema":3,"zero_threshold":2.938735877055719e-39,"zero_count":1,` +
		`"positive":[{"start":-8,"counts":[1]},{"start":8,"counts":[1,1,0,1]},{"start":27,"counts":[1]}],` +
		`"negative":[{"start":0,"counts":[1]}],"created":"2025-03-01T12:00:00Z","sum":16.1}`
	if string(b) != want {
		t.Errorf("state in JSON:\n%s\nwant\n%s", b, want)
	}

	for _, sum := range []float64{math.NaN(), math.Inf(+1), math.Inf(-1), -0.25} {
		s := State{Sum: sum}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("marshal sum %g: %v", sum, err)
		}
		var r State
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if !(r.Sum == sum || math.IsNaN(sum) && math.IsNaN(r.Sum)) {
			t.Errorf("sum %g round-trips to %g through %s", sum, r.Sum, b)
		}
	}
	var s State
	if err := json.Unmarshal([]byte(`{"sum":"many"}`), &s); err == nil {
		t.Error("a sum that is neither a number nor NaN or an infinity is accepted")
	}
}

func TestHistogramFromStateRejectsWhatDoesNotFit(t *testing.T) {
	bounds := []float64{1, 5}
	valid := func() State {
		h := New(bounds)
		for _, v := range []float64{0.5, 2, 3, 10, -1, 0} {
			h.Observe(v)
		}
		return h.State()
	}
	for _, tc := range []struct {
		name   string
		bounds []float64
		change func(*State)
		want   string
	}{
		{
			name: "more classic buckets", bounds: []float64{1, 5, 10},
			want: "state has 2 classic buckets (2 bounds), the histogram 3",
		},
		{
			name: "fewer classic buckets", bounds: []float64{1},
			want: "state has 2 classic buckets (2 bounds), the histogram 1",
		},
		{
			name: "other classic bounds", bounds: []float64{1, 6},
			want: "classic bucket 2 of the state has the upper bound 5, the histogram's 6",
		},
		{
			name: "counts without bounds", change: func(s *State) { s.Bounds = nil },
			want: "state has 2 classic buckets (0 bounds), the histogram 2",
		},
		{
			name: "a schema finer than the histogram's", change: func(s *State) { s.Schema = 4 },
			want: "state has native schema 4, outside -4 to 3",
		},
		{
			name: "a schema below -4", change: func(s *State) { s.Schema = -5 },
			want: "state has native schema -5, outside -4 to 3",
		},
		{
			name: "a NaN zero threshold", change: func(s *State) { s.ZeroThreshold = math.NaN() },
			want: "invalid zero threshold NaN",
		},
		{
			name: "more in classic buckets than the count", change: func(s *State) { s.Buckets[0] = 100 },
			want: "102 observations in classic buckets but a count of 6",
		},
		{
			name: "more in native buckets than the count", change: func(s *State) { s.ZeroCount = 100 },
			want: "105 observations in native buckets but a count of 6",
		},
		{
			name: "overlapping spans",
			change: func(s *State) {
				s.Positive = []NativeSpan{{Start: 3, Counts: []uint64{1, 1}}, {Start: 4, Counts: []uint64{1}}}
			},
			want: "positive native buckets of the state: span at 4 overlaps or precedes the one before",
		},
		{
			name:   "a span beyond the largest index",
			change: func(s *State) { s.Negative = []NativeSpan{{Start: math.MaxInt32, Counts: []uint64{1, 1}}} },
			want:   "negative native buckets of the state: span at 2147483647 of 2 buckets goes beyond the largest index",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			if tc.change != nil {
				tc.change(&s)
			}
			b := bounds
			if tc.bounds != nil {
				b = tc.bounds
			}
			h, err := FromState(b, s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("histogramFromState = %v, %v; want an error with %q", h, err, tc.want)
			}
		})
	}

	t.Run("a coarser schema and empty buckets in spans are accepted", func(t *testing.T) {
		s := valid()
		s.Schema = 0
		s.Positive = []NativeSpan{{Start: 1, Counts: []uint64{1, 0, 2}}, {Start: 4, Counts: []uint64{1}}}
		h, err := FromState(bounds, s)
		if err != nil {
			t.Fatal(err)
		}
		want := []NativeSpan{{Start: 1, Counts: []uint64{1, 0, 2, 1}}}
		if diff := cmp.Diff(want, h.State().Positive); diff != "" {
			t.Errorf("positive buckets (-want +got):\n%s", diff)
		}
	})
}

func BenchmarkHistogramObserve(b *testing.B) {
	values := randomDurations(7, 4096, 7200)
	b.Run("ours", func(b *testing.B) {
		h := New(DefaultBuckets())
		for i := range b.N {
			h.Observe(values[i%len(values)])
		}
	})
	b.Run("client_golang", func(b *testing.B) {
		h := referenceHistogram(DefaultBuckets())
		for i := range b.N {
			h.Observe(values[i%len(values)])
		}
	})
}

func TestHistogramAddIsObservingTheSame(t *testing.T) {
	// Sums added in another order may differ in the last bits.
	approx := cmp.Options{equalHistograms, cmpopts.EquateApprox(1e-12, 0)}
	for _, tc := range histogramCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range []int{0, len(tc.values) / 3, len(tc.values)} {
				all, h, o := New(tc.bounds), New(tc.bounds), New(tc.bounds)
				for i, v := range tc.values {
					all.Observe(v)
					if i < split {
						h.Observe(v)
					} else {
						o.Observe(v)
					}
				}
				before := o.State()
				h.Add(o)
				// Observed one by one, a histogram may keep more than
				// nativeMaxBucketNumber buckets until the next observation
				// halves them again; added, it has at most that many: the
				// same buckets at a coarser schema.
				if h.schema > all.schema || len(h.positive)+len(h.negative) > nativeMaxBucketNumber {
					t.Errorf("added: schema %d with %d buckets, observed: schema %d", h.schema, len(h.positive)+len(h.negative), all.schema)
				}
				for all.schema > h.schema {
					all.schema--
					all.positive, all.negative = halveNative(all.positive), halveNative(all.negative)
				}
				want, got := histogramFields(t, all.Metric(testDesc, "x")), histogramFields(t, h.Metric(testDesc, "x"))
				if diff := cmp.Diff(want, got, approx); diff != "" {
					t.Errorf("the first %d observed, the rest added (-observed +added):\n%s", split, diff)
				}
				if diff := cmp.Diff(before, o.State(), cmpopts.EquateNaNs()); diff != "" {
					t.Errorf("add changed the histogram added (-before +after):\n%s", diff)
				}
			}
		})
	}
}

func TestHistogramAddKeepsTheLaterExemplars(t *testing.T) {
	h, o := New([]float64{1, 10}), New([]float64{1, 10})
	h.ObserveWithExemplar(0.5, Exemplar{RunID: "run_old_fast"})
	h.ObserveWithExemplar(5, Exemplar{RunID: "run_old_slow"})
	o.ObserveWithExemplar(7, Exemplar{RunID: "run_new_slow"})
	h.Add(o)
	var got []string
	for _, e := range h.exemplars {
		got = append(got, e.RunID)
	}
	if want := []string{"run_old_fast", "run_new_slow", ""}; !slices.Equal(got, want) {
		t.Errorf("exemplars by bucket %q, want %q", got, want)
	}
}
