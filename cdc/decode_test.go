package cdc

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

var commitTS = time.Date(2024, 3, 1, 12, 30, 45, 123456000, time.UTC)

// feed decodes msgs and returns the batches that come out.
func feed(t *testing.T, d *decoder, msgs ...[]byte) []*change.Batch {
	t.Helper()
	var out []*change.Batch
	for i, m := range msgs {
		b, ok, err := d.decode(m)
		if err != nil {
			t.Fatalf("message %d (%q): %v", i, m[0], err)
		}
		if ok {
			out = append(out, b.batch)
		}
	}
	return out
}

// rowText renders a row as "col=kind:text ..." for comparison.
func rowText(r *change.Row) string {
	if r == nil {
		return "<nil>"
	}
	var sb strings.Builder
	for i, v := range r.Values {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(r.Table.Columns[i].Name + "=")
		switch v.Kind {
		case change.KindNull:
			sb.WriteString("NULL")
		case change.KindUnchanged:
			sb.WriteString("?")
		default:
			sb.WriteString(v.Text)
		}
	}
	return sb.String()
}

func TestDecodeTransaction(t *testing.T) {
	const rel = 16400
	full := []tv{txt("7"), txt("1"), txt("Printer on fire"), txt("2024-03-01 12:00:00"), txt("f")}
	newRow := []tv{txt("7"), txt("2"), txt("Printer on fire"), txt("2024-03-01 12:30:45"), txt("f")}
	tests := []struct {
		name     string
		msg      []byte
		op       change.Op
		old, new string
	}{
		{"insert", insertMsg(rel, full...), change.Insert, "<nil>",
			"id=7 status=1 subject=Printer on fire updated_at=2024-03-01 12:00:00 is_deleted=f"},
		{"update with old row (REPLICA IDENTITY FULL)", updateMsg(rel, 'O', full, newRow), change.Update,
			"id=7 status=1 subject=Printer on fire updated_at=2024-03-01 12:00:00 is_deleted=f",
			"id=7 status=2 subject=Printer on fire updated_at=2024-03-01 12:30:45 is_deleted=f"},
		{"update, unchanged TOAST taken from the old row",
			updateMsg(rel, 'O', full, []tv{txt("7"), txt("2"), unchanged, txt("2024-03-01 12:30:45"), txt("f")}), change.Update,
			"id=7 status=1 subject=Printer on fire updated_at=2024-03-01 12:00:00 is_deleted=f",
			"id=7 status=2 subject=Printer on fire updated_at=2024-03-01 12:30:45 is_deleted=f"},
		{"update without old row keeps unchanged TOAST unchanged",
			updateMsg(rel, 0, nil, []tv{txt("7"), txt("2"), unchanged, null, txt("t")}), change.Update,
			"<nil>", "id=7 status=2 subject=? updated_at=NULL is_deleted=t"},
		{"update of the key (default identity): old has only the key",
			updateMsg(rel, 'K', []tv{txt("6"), null, null, null, null}, newRow), change.Update,
			"id=6 status=? subject=? updated_at=? is_deleted=?",
			"id=7 status=2 subject=Printer on fire updated_at=2024-03-01 12:30:45 is_deleted=f"},
		{"delete with old row", deleteMsg(rel, 'O', full...), change.Delete,
			"id=7 status=1 subject=Printer on fire updated_at=2024-03-01 12:00:00 is_deleted=f", "<nil>"},
		{"delete with key", deleteMsg(rel, 'K', txt("7"), null, null, null, null), change.Delete,
			"id=7 status=? subject=? updated_at=? is_deleted=?", "<nil>"},
		{"truncate", truncateMsg(rel), change.Truncate, "<nil>", "<nil>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDecoder(100)
			bs := feed(t, d,
				relationMsg(rel, "public", "tickets", ticketCols),
				originMsg(5, "elsewhere"),
				beginMsg(0x1_0000_0100, commitTS, 901),
				tc.msg,
				commitMsg(0x1_0000_0100, 0x1_0000_0180, commitTS))
			if len(bs) != 1 {
				t.Fatalf("got %d batches, want 1", len(bs))
			}
			b := bs[0]
			if b.Pos != 0x1_0000_0100 || b.Xid != 901 || !b.CommitTime.Equal(commitTS) || b.Seq != 0 || !b.Last {
				t.Errorf("batch header = pos %s xid %d time %s seq %d last %v", b.Pos, b.Xid, b.CommitTime, b.Seq, b.Last)
			}
			if len(b.Changes) != 1 {
				t.Fatalf("got %d changes, want 1", len(b.Changes))
			}
			c := b.Changes[0]
			if c.Op != tc.op || c.Table.Schema != "public" || c.Table.Name != "tickets" {
				t.Errorf("change = %s on %s.%s", c.Op, c.Table.Schema, c.Table.Name)
			}
			if got := rowText(c.Old); got != tc.old {
				t.Errorf("old row:\n got %s\nwant %s", got, tc.old)
			}
			if got := rowText(c.New); got != tc.new {
				t.Errorf("new row:\n got %s\nwant %s", got, tc.new)
			}
		})
	}
}

