package audit

import (
	"time"

	"github.com/popgate/popgate/filters"
)

// EventOpaque is the event of the record written when a session goes
// opaque: on an intercept listener with intercept_stls = "tunnel", the
// client's STLS was relayed to the server and accepted, and from then on
// the session's octets are relayed untouched, end-to-end encrypted. No
// record of its commands, retrievals, deletions or scans follows; its
// session_end still does, with the octets counted.
const EventOpaque = "opaque"

// opaqueRecord is the record of a session that went opaque. How says
// why ("stls-tunnel"). Its header's original_dst, the server the client
// meant to reach, is now all that is known of where its mail came from.
type opaqueRecord struct {
	header
	How string `json:"how"`
}

var _ jsonRecord = (*opaqueRecord)(nil)

func (r *opaqueRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "how", r.How)
	return append(b, '}')
}

// SessionOpaque writes the opaque record of s. The proxy calls it, once,
// before the first octet it relays unseen (proxy.OpaqueObserver).
func (f *Filter) SessionOpaque(s *filters.Session, how string) {
	rec := opaqueRecord{header: f.state(s).header(EventOpaque, time.Now()), How: how}
	f.record(&rec)
}
