package metrics

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// statusTemplate renders a statusPage: one HTML document with inline
// styles, no scripts and no external assets. The cells tests read carry
// id attributes ("sess:LISTENER:BACKEND", "act:LISTENER:KIND:MINUTES").
var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago":      ago,
	"left":     leftText,
	"join":     strings.Join,
	"backend":  backendText,
	"utc":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"healthId": func(name string) string { return "health:" + name },
}).Parse(statusHTML))

// ago says how long before now t was, in whole seconds.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// leftText says how long a certificate has left, in days (hours in its
// last day).
func leftText(d time.Duration) string {
	switch {
	case d <= 0:
		return "expired"
	case d < 24*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// backendText names a session's backend; "" before it has one.
func backendText(name string) string {
	if name == "" {
		return "(none yet)"
	}
	return name
}

const statusHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<meta name="referrer" content="no-referrer">
<title>popgate status</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 0.4em; }
p.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; }
.ok { color: #176b2c; }
.bad { color: #b00020; font-weight: bold; }
.warn { color: #a15c00; font-weight: bold; }
.empty { color: #666; font-style: italic; }
</style>
</head>
<body>
<h1>popgate status</h1>
<p class="meta">As of {{utc .Now}}; this page refreshes every {{.Refresh}} seconds.
Health: {{if .Healthy}}<span class="ok" id="health">ok</span>{{else}}<span class="bad" id="health">degraded</span>{{end}}.</p>

<h2>Sessions</h2>
<p>Open sessions: <strong id="sessions-total">{{.TotalSessions}}</strong></p>
<table id="listeners">
<tr><th>Listener</th><th>Address</th><th>TLS</th><th>Default backend</th><th>Open sessions</th></tr>
{{- range .Listeners}}
<tr><td>{{.Name}}</td><td>{{.Address}}</td><td>{{.TLS}}</td><td>{{.Backend}}</td><td class="n" id="open:{{.Name}}">{{.Open}}</td></tr>
{{- end}}
</table>
{{if .Sessions}}
<p>By listener and backend:</p>
<table id="sessions">
<tr><th>Listener</th><th>Backend</th><th>Sessions</th></tr>
{{- range .Sessions}}
<tr><td>{{.Listener}}</td><td>{{backend .Backend}}</td><td class="n" id="sess:{{.Listener}}:{{.Backend}}">{{.Count}}</td></tr>
{{- end}}
</table>
{{else}}<p class="empty">No session is open.</p>{{end}}

<h2>Backends</h2>
{{if .Backends}}
<table id="backends">
<tr><th>Backend</th><th>Address</th><th>Health</th><th>Checked</th><th>Open sessions</th><th>Error</th></tr>
{{- $now := .Now}}
{{- range .Backends}}
<tr><td>{{.Name}}</td><td>{{.Address}}</td>
<td id="{{healthId .Name}}">{{if .Reachable}}<span class="ok">reachable</span>{{else}}<span class="bad">unreachable</span>{{end}}</td>
<td>{{ago $now .Checked}}</td><td class="n">{{.Sessions}}</td><td>{{.Error}}</td></tr>
{{- end}}
</table>
{{else}}<p class="empty">No backend is configured.</p>{{end}}

<h2>Logins, failures and throttling</h2>
{{if .Activity}}
<table id="activity">
<tr><th rowspan="2">Listener</th><th colspan="3">Sessions started</th><th colspan="3">Logins</th><th colspan="3">Failed logins</th><th colspan="3">Throttled</th></tr>
<tr>{{range 4}}<th>1 min</th><th>5 min</th><th>{{$.WindowMinutes}} min</th>{{end}}</tr>
{{- range .Activity}}
<tr><td>{{.Listener}}</td>
<td class="n" id="act:{{.Listener}}:sessions:1">{{.Last1.Sessions}}</td><td class="n" id="act:{{.Listener}}:sessions:5">{{.Last5.Sessions}}</td><td class="n" id="act:{{.Listener}}:sessions:{{$.WindowMinutes}}">{{.LastWindow.Sessions}}</td>
<td class="n" id="act:{{.Listener}}:logins:1">{{.Last1.LoginsOK}}</td><td class="n" id="act:{{.Listener}}:logins:5">{{.Last5.LoginsOK}}</td><td class="n" id="act:{{.Listener}}:logins:{{$.WindowMinutes}}">{{.LastWindow.LoginsOK}}</td>
<td class="n" id="act:{{.Listener}}:failures:1">{{.Last1.LoginsBad}}</td><td class="n" id="act:{{.Listener}}:failures:5">{{.Last5.LoginsBad}}</td><td class="n" id="act:{{.Listener}}:failures:{{$.WindowMinutes}}">{{.LastWindow.LoginsBad}}</td>
<td class="n" id="act:{{.Listener}}:throttled:1">{{.Last1.Throttled}}</td><td class="n" id="act:{{.Listener}}:throttled:5">{{.Last5.Throttled}}</td><td class="n" id="act:{{.Listener}}:throttled:{{$.WindowMinutes}}">{{.LastWindow.Throttled}}</td></tr>
{{- end}}
</table>
<p class="meta">Counted in one-minute buckets: "1 min" is the current minute so far. Throttled: connections refused by a limit and answers delayed after failed logins.</p>
{{else}}<p class="empty">Nothing happened in the last {{.WindowMinutes}} minutes.</p>{{end}}

<h2>Scanner verdicts</h2>
{{if or .Total.LastWindow.Clean .Total.LastWindow.Infected .Total.LastWindow.ScanErrors}}
<table id="verdicts">
<tr><th>Listener</th><th>Clean</th><th>Infected</th><th>No verdict</th></tr>
{{- range .Activity}}
<tr><td>{{.Listener}}</td><td class="n" id="scan:{{.Listener}}:clean">{{.LastWindow.Clean}}</td>
<td class="n{{if .LastWindow.Infected}} bad{{end}}" id="scan:{{.Listener}}:infected">{{.LastWindow.Infected}}</td>
<td class="n{{if .LastWindow.ScanErrors}} warn{{end}}" id="scan:{{.Listener}}:error">{{.LastWindow.ScanErrors}}</td></tr>
{{- end}}
</table>
<p class="meta">Over the last {{.WindowMinutes}} minutes.</p>
{{else}}<p class="empty">No message was scanned in the last {{.WindowMinutes}} minutes.</p>{{end}}

<h2>Certificates</h2>
{{if .Certificates}}
<table id="certificates">
<tr><th>Names</th><th>Source</th><th>Expires</th><th>Left</th></tr>
{{- range .Certificates}}
<tr><td>{{join .Names ", "}}</td><td>{{.Source}}</td><td>{{utc .NotAfter}}</td>
<td class="{{if .Expired}}bad{{else if .Soon}}warn{{else}}ok{{end}}">{{left .Left}}</td></tr>
{{- end}}
</table>
{{else if .TLS}}<p class="bad">No certificate is loaded.</p>
{{else}}<p class="empty">No listener uses TLS.</p>{{end}}
</body>
</html>
`