func TestDecodeTypedValues(t *testing.T) {
	d := testDecoder(100)
	bs := feed(t, d,
		relationMsg(1, "public", "tickets", ticketCols),
		beginMsg(100, commitTS, 1),
		insertMsg(1, txt("42"), null, txt("x"), txt("2022-06-16 07:52:32"), txt("t")),
		commitMsg(100, 120, commitTS))
	row := bs[0].Changes[0].New
	if v, _ := row.Get("id"); v.Kind != change.KindInt || v.Int != 42 || v.Text != "42" {
		t.Errorf("id = %+v", v)
	}
	if v, _ := row.Get("status"); v.Kind != change.KindNull {
		t.Errorf("status = %+v, want NULL", v)
	}
	if v, _ := row.Get("updated_at"); v.Kind != change.KindTime ||
		!v.Time.Equal(time.Date(2022, 6, 16, 7, 52, 32, 0, time.UTC)) || v.Text != "2022-06-16 07:52:32" {
		t.Errorf("updated_at = %+v", v)
	}
	if v, _ := row.Get("is_deleted"); v.Kind != change.KindBool || v.Int != 1 {
		t.Errorf("is_deleted = %+v", v)
	}
	if col := row.Table.Columns[3]; col.Type != "timestamp" || col.Key {
		t.Errorf("updated_at column = %+v", col)
	}
	if col := row.Table.Columns[0]; col.Type != "int8" || !col.Key {
		t.Errorf("id column = %+v", col)
	}
}

func TestDecodeChunksLargeTransaction(t *testing.T) {
	d := testDecoder(3)
	msgs := [][]byte{relationMsg(1, "public", "tickets", ticketCols), beginMsg(500, commitTS, 9)}
	for i := range 7 {
		msgs = append(msgs, insertMsg(1, txt(string(rune('0'+i))), null, null, null, null))
	}
	msgs = append(msgs, commitMsg(500, 540, commitTS))
	bs := feed(t, d, msgs...)
	if len(bs) != 3 {
		t.Fatalf("got %d chunks, want 3", len(bs))
	}
	next := 0
	for i, b := range bs {
		if b.Pos != 500 || b.Seq != i || b.Last != (i == 2) || b.Xid != 9 {
			t.Errorf("chunk %d: pos %s seq %d last %v xid %d", i, b.Pos, b.Seq, b.Last, b.Xid)
		}
		want := []int{3, 3, 1}[i]
		if len(b.Changes) != want {
			t.Errorf("chunk %d has %d changes, want %d", i, len(b.Changes), want)
		}
		for _, c := range b.Changes {
			if got := c.New.Text("id"); got != string(rune('0'+next)) {
				t.Errorf("change %d has id %s", next, got)
			}
			next++
		}
	}
}

func TestDecodeExactMultipleHasNoEmptyLastChunk(t *testing.T) {
	d := testDecoder(2)
	bs := feed(t, d, relationMsg(1, "public", "tickets", ticketCols), beginMsg(500, commitTS, 9),
		insertMsg(1, txt("1"), null, null, null, null), insertMsg(1, txt("2"), null, null, null, null),
		commitMsg(500, 540, commitTS))
	if len(bs) != 1 || !bs[0].Last || len(bs[0].Changes) != 2 {
		t.Fatalf("got %d batches (first: last=%v, %d changes), want one full last chunk", len(bs), bs[0].Last, len(bs[0].Changes))
	}
}

func TestDecodeResumePlan(t *testing.T) {
	d := testDecoder(2)
	d.onBegin = func(pos change.Position, xid uint32) (beginPlan, error) {
		switch pos {
		case 100:
			return beginPlan{skip: true}, nil
		case 200:
			return beginPlan{skipChanges: 3, seq: 2}, nil
		}
		return beginPlan{}, nil
	}
	ins := func(id string) []byte { return insertMsg(1, txt(id), null, null, null, null) }
	bs := feed(t, d, relationMsg(1, "public", "tickets", ticketCols),
		beginMsg(100, commitTS, 1), ins("a"), commitMsg(100, 110, commitTS),
		beginMsg(200, commitTS, 2), ins("1"), ins("2"), ins("3"), ins("4"), ins("5"), commitMsg(200, 210, commitTS))
	if len(bs) != 1 {
		t.Fatalf("got %d batches, want 1", len(bs))
	}
	b := bs[0]
	if b.Pos != 200 || b.Seq != 2 || !b.Last || len(b.Changes) != 2 ||
		b.Changes[0].New.Text("id") != "4" || b.Changes[1].New.Text("id") != "5" {
		t.Errorf("resumed batch: pos %s seq %d last %v changes %d", b.Pos, b.Seq, b.Last, len(b.Changes))
	}
}

