package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// Key identifies a stored event: the commit position of its transaction and
// its index within it. Keys sort in commit order, which is also every
// ticket's order.
type Key struct {
	Pos   change.Position
	Index uint32
}

// KeyOf returns the key of an event.
func KeyOf(e *mapping.Event) Key { return Key{Pos: e.Pos, Index: e.Index} }

// Less reports whether k sorts before o.
func (k Key) Less(o Key) bool { return k.Pos < o.Pos || (k.Pos == o.Pos && k.Index < o.Index) }

func (k Key) String() string { return fmt.Sprintf("%s#%d", k.Pos, k.Index) }

const keyLen = 12

func (k Key) bytes() []byte {
	var b [keyLen]byte
	return k.put(b[:])
}

// put writes k into b (keyLen bytes) and returns them.
func (k Key) put(b []byte) []byte {
	binary.BigEndian.PutUint64(b[:8], uint64(k.Pos))
	binary.BigEndian.PutUint32(b[8:keyLen], k.Index)
	return b[:keyLen]
}

func keyFrom(b []byte) Key {
	return Key{Pos: change.Position(binary.BigEndian.Uint64(b[:8])), Index: binary.BigEndian.Uint32(b[8:])}
}

// endKey is the key after every event of pos.
func endKey(pos change.Position) Key { return Key{Pos: pos, Index: ^uint32(0)} }

const recordVersion = 1

// recordChunked is the version byte of an event record whose payload is in
// the payloads bucket (payloads.go): the record ends with the payload's
// length (8 bytes) instead of the payload.
const recordChunked = 2

var errCorrupt = errors.New("corrupt record")

// Event records: version | commit time (unix ns) | ticket | dept | source |
// len(type) type | len(id) id | payload (or, chunked, its length).
func encodeEvent(e *mapping.Event) ([]byte, error) {
	if len(e.Type) > 255 || len(e.ID) > 255 {
		return nil, fmt.Errorf("event %s: type or id longer than 255 bytes", e.ID)
	}
	version, inline := byte(recordVersion), e.Payload
	if chunked(e) {
		version, inline = recordChunked, binary.BigEndian.AppendUint64(nil, uint64(len(e.Payload)))
	}
	b := make([]byte, 0, 1+8*4+2+len(e.Type)+len(e.ID)+len(inline))
	b = append(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(e.CommitTime.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.TicketID))
	b = binary.BigEndian.AppendUint64(b, uint64(e.DeptID))
	b = binary.BigEndian.AppendUint64(b, uint64(e.SourceID))
	b = append(b, byte(len(e.Type)))
	b = append(b, e.Type...)
	b = append(b, byte(len(e.ID)))
	b = append(b, e.ID...)
	return append(b, inline...), nil
}

// decodeEvent copies a stored event out of b (which bbolt owns), reading a
// chunked payload with r.
func decodeEvent(k Key, b []byte, r *payloadReader) (*mapping.Event, error) {
	e, inline, size, err := decodeEventHeader(k, b)
	if err != nil {
		return nil, err
	}
	if inline != nil {
		e.Payload = append([]byte(nil), inline...)
		return e, nil
	}
	var kb [keyLen]byte
	e.Payload, err = r.read(k, k.put(kb[:]), uint64(size))
	return e, err
}

// decodeEventHeader copies a stored event out of b without its payload,
// and returns the payload's size and, when it is in the record, the
// payload (bbolt's memory: copy it).
func decodeEventHeader(k Key, b []byte) (e *mapping.Event, inline []byte, size int, err error) {
	if len(b) < 35 || (b[0] != recordVersion && b[0] != recordChunked) {
		return nil, nil, 0, fmt.Errorf("event %s: %w", k, errCorrupt)
	}
	e = &mapping.Event{
		Pos:        k.Pos,
		Index:      k.Index,
		CommitTime: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))).UTC(),
		TicketID:   int64(binary.BigEndian.Uint64(b[9:])),
		DeptID:     int64(binary.BigEndian.Uint64(b[17:])),
		SourceID:   int64(binary.BigEndian.Uint64(b[25:])),
	}
	rest := b[33:]
	n := int(rest[0])
	if len(rest) < 1+n+1 {
		return nil, nil, 0, fmt.Errorf("event %s: %w", k, errCorrupt)
	}
	e.Type = eventType(rest[1 : 1+n])
	rest = rest[1+n:]
	n = int(rest[0])
	if len(rest) < 1+n {
		return nil, nil, 0, fmt.Errorf("event %s: %w", k, errCorrupt)
	}
	e.ID = string(rest[1 : 1+n])
	rest = rest[1+n:]
	if b[0] == recordVersion {
		return e, rest[:len(rest):len(rest)], len(rest), nil
	}
	if len(rest) != 8 || binary.BigEndian.Uint64(rest) > maxPayload {
		return nil, nil, 0, fmt.Errorf("event %s: %w", k, errCorrupt)
	}
	return e, nil, int(binary.BigEndian.Uint64(rest)), nil
}

// eventType returns the known event type named b without allocating, or a
// copy of b.
func eventType(b []byte) string {
	for _, t := range mapping.AllEvents {
		if string(b) == t {
			return t
		}
	}
	return string(b)
}

