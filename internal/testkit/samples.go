package testkit

import (
	"io"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Samples reads a scrape in the text format and returns its samples by
// series, written name{label="value", …} with the labels sorted: a
// counter's or a gauge's value, a histogram's count as name_count. Given
// types, only the families of those types are read.
func Samples(r io.Reader, types ...dto.MetricType) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		if len(types) > 0 && !slices.Contains(types, mf.GetType()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			ls := model.LabelSet{}
			for _, lp := range m.GetLabel() {
				ls[model.LabelName(lp.GetName())] = model.LabelValue(lp.GetValue())
			}
			switch {
			case m.Counter != nil:
				out[name+ls.String()] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name+ls.String()] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count"+ls.String()] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out, nil
}
