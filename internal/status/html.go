package status

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/aily-exporter/aily_exporter/feishu"
	"github.com/aily-exporter/aily_exporter/internal/watch"
)

// maxShownMessageBytes bounds an error message on the HTML page; the JSON
// carries what the collector keeps.
const maxShownMessageBytes = 300

// WriteHTML renders p as the status page: plain HTML with its style inline,
// no script and no external asset, so that it renders offline. Every value
// is escaped by html/template.
func WriteHTML(w io.Writer, p *Page) error {
	return pageTemplate.Execute(w, p)
}

// WriteJSON writes p as JSON.
func WriteJSON(w io.Writer, p *Page) error {
	return writeJSON(w, p)
}

// WriteUnknownAppHTML renders the answer to q when q.App is not configured:
// the configured apps, each linked to its page.
func WriteUnknownAppHTML(w io.Writer, e *UnknownAppError, q Query) error {
	return unknownAppTemplate.Execute(w, struct {
		Err   *UnknownAppError
		Query Query
	}{e, q})
}

// WriteUnknownAppJSON writes e as JSON: the error in words, the app asked
// for and the configured apps.
func WriteUnknownAppJSON(w io.Writer, e *UnknownAppError) error {
	return writeJSON(w, struct {
		Error string `json:"error"`
		*UnknownAppError
	}{e.Error(), e})
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// link returns the status page's address for q.
func link(path string, q Query) string {
	v := url.Values{}
	if q.App != "" {
		v.Set("app", q.App)
	}
	if q.Sort != "" {
		v.Set("sort", q.Sort)
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// age writes seconds as a short duration: 4s, 3m12s, 2h5m, 3d4h.
func age(s *float64) string {
	if s == nil {
		return "—"
	}
	d := time.Duration(*s * float64(time.Second))
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%dh", days, int((d-time.Duration(days)*24*time.Hour)/time.Hour))
}

// shorten cuts s to maxShownMessageBytes on a rune boundary, with a marker.
func shorten(s string) string {
	if len(s) <= maxShownMessageBytes {
		return s
	}
	cut := maxShownMessageBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

var pageTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"age":     age,
	"shorten": shorten,
	"states":  watch.SessionStates,
	"final":   feishu.FinalStatuses,
	"time": func(t time.Time) string {
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"ptime": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"link": link,
	"withApp": func(q Query, app string) Query {
		q.App, q.Page = app, 1
		return q
	},
	"withSort": func(q Query, sort string) Query {
		q.Sort, q.Page = sort, 1
		return q
	},
	"withPage": func(q Query, page int) Query {
		q.Page = page
		return q
	},
	"add":     func(a, b int) int { return a + b },
	"seconds": secondsText,
	"discovered": func(apps []App) bool {
		for _, a := range apps {
			if a.SessionsURL != nil {
				return true
			}
		}
		return false
	},
	"daily": func(a App) string {
		if a.DailyBudget <= 0 {
			return fmt.Sprintf("none / %.0f", a.ProjectedPerDay)
		}
		return fmt.Sprintf("%.0f / %.0f", a.DailyBudget, a.ProjectedPerDay)
	},
	"staleness": func(a App) string {
		if a.StalenessMaxSeconds == nil {
			return "–"
		}
		return fmt.Sprintf("%s / %s", secondsText(*a.StalenessMedianSeconds), secondsText(*a.StalenessMaxSeconds))
	},
	"budget": func(a App) string {
		if a.BudgetPerMinute <= 0 {
			return fmt.Sprintf("%d / no limit", a.RequestsLastMinute)
		}
		return fmt.Sprintf("%d / %s (%.0f%%)", a.RequestsLastMinute, strconv.FormatFloat(a.BudgetPerMinute, 'f', -1, 64),
			100*float64(a.RequestsLastMinute)/a.BudgetPerMinute)
	},
}).Parse(pageHTML))

var unknownAppTemplate = template.Must(template.New("unknown-app").Funcs(template.FuncMap{
	"link": link,
	"withApp": func(q Query, app string) Query {
		q.App, q.Page = app, 1
		return q
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Aily Exporter status: no app {{.Err.App}}</title>
<style>body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }</style>
</head>
<body>
<h1>No app {{printf "%q" .Err.App}}</h1>
<p>No app of that name is configured. The configured apps:</p>
<ul id="apps">
{{range .Err.Apps}}<li><a href="{{link "/status" (withApp $.Query .)}}">{{.}}</a></li>
{{end}}</ul>
<p><a href="{{link "/status" (withApp .Query "")}}">All apps</a> · <a href="/">Home</a></p>
</body>
</html>
`))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Aily Exporter status</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.state-failing { background: #fbe3e3; color: #8a1010; font-weight: bold; }
.state-pending { background: #fff5d6; }
.state-active { background: #e3f5e3; }
.state-idle { color: #666; }
.msg { max-width: 40em; white-space: pre-wrap; overflow-wrap: anywhere; }
.err { color: #8a1010; }
.notice { background: #fff5d6; border: 1px solid #e0c060; padding: 0.6em 0.8em; max-width: 60em; }
code { font-size: 0.95em; }
nav a { margin-right: 0.8em; }
</style>
</head>
<body>
<h1>Aily Exporter status</h1>
{{if .Notice}}<p id="no-scrape-yet" class="notice">{{.Notice}}</p>
{{end}}<p>Generated {{time .Generated}}.{{if .LastScrape}} Last scrape {{ptime .LastScrape}}.{{end}} <a href="/">Home</a> · <a href="{{link "/status.json" .Query}}">This page as JSON</a>{{if .Query.App}} · <a href="{{link "/status" (withApp .Query "")}}">All apps</a>{{end}}</p>

<h2>Apps</h2>
<table id="apps">
<thead><tr><th>App</th>{{range states}}<th>{{.}}</th>{{end}}<th>Requests last minute / budget</th><th>Daily budget / projected spend</th><th>Staleness median / max</th><th>Overdue</th><th>Rate limited</th><th>Token</th></tr></thead>
<tbody>
{{range .Apps}}<tr data-app="{{.Name}}">
<td><a href="{{link "/status" (withApp $.Query .Name)}}">{{.Name}}</a></td>
{{$a := .}}{{range states}}<td class="n{{if and (eq (print .) "failing") (gt (index $a.Sessions .) 0)}} state-failing{{end}}">{{index $a.Sessions .}}</td>{{end}}
<td class="n">{{budget .}}</td>
<td class="n">{{daily .}}</td>
<td class="n">{{staleness .}}</td>
<td class="n">{{.Overdue}}</td>
<td class="n">{{.RateLimited}}</td>
<td class="token">{{if eq .Token.State "ok"}}ok{{if .Token.RenewedAt}} (renewed {{ptime .Token.RenewedAt}}){{end}}{{else if eq .Token.State "failed"}}<span class="err">{{.Token.Error}}</span> ({{ptime .Token.ErrorAt}}){{else}}{{.Token.State}}{{end}}</td>
</tr>
{{end}}</tbody>
</table>

{{if discovered .Apps}}<h2>Sessions from sessions_url</h2>
<table id="sessions-url">
<thead><tr><th>App</th><th>URL</th><th>Every</th><th>Last success</th><th>Sessions</th><th>Last fetch</th></tr></thead>
<tbody>
{{range .Apps}}{{$app := .Name}}{{with .SessionsURL}}<tr class="sessions-url" data-app="{{$app}}" data-up="{{.Up}}">
<td>{{$app}}</td><td><code>{{.URL}}</code></td><td class="n">{{seconds .RefreshIntervalSeconds}}</td>
<td>{{ptime .LastSuccess}}</td><td class="n">{{.Sessions}}</td>
<td class="msg{{if not .Up}} err{{end}}">{{if .Up}}ok ({{ptime .LastAttempt}}){{else if .LastAttempt}}{{shorten .LastError}} ({{ptime .LastAttempt}}){{if .LastSuccess}}; the sessions last fetched are kept{{end}}{{else}}not yet{{end}}</td>
</tr>
{{end}}{{end}}</tbody>
</table>
{{end}}
<h2>Recent failed runs{{if .Query.App}} of {{.Query.App}}{{end}}</h2>
{{if .FailedRuns}}<table id="failed-runs">
<thead><tr><th>Time</th><th>App</th><th>Session</th><th>Run ID</th><th>Error code</th><th>Error message</th><th>Duration</th></tr></thead>
<tbody>
{{range .FailedRuns}}<tr class="failed-run" data-run-id="{{.RunID}}">
<td>{{time .Time}}</td><td>{{.App}}</td><td><code>{{.SessionID}}</code></td><td><code>{{.RunID}}</code></td><td><code>{{.Code}}</code></td>
<td class="msg">{{shorten .Message}}</td><td class="n">{{age .DurationSeconds}}</td>
</tr>
{{end}}</tbody>
</table>{{else}}<p id="failed-runs-none">No failed run since the exporter started.</p>{{end}}

<h2>Sessions{{if .Query.App}} of {{.Query.App}}{{end}}</h2>
<form method="get" action="/status">
<label>App <select name="app"><option value="">all</option>{{range .Apps}}<option value="{{.Name}}"{{if eq .Name $.Query.App}} selected{{end}}>{{.Name}}</option>{{end}}</select></label>
{{if .Query.Sort}}<input type="hidden" name="sort" value="{{.Query.Sort}}">{{end}}
<button type="submit">Filter</button>
</form>
<p>{{.SessionsTotal}} sessions{{if gt .Pages 1}}, page {{.Query.Page}} of {{.Pages}}{{end}}. Sort by
<a href="{{link "/status" (withSort .Query "")}}">app and session</a> · <a href="{{link "/status" (withSort .Query "state")}}">state</a> (failing first).</p>
<table id="sessions">
<thead><tr><th>App</th><th>Session</th><th>State</th><th>Last successful poll</th><th>Age</th><th>Last error</th><th>Runs in flight</th><th>Oldest in flight</th>{{range final}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Sessions}}<tr class="session" data-app="{{.App}}" data-session-id="{{.ID}}" data-state="{{.State}}">
<td>{{.App}}</td><td><code>{{.ID}}</code></td><td class="state-{{.State}}">{{.State}}</td>
<td>{{ptime .LastSuccess}}</td><td class="n">{{age .AgeSeconds}}</td>
<td class="msg err">{{shorten .Error}}</td>
<td>{{range $st, $n := .InFlight}}{{$st}} {{$n}}<br>{{else}}none{{end}}</td><td class="n">{{age .OldestSeconds}}</td>
{{$s := .}}{{range final}}<td class="n">{{index $s.Finished .}}</td>{{end}}
</tr>
{{end}}</tbody>
</table>
{{if gt .Pages 1}}<nav>{{if gt .Query.Page 1}}<a href="{{link "/status" (withPage .Query (add .Query.Page -1))}}" rel="prev">← previous</a>{{end}}
{{if lt .Query.Page .Pages}}<a href="{{link "/status" (withPage .Query (add .Query.Page 1))}}" rel="next">next →</a>{{end}}</nav>{{end}}
</body>
</html>
`

// secondsText writes a duration in seconds as Go does, to the second.
func secondsText(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}