// eventHeader reads what listings need without copying the payload.
func eventHeader(b []byte) (commit time.Time, typ, id string, ok bool) {
	if len(b) < 35 || (b[0] != recordVersion && b[0] != recordChunked) {
		return time.Time{}, "", "", false
	}
	commit = time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))).UTC()
	rest := b[33:]
	n := int(rest[0])
	if len(rest) < 1+n+1 {
		return time.Time{}, "", "", false
	}
	typ = string(rest[1 : 1+n])
	rest = rest[1+n:]
	n = int(rest[0])
	if len(rest) < 1+n {
		return time.Time{}, "", "", false
	}
	return commit, typ, string(rest[1 : 1+n]), true
}

// Attempt is one delivery attempt.
type Attempt struct {
	At       time.Time     `json:"at"`
	Status   int           `json:"status,omitempty"` // HTTP status; 0 when no response came
	Error    string        `json:"error,omitempty"`
	Response string        `json:"response,omitempty"` // start of the response body, ≤ MaxResponseSnippet bytes
	Latency  time.Duration `json:"latency"`
}

// MaxResponseSnippet bounds the response body kept per attempt.
const MaxResponseSnippet = 4 << 10

// maxErrorLen bounds the error text kept per attempt.
const maxErrorLen = 1 << 10

// Delivery records (pending entries and dead letters): version | ticket |
// at (unix ns: next attempt of a pending entry, 0 = now; death of a dead
// letter) | number of attempts | attempts, each: at | latency | status |
// len(error) error | len(response) response.
const deliveryHeaderLen = 1 + 8 + 8 + 2

type deliveryRecord struct {
	ticket   int64
	at       time.Time // zero: now
	attempts int
	tail     []byte // the encoded attempts
}

// putDeliveryHeader writes the header of a new record (no attempts) to b.
func putDeliveryHeader(b []byte, ticket int64) {
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:], uint64(ticket))
	clear(b[9:deliveryHeaderLen])
}

func parseDelivery(b []byte) (deliveryRecord, error) {
	if len(b) < deliveryHeaderLen || b[0] != recordVersion {
		return deliveryRecord{}, errCorrupt
	}
	r := deliveryRecord{
		ticket:   int64(binary.BigEndian.Uint64(b[1:])),
		attempts: int(binary.BigEndian.Uint16(b[17:])),
		tail:     b[deliveryHeaderLen:],
	}
	if ns := int64(binary.BigEndian.Uint64(b[9:])); ns != 0 {
		r.at = time.Unix(0, ns)
	}
	return r, nil
}

// withAttempt returns a new record: r's attempts plus a, and at as its time.
func (r deliveryRecord) withAttempt(a Attempt, at time.Time) []byte {
	errText, resp := clip(a.Error, maxErrorLen), clip(a.Response, MaxResponseSnippet)
	b := make([]byte, deliveryHeaderLen, deliveryHeaderLen+len(r.tail)+24+len(errText)+len(resp))
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:], uint64(r.ticket))
	if !at.IsZero() {
		binary.BigEndian.PutUint64(b[9:], uint64(at.UnixNano()))
	}
	n := r.attempts + 1
	if n > 0xffff {
		n = 0xffff
	}
	binary.BigEndian.PutUint16(b[17:], uint16(n))
	b = append(b, r.tail...)
	b = binary.BigEndian.AppendUint64(b, uint64(a.At.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Latency))
	b = binary.BigEndian.AppendUint16(b, uint16(a.Status))
	b = binary.BigEndian.AppendUint16(b, uint16(len(errText)))
	b = append(b, errText...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(resp)))
	return append(b, resp...)
}

// withAt returns r with another time and no attempts (a replay) or the same
// attempts (a death).
func (r deliveryRecord) withAt(at time.Time, keepAttempts bool) []byte {
	b := make([]byte, deliveryHeaderLen)
	b[0] = recordVersion
	binary.BigEndian.PutUint64(b[1:], uint64(r.ticket))
	if !at.IsZero() {
		binary.BigEndian.PutUint64(b[9:], uint64(at.UnixNano()))
	}
	if keepAttempts {
		binary.BigEndian.PutUint16(b[17:], uint16(r.attempts))
		b = append(b, r.tail...)
	}
	return b
}

func (r deliveryRecord) attemptList() ([]Attempt, error) {
	out := make([]Attempt, 0, r.attempts)
	b := r.tail
	for len(b) > 0 {
		if len(b) < 20 {
			return out, errCorrupt
		}
		a := Attempt{
			At:      time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC(),
			Latency: time.Duration(binary.BigEndian.Uint64(b[8:])),
			Status:  int(binary.BigEndian.Uint16(b[16:])),
		}
		n := int(binary.BigEndian.Uint16(b[18:]))
		b = b[20:]
		if len(b) < n+2 {
			return out, errCorrupt
		}
		a.Error = string(b[:n])
		b = b[n:]
		n = int(binary.BigEndian.Uint16(b))
		b = b[2:]
		if len(b) < n {
			return out, errCorrupt
		}
		a.Response = string(b[:n])
		b = b[n:]
		out = append(out, a)
	}
	return out, nil
}

// clip cuts s to at most n bytes, not inside a UTF-8 sequence.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
