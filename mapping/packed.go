package mapping

import (
	"bytes"

	"github.com/deskhook/deskhook/change"
)

// A packed row is a row kept in the state in its payload form, compactly:
// its values rendered as canonical JSON scalars, each followed by a NUL
// byte (canonical JSON never holds a raw control character, so NUL cannot
// occur inside a value), and the column names once per table shape rather
// than once per row. A tickets row of Faveo's 41 columns takes about 40%
// of its rendered members this way, and renders back to exactly the bytes
// appendMembers writes.
type packedRow struct {
	shape *rowShape
	vals  []byte
}

// rowShape is the rendered keys (`"name":`) of the first n columns of a
// table, shared by every packed row of that shape.
type rowShape struct {
	table *change.Table
	keys  []string
}

// known reports whether the row is set.
func (p *packedRow) known() bool { return p.shape != nil }

// appendTo writes the row's members into j (with a separating comma when
// j's object already has members); nothing when the row is unset.
func (p *packedRow) appendTo(j *jsonBuf) {
	if p.shape == nil {
		return
	}
	v := p.vals
	for _, k := range p.shape.keys {
		end := bytes.IndexByte(v, 0)
		if j.comma {
			j.b = append(j.b, ',')
		}
		j.b = append(j.b, k...)
		j.b = append(j.b, v[:end]...)
		j.comma = true
		v = v[end+1:]
	}
}

// appendObject writes the row as a JSON object.
func (p *packedRow) appendObject(j *jsonBuf) {
	j.openObject()
	p.appendTo(j)
	j.closeObject()
}

// value returns the rendered value of column col (nil when the row has no
// such column).
func (p *packedRow) value(col string) []byte {
	if p.shape == nil {
		return nil
	}
	i := p.shape.table.Col(col)
	if i < 0 || i >= len(p.shape.keys) {
		return nil
	}
	v := p.vals
	for ; i > 0; i-- {
		v = v[bytes.IndexByte(v, 0)+1:]
	}
	return v[:bytes.IndexByte(v, 0)]
}

// size is the heap the row's values take.
func (p *packedRow) size() int { return change.HeapBytes(cap(p.vals)) }

// shapes caches row shapes by table (and width: a row may carry fewer
// values than its table has columns). Sources make a new *change.Table
// when a definition changes (and cdc on every connection), so the cache is
// emptied when it grows past a bound; packed rows keep their own shape.
type shapes map[shapeKey]*rowShape

type shapeKey struct {
	table *change.Table
	n     int
}

const maxShapes = 256

func (s *shapes) get(t *change.Table, n int) *rowShape {
	n = min(n, len(t.Columns))
	k := shapeKey{t, n}
	if sh, ok := (*s)[k]; ok {
		return sh
	}
	if len(*s) >= maxShapes {
		clear(*s)
	}
	sh := &rowShape{table: t, keys: make([]string, n)}
	var b []byte
	for i := range n {
		b = appendJSONString(b[:0], t.Columns[i].Name)
		b = append(b, ':')
		sh.keys[i] = string(b)
	}
	(*s)[k] = sh
	return sh
}

// pack renders row into a packed row; scratch is a reusable buffer.
func (s *shapes) pack(row *change.Row, scratch []byte) (packedRow, []byte) {
	sh := s.get(row.Table, len(row.Values))
	scratch = scratch[:0]
	for i := range sh.keys {
		scratch = appendScalar(scratch, row.Values[i], row.Table.Columns[i].Type)
		scratch = append(scratch, 0)
	}
	if cap(scratch) > maxKeptBuf {
		// A large row (a first thread of megabytes) keeps the buffer it was
		// rendered in, rather than a copy; the next rows start a new one.
		return packedRow{shape: sh, vals: scratch}, nil // its whole capacity counted (size)
	}
	return packedRow{shape: sh, vals: cloneBytes(scratch)}, scratch
}
