package exporter

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aily-exporter/aily_exporter/internal/sharding"
)

// shardLabels is reg, adding the label shard="N" to every series when the
// exporter is one of several shards.
func (e *Exporter) shardLabels(reg prometheus.Registerer) prometheus.Registerer {
	if !e.shard.Sharded() {
		return reg
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"shard": strconv.Itoa(e.shard.Ordinal)}, reg)
}

// shardMetrics exports aily_exporter_shard_ordinal and
// aily_exporter_total_shards, by which the alerts find a missing shard and
// shards that disagree on the total.
type shardMetrics struct {
	shard          sharding.Shard
	ordinal, total *prometheus.Desc
}

func newShardMetrics(s sharding.Shard) *shardMetrics {
	return &shardMetrics{
		shard: s,
		ordinal: prometheus.NewDesc("aily_exporter_shard_ordinal",
			"This exporter's shard (--shard), from 0.", nil, nil),
		total: prometheus.NewDesc("aily_exporter_total_shards",
			"How many shards this exporter takes there to be (--total-shards).", nil, nil),
	}
}

func (m *shardMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.ordinal
	ch <- m.total
}

func (m *shardMetrics) Collect(ch chan<- prometheus.Metric) {
	total := max(m.shard.Total, 1) // the zero Shard is the only one
	ch <- prometheus.MustNewConstMetric(m.ordinal, prometheus.GaugeValue, float64(m.shard.Ordinal))
	ch <- prometheus.MustNewConstMetric(m.total, prometheus.GaugeValue, float64(total))
}
