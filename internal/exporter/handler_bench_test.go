package exporter

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// manyGauges is a collector of n gauges labelled as the per-session series
// are (app, session_id, status).
type manyGauges struct {
	desc *prometheus.Desc
	n    int
}

func (g manyGauges) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g manyGauges) Collect(ch chan<- prometheus.Metric) {
	for i := range g.n {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, 1,
			"bench", fmt.Sprintf("session_%06d", i/4), fmt.Sprintf("STATUS_%d", i%4))
	}
}

// BenchmarkScrapeGatherer compares gathering a scrape of 200,000 series and
// the persistent registry (Go and process metrics) with
// prometheus.Gatherers, which checks and sorts every series a second time,
// and with scrapeGatherer, which puts the two together (docs/performance.md).
func BenchmarkScrapeGatherer(b *testing.B) {
	const series = 200_000
	scrape := prometheus.NewRegistry()
	scrape.MustRegister(manyGauges{
		desc: prometheus.NewDesc("aily_bench", "A gauge.", []string{"app", "session_id", "status"}, nil),
		n:    series,
	})
	persistent := prometheus.NewRegistry()
	persistent.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, tc := range []struct {
		name string
		g    prometheus.Gatherer
	}{
		{"Gatherers", prometheus.Gatherers{scrape, persistent}},
		{"scrapeGatherer", &scrapeGatherer{scrape: scrape, persistent: persistent}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.g.Gather(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/series, "ns/series")
		})
	}
}
