package mapping

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

// byteStream hands out fuzz input piece by piece (zeros once exhausted).
type byteStream struct{ b []byte }

func (s *byteStream) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteStream) str() string {
	n := int(s.next() % 12)
	if n > len(s.b) {
		n = len(s.b)
	}
	out := string(s.b[:n])
	s.b = s.b[n:]
	return out
}

// value makes an arbitrary value: any kind, small ids (so rows relate to
// each other), arbitrary bytes as text, odd times.
func (s *byteStream) value() change.Value {
	switch s.next() % 9 {
	case 0:
		return change.Value{Kind: change.KindNull}
	case 1:
		return change.Value{Kind: change.KindUnchanged}
	case 2, 3:
		n := int64(s.next() % 6)
		return change.Value{Kind: change.KindInt, Int: n}
	case 4:
		return change.Value{Kind: change.KindBool, Int: int64(s.next() % 2)}
	case 5:
		return change.Value{Kind: change.KindFloat, Text: s.str()}
	case 6:
		sec := int64(s.next())<<32 | int64(s.next())<<16
		if s.next()%2 == 0 {
			sec = -sec * 1000
		}
		return change.Value{Kind: change.KindTime, Time: time.Unix(sec, 0)}
	case 7:
		return change.Value{Kind: change.KindBytes, Text: s.str()}
	}
	return change.Value{Kind: change.KindText, Text: s.str()}
}

var fuzzTables = []*change.Table{ticketsT, threadsT, usersT, statusT, typesT, otherT,
	change.NewTable("public", "tickets", []change.Column{{Name: "id", Type: "date"}, {Name: "status", Type: "text"}})}

// FuzzMap: arbitrary rows never make the mapper panic, and every payload
// it emits is valid JSON that both renderers accept.
func FuzzMap(f *testing.F) {
	f.Add([]byte{0, 0, 2, 1, 8, 3, 'T', '-', '1', 2, 5, 2, 1})
	f.Add([]byte("\x01\x00\x02\x01\x02\x01\x02\x05\x08\x07support\x02\x00\x08\x03<p>"))
	f.Add([]byte("\x02\x01\x02\x01\x08\x01x\x08\x01y\x08\x01z\x08\x01e\x08\x01p\x08\x011\x00"))
	f.Add([]byte("\x03\x00\x02\x02\x08\x03Ops\x02\x02\x08\x06{\"a\":1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &byteStream{b: data}
		src := newMemSource()
		m, err := New(Config{AppKey: testAppKey, StateSize: 3, TeamAssignment: data != nil && len(data)%2 == 0}, src, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for pos := 1; len(s.b) > 0 && pos < 50; pos++ {
			var changes []change.Change
			for n := int(s.next()%6) + 1; n > 0 && len(s.b) > 0; n-- {
				tbl := fuzzTables[int(s.next())%len(fuzzTables)]
				mk := func() *change.Row {
					r := &change.Row{Table: tbl, Values: make([]change.Value, len(tbl.Columns))}
					for i := range r.Values {
						r.Values[i] = s.value()
					}
					if s.next()%7 == 0 && len(r.Values) > 0 { // a row shorter than its table
						r.Values = r.Values[:len(r.Values)-1]
					}
					return r
				}
				c := change.Change{Op: change.Op(s.next()%4 + 1), Table: tbl}
				switch c.Op {
				case change.Insert:
					c.New = mk()
				case change.Update:
					c.New = mk()
					if s.next()%2 == 0 {
						c.Old = mk()
					}
				case change.Delete:
					c.Old = mk()
				}
				if s.next()%11 == 0 {
					src.put(mk()) // the source learns arbitrary rows too
				}
				changes = append(changes, c)
			}
			b := &change.Batch{Pos: change.Position(pos), Seq: int(s.next() % 2), Last: true, Changes: changes}
			evs, err := m.Map(context.Background(), b)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			for _, ev := range evs {
				if !json.Valid(ev.Payload) {
					t.Fatalf("%s: invalid JSON %q", ev.Type, ev.Payload)
				}
				for _, f := range []Format{FormatForm, FormatJSON} {
					if _, _, err := Render(f, ev.Payload); err != nil {
						t.Fatalf("render %s of %s: %v\n%s", f, ev.Type, err, ev.Payload)
					}
				}
			}
		}
	})
}
