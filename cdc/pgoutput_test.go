package cdc

import (
	"encoding/binary"
	"log/slog"
	"time"
)

// Builders for pgoutput protocol 1 messages, laid out byte for byte as
// PostgreSQL's proto.c writes them. Tests of the decoder use them; the
// database tests check the decoder against the real thing.

type col struct {
	name string
	oid  uint32
	key  bool
}

// tv is one tuple value: kind 'n', 'u' or 't' (with text).
type tv struct {
	kind byte
	text string
}

func txt(s string) tv { return tv{'t', s} }

var (
	null      = tv{kind: 'n'}
	unchanged = tv{kind: 'u'}
)

type msg []byte

func (m msg) u8(b byte) msg    { return append(m, b) }
func (m msg) u16(v uint16) msg { return binary.BigEndian.AppendUint16(m, v) }
func (m msg) u32(v uint32) msg { return binary.BigEndian.AppendUint32(m, v) }
func (m msg) u64(v uint64) msg { return binary.BigEndian.AppendUint64(m, v) }
func (m msg) str(s string) msg { return append(append(m, s...), 0) }
func (m msg) tuple(vals []tv) msg {
	m = m.u16(uint16(len(vals)))
	for _, v := range vals {
		m = m.u8(v.kind)
		if v.kind == 't' {
			m = m.u32(uint32(len(v.text)))
			m = append(m, v.text...)
		}
	}
	return m
}

func pgMicros(t time.Time) uint64 { return uint64(t.UnixMicro() - 946684800_000000) }

func beginMsg(final uint64, ts time.Time, xid uint32) []byte {
	return msg{'B'}.u64(final).u64(pgMicros(ts)).u32(xid)
}

func commitMsg(lsn, end uint64, ts time.Time) []byte {
	return msg{'C'}.u8(0).u64(lsn).u64(end).u64(pgMicros(ts))
}

func relationMsg(id uint32, schema, name string, cols []col) []byte {
	m := msg{'R'}.u32(id).str(schema).str(name).u8('f').u16(uint16(len(cols)))
	for _, c := range cols {
		var flags byte
		if c.key {
			flags = 1
		}
		m = m.u8(flags).str(c.name).u32(c.oid).u32(0xFFFFFFFF)
	}
	return m
}

func typeMsg(oid uint32, schema, name string) []byte { return msg{'Y'}.u32(oid).str(schema).str(name) }

func insertMsg(rel uint32, vals ...tv) []byte { return msg{'I'}.u32(rel).u8('N').tuple(vals) }

// updateMsg: oldTag 0 (no old tuple), 'K' or 'O'.
func updateMsg(rel uint32, oldTag byte, old, new []tv) []byte {
	m := msg{'U'}.u32(rel)
	if oldTag != 0 {
		m = m.u8(oldTag).tuple(old)
	}
	return m.u8('N').tuple(new)
}

func deleteMsg(rel uint32, tag byte, old ...tv) []byte { return msg{'D'}.u32(rel).u8(tag).tuple(old) }

func truncateMsg(rels ...uint32) []byte {
	m := msg{'T'}.u32(uint32(len(rels))).u8(0)
	for _, r := range rels {
		m = m.u32(r)
	}
	return m
}

func originMsg(lsn uint64, name string) []byte { return msg{'O'}.u64(lsn).str(name) }

// ticketCols is a small stand-in for the tickets table.
var ticketCols = []col{
	{"id", oidInt8, true}, {"status", oidInt8, false}, {"subject", 25, false},
	{"updated_at", oidTimestamp, false}, {"is_deleted", oidBool, false},
}

func testDecoder(maxChanges int) *decoder {
	rels := newRelationCache(slog.New(slog.DiscardHandler), []string{"public.tickets", "public.users"})
	return newDecoder(rels, maxChanges, 1<<30)
}
