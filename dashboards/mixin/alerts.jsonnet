// The alerting rules, as a Prometheus rule file:
//   jsonnet -S dashboards/mixin/alerts.jsonnet > alerts.yml
std.manifestYamlDoc((import 'mixin.libsonnet').prometheusAlerts)
