// The aily_exporter monitoring mixin: the alerting rules and the Grafana
// dashboard that ship in dashboards/ (alerts.yml, aily.json), read from those
// very files, with the selectors a deployment needs applied on top.
//
//   local aily = (import 'mixin.libsonnet') + {
//     _config+:: { ailySelector: 'cluster="prod"', jobSelector: 'job="aily-exporter"' },
//   };
//   aily.prometheusAlerts      // the rule groups, as in alerts.yml
//   aily.grafanaDashboards     // { 'aily.json': the dashboard }
//
// With the default _config the output equals the shipped files (a test in
// this directory checks it), so the files users download and the mixin
// never drift apart.
local alertsFile = std.parseYaml(importstr '../alerts.yml');
local dashboardFile = std.parseJson(importstr '../aily.json');

local isIdentChar(c) =
  (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';

local identEnd(s, i) =
  if i < std.length(s) && isIdentChar(s[i]) then identEnd(s, i + 1) else i;

// withSelector adds the label matchers sel to every aily_* metric that expr
// selects: aily_runs{app=~"$app"} becomes aily_runs{sel,app=~"$app"}, and
// aily_runs[5m] becomes aily_runs{sel}[5m]. Label names that happen to start
// with aily_ are not metric names: they never appear in the shipped queries
// outside a by/without list, which this leaves alone only when they follow
// an identifier character, so keep new label names out of the aily_ prefix.
local withSelector(expr, sel) =
  if sel == '' then expr
  else
    local parts = std.split(expr, 'aily_');
    parts[0] + std.join('', [
      local prev = parts[i - 1];
      local prevChar = if std.length(prev) > 0 then prev[std.length(prev) - 1] else if i == 1 then '' else '_';
      local p = parts[i];
      local end = identEnd(p, 0);
      local name = 'aily_' + std.substr(p, 0, end);
      local rest = std.substr(p, end, std.length(p) - end);
      if prevChar != '' && isIdentChar(prevChar) then 'aily_' + p
      else if std.startsWith(rest, '{}') then name + '{' + sel + rest[1:]
      else if std.startsWith(rest, '{') then name + '{' + sel + ',' + rest[1:]
      else name + '{' + sel + '}' + rest
      for i in std.range(1, std.length(parts) - 1)
    ]);

// rewriteQueries applies f to every PromQL query of a dashboard: the panels'
// targets (expr) and the query variables (definition, query.query).
local rewriteQueries(x, f) =
  if std.isObject(x) then {
    [k]:
      if k == 'expr' && std.isString(x[k]) then f(x[k])
      else if std.objectHas(x, 'type') && x.type == 'query' && k == 'definition' then f(x[k])
      else if std.objectHas(x, 'type') && x.type == 'query' && k == 'query' && std.isObject(x[k]) then x[k] { query: f(x[k].query) }
      else rewriteQueries(x[k], f)
    for k in std.objectFields(x)
  }
  else if std.isArray(x) then [rewriteQueries(v, f) for v in x]
  else x;

{
  _config+:: {
    // PromQL label matchers added to every aily_* selector of the rules and
    // the dashboard, such as 'cluster="prod"' or 'namespace="monitoring"'.
    // Empty: none (the shipped files).
    ailySelector: '',
    // The selector of the exporter's scrape job in AilyExporterDown, which
    // the shipped rules take to be any job named aily*.
    jobSelector: 'job=~"aily.*"',
  },

  local cfg = self._config,
  local rewrite(expr) =
    withSelector(std.strReplace(expr, 'job=~"aily.*"', cfg.jobSelector), cfg.ailySelector),

  prometheusAlerts+:: {
    groups: [
      g { rules: [r { expr: rewrite(r.expr) } for r in g.rules] }
      for g in alertsFile.groups
    ],
  },

  grafanaDashboards+:: {
    'aily.json': rewriteQueries(dashboardFile, function(q) withSelector(q, cfg.ailySelector)),
  },
}
