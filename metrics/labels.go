package metrics

import (
	"strings"

	"github.com/popgate/popgate/filters/clamav"
)

// Label values. Every label of a metric is either the name of something
// configured (listener, backend, filter), which the configuration bounds,
// or a value from one of the fixed sets below, documented in
// docs/CONFIG.md under "Metrics". A value outside its set (a mechanism a
// client typed after AUTH, a verb or reason this table does not know yet)
// is counted as "other", so that no client can create series.

// labelOther is the value counted for anything outside a label's set.
const labelOther = "other"

// labelSet is the fixed set of values of one label.
type labelSet map[string]bool

func newLabelSet(values ...string) labelSet {
	s := labelSet{labelOther: true}
	for _, v := range values {
		s[v] = true
	}
	return s
}

// value returns v when it is in the set, else "other".
func (s labelSet) value(v string) string {
	if s[v] {
		return v
	}
	return labelOther
}

var (
	// mechanisms are popgate's own login names (user, apop, passthrough)
	// and the SASL mechanisms (RFC 5034) a backend may offer, lower case.
	mechanisms = newLabelSet("user", "apop", "passthrough", "plain", "login", "cram-md5",
		"digest-md5", "scram-sha-1", "scram-sha-1-plus", "scram-sha-256", "scram-sha-256-plus",
		"oauthbearer", "xoauth2", "external", "gssapi", "ntlm", "anonymous")
	loginResults = newLabelSet("ok", "fail")
	// authResults are the results of an auth_http request.
	authResults = newLabelSet("ok", "refused", "error", "cached")
	// verbs are the commands popgate relays (RFC 1939, 2449, 2595,
	// 5034); a line popgate answers itself before any filter (an unknown
	// command, bad arguments, the wrong state) is counted as "other".
	verbs = newLabelSet("USER", "PASS", "APOP", "AUTH", "CAPA", "STLS", "STAT", "LIST",
		"RETR", "DELE", "TOP", "UIDL", "NOOP", "RSET", "QUIT")
	statuses = newLabelSet("+OK", "-ERR", "+")
	// endReasons are the reasons proxy records when a session ends.
	endReasons = newLabelSet("quit", "client-closed", "client-error", "client-write", "write-error",
		"timeout", "tls-handshake", "backend-error", "backend-unavailable", "bad-proxy-header",
		"untrusted-proxy", "max-sessions-per-ip", "max-sessions-per-user", "too-many-auth-failures", "too-many-errors",
		"shutdown", "panic", "kicked", "blocked", "backend-closed")
	// throttleReasons are the reasons proxy gives its Throttled hook.
	throttleReasons = newLabelSet("max-sessions", "max-sessions-per-ip", "max-sessions-per-user", "auth-delay")
	// actions are the filters.Verdict.Action values the clamav filter
	// sets.
	actions = newLabelSet(string(clamav.ActionDeliver), string(clamav.ActionReplace),
		string(clamav.ActionReject), string(clamav.ActionTempFail), string(clamav.ActionPass))
)

// clientLabels maps each metric's label that is not a configured name to
// its fixed set. The tests compare it with docs/CONFIG.md.
var clientLabels = map[[2]string]labelSet{
	{"popgate_sessions_open", "tls"}:               newLabelSet("true", "false"),
	{"popgate_sessions_total", "tls"}:              newLabelSet("true", "false"),
	{"popgate_sessions_total", "reason"}:           endReasons,
	{"popgate_logins_total", "mechanism"}:          mechanisms,
	{"popgate_logins_total", "result"}:             loginResults,
	{"popgate_commands_total", "verb"}:             verbs,
	{"popgate_commands_total", "status"}:           statuses,
	{"popgate_client_bytes_total", "direction"}:    newLabelSet("in", "out"),
	{"popgate_scan_verdicts_total", "verdict"}:     newLabelSet("clean", "infected", "error"),
	{"popgate_scan_verdicts_total", "action"}:      actions,
	{"popgate_throttled_total", "reason"}:          throttleReasons,
	{"popgate_reloads_total", "result"}:            newLabelSet("ok", "error"),
	{"popgate_auth_http_requests_total", "result"}: authResults,
	// Package cluster's own metrics (registered by main): op is one of
	// its constants, never client input, so there is no "other".
	{"popgate_cluster_fallbacks_total", "op"}: clusterOps,
	{"popgate_cluster_redis_seconds", "op"}:   withValues(clusterOps, "ping"),
}

// clusterOps are the operations package cluster labels its metrics with.
var clusterOps = labelSet{"throttle_fail": true, "throttle_refund": true, "login_succeed": true,
	"session_release": true, "session_renew": true, "storage": true, "lock": true}

// withValues returns a copy of s with values added.
func withValues(s labelSet, values ...string) labelSet {
	out := labelSet{}
	for v := range s {
		out[v] = true
	}
	for _, v := range values {
		out[v] = true
	}
	return out
}

// mechanismLabel is the mechanism label of popgate_logins_total: the
// login mechanism, which after AUTH is whatever the client typed.
func mechanismLabel(v string) string { return mechanisms.value(strings.ToLower(v)) }

// loginResultLabel is the result label of popgate_logins_total.
func loginResultLabel(v string) string { return loginResults.value(v) }

// verbLabel is the verb label of popgate_commands_total.
func verbLabel(v string) string { return verbs.value(v) }

// statusLabel is the status label of popgate_commands_total.
func statusLabel(v string) string { return statuses.value(v) }

// endReasonLabel is the reason label of popgate_sessions_total.
func endReasonLabel(v string) string { return endReasons.value(v) }

// throttleReasonLabel is the reason label of popgate_throttled_total.
func throttleReasonLabel(v string) string { return throttleReasons.value(v) }

// actionLabel is the action label of popgate_scan_verdicts_total.
func actionLabel(v string) string { return actions.value(v) }

// authResultLabel is the result label of popgate_auth_http_requests_total.
func authResultLabel(v string) string { return authResults.value(v) }
