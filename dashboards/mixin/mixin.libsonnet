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
// never drift apart. The shipped files are written for the default
// objective of the run success SLO (runSuccessObjective, 99%); the mixin
// writes another one where they name it: "(1 - 0.99)", the error budget, in
// the rules' and the dashboard's queries and the alerts' descriptions, and
// "objective of 99%" in the descriptions and the dashboard's text.
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

// mapStrings applies f to every string in x.
local mapStrings(x, f) =
  if std.isObject(x) then { [k]: mapStrings(x[k], f) for k in std.objectFields(x) }
  else if std.isArray(x) then [mapStrings(v, f) for v in x]
  else if std.isString(x) then f(x)
  else x;

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
    // The run success SLO: the share of an app's finished runs, over
    // 30 days, that must not end FAILED. 1 minus it is the error budget,
    // which AilyErrorBudgetBurnFast and AilyErrorBudgetBurnSlow measure burn
    // rates against and the dashboard's "Run success SLO" row shows what is
    // left of. At 0.93 or below, 14.4 times the budget is more than all the
    // runs: the page's 1h pair can never fire.
    runSuccessObjective: 0.99,
  },

  local cfg = self._config,
  local rewrite(expr) =
    withSelector(std.strReplace(expr, 'job=~"aily.*"', cfg.jobSelector), cfg.ailySelector),
  local objective =
    assert cfg.runSuccessObjective > 0 && cfg.runSuccessObjective < 1 :
           'runSuccessObjective must be between 0 and 1, such as 0.99';
    cfg.runSuccessObjective,
  // withObjective writes the configured objective where the shipped files
  // name the default one.
  local withObjective(s) =
    std.strReplace(
      std.strReplace(s, '(1 - 0.99)', '(1 - %s)' % std.format('%g', objective)),
      'objective of 99%', 'objective of %s%%' % std.format('%g', objective * 100)
    ),

  prometheusAlerts+:: {
    groups: [
      g { rules: [mapStrings(r { expr: rewrite(r.expr) }, withObjective) for r in g.rules] }
      for g in alertsFile.groups
    ],
  },

  grafanaDashboards+:: {
    'aily.json': mapStrings(
      rewriteQueries(dashboardFile, function(q) withSelector(q, cfg.ailySelector)),
      withObjective
    ),
  },
}
