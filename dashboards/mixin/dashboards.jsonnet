// The Grafana dashboards, one file each:
//   jsonnet -m out/ dashboards/mixin/dashboards.jsonnet
(import 'mixin.libsonnet').grafanaDashboards
