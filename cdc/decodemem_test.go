package cdc

import (
	"fmt"
	"runtime"
	"testing"
)

// faveoTicketCols is Faveo's tickets table (41 columns), for realistic rows.
func faveoTicketCols() ([]col, func(id, status int) []tv) {
	var cols []col
	var vals []tv
	add := func(name string, oid uint32, v tv) {
		cols = append(cols, col{name, oid, name == "id"})
		vals = append(vals, v)
	}
	add("id", oidInt8, txt("0"))
	add("ticket_number", 1043, txt("AAAA-0000-0001"))
	for _, c := range []string{"user_id", "dept_id", "team_id", "priority_id", "sla", "help_topic_id", "status"} {
		add(c, oidInt8, txt("1"))
	}
	for _, c := range []string{"rating", "ratingreply", "flags", "ip_address", "assigned_to", "lock_by", "source",
		"isoverdue", "reopened", "isanswered", "html", "is_deleted", "closed", "is_transferred", "type",
		"location_id", "creator_id", "is_manual_duedate", "parent_id"} {
		add(c, oidInt4, txt("0"))
	}
	for _, c := range []string{"lock_at", "transferred_at", "reopened_at", "duedate", "closed_at", "last_message_at",
		"first_response_time", "created_at", "updated_at", "response_due_by", "resolution_due_by",
		"status_changed_at", "assigned_at"} {
		add(c, oidTimestamp, txt("2024-03-01 12:00:00"))
	}
	return cols, func(id, status int) []tv {
		row := append([]tv(nil), vals...)
		row[0], row[8] = txt(fmt.Sprint(id)), txt(fmt.Sprint(status))
		return row
	}
}

// TestBatchBytesCountGoOverhead: the bytes a decoded batch is counted for
// (what queue_bytes bounds) are the heap it holds, within 15%: small
// transactions of wide rows, as a backlog has, are mostly Go's overhead
// (values, rows, change arrays), not the server's text.
func TestBatchBytesCountGoOverhead(t *testing.T) {
	cols, row := faveoTicketCols()
	const txns = 5000
	var msgs [][]byte
	msgs = append(msgs, relationMsg(1, "public", "tickets", cols))
	for i := range txns {
		pos := uint64(1000 + 10*i)
		msgs = append(msgs, beginMsg(pos, commitTS, uint32(i)))
		if i%2 == 0 {
			msgs = append(msgs, insertMsg(1, row(i, 1)...))
		} else {
			msgs = append(msgs, updateMsg(1, 'O', row(i, 1), row(i, 2)))
		}
		msgs = append(msgs, commitMsg(pos, pos+5, commitTS))
	}
	d := testDecoder(1024)
	kept := make([]decoded, 0, txns)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i, m := range msgs {
		out, ok, err := d.decode(m)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if ok {
			kept = append(kept, out)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if len(kept) != txns {
		t.Fatalf("%d batches, want %d", len(kept), txns)
	}
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	var counted int64
	for _, k := range kept {
		counted += int64(k.bytes)
	}
	// The bookkeeping outside the batches (queue slots, pending records)
	// is counted but not held here: allow for it.
	t.Logf("%d transactions: heap %d B each, counted %d B each", txns, heap/txns, counted/txns)
	if counted < heap*85/100 || counted > heap*130/100 {
		t.Errorf("counted %d B per transaction, heap %d B: want within -15%%/+30%%", counted/txns, heap/txns)
	}
	runtime.KeepAlive(kept)
	runtime.KeepAlive(msgs)
}

// BenchmarkDecode decodes a backlog-like stream (one insert or FULL-identity
// update of a 41-column tickets row per transaction); per transaction.
func BenchmarkDecode(b *testing.B) {
	cols, row := faveoTicketCols()
	var txn [][]byte
	for i := range 2 {
		txn = append(txn, beginMsg(uint64(1000+i), commitTS, 1))
		if i == 0 {
			txn = append(txn, insertMsg(1, row(7, 1)...))
		} else {
			txn = append(txn, updateMsg(1, 'O', row(7, 1), row(7, 2)))
		}
		txn = append(txn, commitMsg(uint64(1000+i), uint64(1005+i), commitTS))
	}
	d := testDecoder(1024)
	if _, _, err := d.decode(relationMsg(1, "public", "tickets", cols)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for _, m := range txn[3*(i%2) : 3*(i%2)+3] {
			if _, _, err := d.decode(m); err != nil {
				b.Fatal(err)
			}
		}
	}
}