func TestDecodeEmptyTransactionHandsOverNothing(t *testing.T) {
	d := testDecoder(10)
	if bs := feed(t, d, beginMsg(100, commitTS, 1), commitMsg(100, 110, commitTS)); len(bs) != 0 {
		t.Fatalf("got %d batches for an empty transaction", len(bs))
	}
	if d.inTxn {
		t.Fatal("transaction still open after Commit")
	}
}

func TestDecodeSchemaChangeMidStream(t *testing.T) {
	d := testDecoder(100)
	cols2 := append(append([]col{}, ticketCols...), col{"priority", oidInt4, false})
	bs := feed(t, d,
		relationMsg(1, "public", "tickets", ticketCols),
		beginMsg(100, commitTS, 1), insertMsg(1, txt("1"), null, null, null, null), commitMsg(100, 110, commitTS),
		beginMsg(200, commitTS, 2),
		relationMsg(1, "public", "tickets", cols2),
		insertMsg(1, txt("2"), null, null, null, null, txt("3")),
		commitMsg(200, 210, commitTS))
	if len(bs) != 2 {
		t.Fatalf("got %d batches", len(bs))
	}
	before, after := bs[0].Changes[0].New, bs[1].Changes[0].New
	if before.Table == after.Table {
		t.Fatal("a new Relation message must give a new *change.Table")
	}
	if _, ok := before.Get("priority"); ok || len(before.Table.Columns) != 5 {
		t.Errorf("old batch's table changed: %d columns", len(before.Table.Columns))
	}
	if n, ok := after.Int("priority"); !ok || n != 3 {
		t.Errorf("priority in the later row = %d, %v", n, ok)
	}
}

func TestDecodeTypeMessageNamesColumnType(t *testing.T) {
	d := testDecoder(100)
	feed(t, d, typeMsg(90001, "public", "mood"), relationMsg(1, "public", "users", []col{{"id", oidInt8, true}, {"mood", 90001, false}}))
	r, err := d.rels.get(1)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.table.Columns[1].Type; got != "mood" {
		t.Errorf("column type = %q, want mood", got)
	}
}

func TestDecodeRenamedTable(t *testing.T) {
	d := testDecoder(100)
	feed(t, d, relationMsg(1, "public", "tickets", ticketCols), relationMsg(2, "public", "other", ticketCols))
	// A table deskhook does not read may be renamed.
	if _, _, err := d.decode(relationMsg(2, "public", "other2", ticketCols)); err != nil {
		t.Fatalf("renaming an unwatched table: %v", err)
	}
	// The relation cache outlives a connection: a rename noticed after a reconnect.
	d.reset()
	_, _, err := d.decode(relationMsg(1, "public", "tickets_old", ticketCols))
	var re *TableRenamedError
	if !errors.As(err, &re) || re.Old != "public.tickets" || re.New != "public.tickets_old" || !permanent(err) {
		t.Fatalf("err = %v, want a TableRenamedError from public.tickets to public.tickets_old", err)
	}
	if !strings.Contains(err.Error(), "public.tickets") || !strings.Contains(err.Error(), "public.tickets_old") {
		t.Errorf("message names neither name: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	rel := relationMsg(1, "public", "tickets", ticketCols)
	begin := beginMsg(100, commitTS, 1)
	tests := []struct {
		name string
		msgs [][]byte
		want string
	}{
		{"change outside a transaction", [][]byte{rel, insertMsg(1, txt("1"), null, null, null, null)}, "outside a transaction"},
		{"unknown relation", [][]byte{begin, insertMsg(9, txt("1"))}, "relation id 9"},
		{"commit mismatch", [][]byte{begin, commitMsg(101, 120, commitTS)}, "does not match"},
		{"nested begin", [][]byte{begin, begin}, "while transaction"},
		{"column count", [][]byte{rel, begin, insertMsg(1, txt("1"))}, "tuple has 1 columns"},
		{"truncated insert", [][]byte{rel, begin, insertMsg(1, txt("1"), null, null, null, null)[:12]}, "truncated"},
		{"truncated relation", [][]byte{rel[:20]}, "Relation"},
		{"binary value", [][]byte{rel, begin, msg{'I'}.u32(1).u8('N').u16(5).u8('b').u32(1).u8(1)}, "binary"},
		{"unknown message", [][]byte{{'Z', 1, 2}}, "unexpected message type"},
		{"streaming not requested", [][]byte{{'S', 0, 0, 0, 1, 1}}, "unexpected message type"},
		{"empty", [][]byte{{}}, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := testDecoder(100)
			var err error
			for _, m := range tc.msgs {
				if _, _, err = d.decode(m); err != nil {
					break
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
