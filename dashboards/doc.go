// Package dashboards holds what ships beside the aily_exporter binary for
// Prometheus and Grafana: the Grafana dashboard (aily.json), the alerting
// rules (alerts.yml) with their promtool unit tests (alerts_test.yml) and a
// Prometheus configuration example (prometheus.yml). It has no code; its tests
// check the dashboard against the exporter's metrics and, with AILY_E2E=1,
// run all of it end to end against a real Prometheus scraping
// aily_exporter --demo.
package dashboards
