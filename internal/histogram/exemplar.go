package histogram

import (
	"math"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Exemplar names the latest run a counter or a histogram bucket counted:
// OpenMetrics exposition shows it as {run_id="…", session_id="…"}, so that
// a graph leads to a run. Exemplars are not saved with the state.
type Exemplar struct {
	RunID, SessionID string
	At               time.Time // when the exporter counted the run
}

// labels returns the exemplar's labels, or nil when they are longer than
// OpenMetrics allows (128 runes of names and values together).
func (e Exemplar) labels() prometheus.Labels {
	if e.RunID == "" {
		return nil
	}
	l := prometheus.Labels{"run_id": e.RunID, "session_id": e.SessionID}
	n := 0
	for k, v := range l {
		n += utf8.RuneCountInString(k) + utf8.RuneCountInString(v)
	}
	if n > prometheus.ExemplarMaxRunes || !utf8.ValidString(e.RunID) || !utf8.ValidString(e.SessionID) {
		return nil
	}
	return l
}

// Attach returns the counter m with the exemplar of value v, or m as it
// is when the exemplar cannot be written.
func (e Exemplar) Attach(m prometheus.Metric, v float64) prometheus.Metric {
	ex := e.Proto(v)
	if ex == nil {
		return m
	}
	return &counterWithExemplar{Metric: m, exemplar: ex}
}

// counterWithExemplar is a constant counter with an exemplar, whose labels
// are written in a fixed order (prometheus.NewMetricWithExemplars takes a
// map, and writes them in any order).
type counterWithExemplar struct {
	prometheus.Metric
	exemplar *dto.Exemplar
}

func (m *counterWithExemplar) Write(out *dto.Metric) error {
	if err := m.Metric.Write(out); err != nil {
		return err
	}
	if out.Counter != nil {
		out.Counter.Exemplar = m.exemplar
	}
	return nil
}

// Proto returns the exemplar of value v as a dto.Exemplar, or nil.
func (e Exemplar) Proto(v float64) *dto.Exemplar {
	l := e.labels()
	if l == nil || math.IsNaN(v) {
		return nil
	}
	// Sorted by name, as client_golang writes them.
	pairs := []*dto.LabelPair{
		{Name: new("run_id"), Value: new(e.RunID)},
		{Name: new("session_id"), Value: new(e.SessionID)},
	}
	ex := &dto.Exemplar{Label: pairs, Value: new(v)}
	if !e.At.IsZero() {
		ex.Timestamp = timestamppb.New(e.At)
	}
	return ex
}
