package audit

import (
	"crypto/tls"
	"net"
	"time"

	"github.com/popgate/popgate/filters"
)

// The event names written in the "event" field.
const (
	EventSessionStart = "session_start"
	EventSessionEnd   = "session_end"
	EventTLS          = "tls"
	EventAuth         = "auth"
	EventCommand      = "command"
	EventRetrieve     = "retrieve"
	EventDelete       = "delete"
	EventCommit       = "commit"
	EventScan         = "scan"
	EventChainBreak   = "chain_break"
)

// The verdicts written in the "verdict" field of a scan record.
const (
	VerdictClean           = "clean"
	VerdictInfected        = "infected"
	VerdictError           = "error"
	VerdictSkippedOversize = "skipped-oversize"
)

// header is the part every record starts with. The field order of the
// structs below is the field order on the line; encode.go writes them in
// that order, exactly as encoding/json would (encode_test.go checks it).
// Time is in UTC, so that it is written with a "Z".
type header struct {
	Time        time.Time `json:"time"`
	Event       string    `json:"event"`
	Instance    string    `json:"instance,omitempty"` // Config.Instance
	Session     string    `json:"session"`
	Client      string    `json:"client"`
	OriginalDst string    `json:"original_dst,omitempty"` // where an intercepted client meant to go (filters.Session.OriginalDest)
	Listener    string    `json:"listener"`
}

func newHeader(event string, s *filters.Session, now time.Time) header {
	h := header{Time: now.UTC(), Event: event}
	if s != nil {
		h.Session = s.ID
		h.Client = addrString(s.ClientAddr)
		h.OriginalDst = addrString(s.OriginalDest)
		h.Listener = s.Listener
	}
	return h
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

type sessionStartRecord struct {
	header
	Local      string `json:"local"`
	TLSVersion string `json:"tls_version"`
	TLSCipher  string `json:"tls_cipher"`
	SNI        string `json:"sni"`
}

// tlsRecord is written once when a session that started in plaintext is
// first seen with TLS (after STLS).
type tlsRecord struct {
	header
	TLSVersion string `json:"tls_version"`
	TLSCipher  string `json:"tls_cipher"`
	SNI        string `json:"sni"`
}

type sessionEndRecord struct {
	header
	DurationMS       int64  `json:"duration_ms"`
	BytesIn          int64  `json:"bytes_in"`
	BytesOut         int64  `json:"bytes_out"`
	Reason           string `json:"reason"`
	DeletesMarked    int    `json:"deletes_marked"`
	DeletesCommitted bool   `json:"deletes_committed"`
}

type authRecord struct {
	header
	ClientUser  string `json:"client_user"`
	BackendUser string `json:"backend_user"`
	Mechanism   string `json:"mechanism"`
	Backend     string `json:"backend"`
	Result      string `json:"result"`
	Code        string `json:"code"`
}

type commandRecord struct {
	header
	Seq        int64  `json:"seq"`
	Verb       string `json:"verb"`
	Args       string `json:"args"`
	Out        string `json:"out,omitempty"`
	Status     string `json:"status"`
	Code       string `json:"code"`
	Bytes      int64  `json:"bytes"`
	DurationUS int64  `json:"duration_us"`
	Complete   bool   `json:"complete"`
	Error      string `json:"error,omitempty"`
}

type retrieveRecord struct {
	header
	Verb      string `json:"verb"`
	Msg       int    `json:"msg"`
	Lines     *int   `json:"lines,omitempty"`
	UIDL      string `json:"uidl"`
	Size      int64  `json:"size"`
	MessageID string `json:"message_id"`
	Complete  bool   `json:"complete"`
}

type deleteRecord struct {
	header
	Msg  int    `json:"msg"`
	UIDL string `json:"uidl"`
}

type commitRecord struct {
	header
	Count     int   `json:"count"`
	Msgs      []int `json:"msgs"`
	Truncated bool  `json:"msgs_truncated,omitempty"`
}

type scanRecord struct {
	header
	Verb       string `json:"verb"`
	Msg        int    `json:"msg"`
	Verdict    string `json:"verdict"`
	Virus      string `json:"virus"`
	Action     string `json:"action"`
	Error      string `json:"error"`
	Bytes      int64  `json:"bytes"`
	DurationUS int64  `json:"duration_us"`
}

// chainBreakRecord names octets of the file that are no record (a torn or
// damaged tail, or a torn write) and starts a new chain segment after
// them; its prev_hash is the hash of the last record before them.
type chainBreakRecord struct {
	header
	Reason        string `json:"reason"`
	SkippedOffset int64  `json:"skipped_offset"`
	SkippedBytes  int64  `json:"skipped_bytes"`
	SkippedSHA256 string `json:"skipped_sha256"`
}

// tlsFields returns the version, cipher suite and server name of a TLS
// connection state, or empty strings for plaintext.
func tlsFields(s *filters.Session) (version, cipher, sni string) {
	if s == nil || s.TLS == nil {
		return "", "", ""
	}
	sni = s.SNI
	if sni == "" {
		sni = s.TLS.ServerName
	}
	return tls.VersionName(s.TLS.Version), tls.CipherSuiteName(s.TLS.CipherSuite), sni
}
