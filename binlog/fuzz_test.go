package binlog

import (
	"strconv"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/deskhook/deskhook/change"
)

// FuzzRowValues feeds arbitrary row images of the MySQL 8 test table (every
// decoding path: unsigned ints, varchar, TIMESTAMP2, ENUM, binary JSON,
// DATETIME2, NULLs, update pairs) through go-mysql's parser and the
// decoder. Malformed images are errors, never a panic, and every value
// handed over says what its Kind promises.
func FuzzRowValues(f *testing.F) {
	f.Add(ticketImage(2, false), false)
	f.Add(append(ticketImage(2, false), ticketImage(1, true)...), true)
	f.Add([]byte{0x3f}, false)
	f.Add([]byte{0x00, 1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, image []byte, update bool) {
		d, out, p := mysql8Decoder(t, mysql8Source+":1-118")
		typ := replication.WRITE_ROWS_EVENTv2
		if update {
			typ = replication.UPDATE_ROWS_EVENTv2
		}
		for _, raw := range [][]byte{mysql8FDE(), event(replication.GTID_EVENT, mysql8GTID), queryEvent("helpdesk", "BEGIN"),
			mysql8TableMap(true), rowsEvent(typ, image), xidEvent()} {
			e, err := p.Parse(raw)
			if err != nil {
				return // go-mysql refused the event: an error, not a panic
			}
			if err := d.event(e); err != nil {
				return
			}
		}
		for _, b := range *out {
			for _, c := range b.Changes {
				for _, r := range []*change.Row{c.Old, c.New} {
					if r != nil {
						checkKinds(t, r)
					}
				}
			}
		}
	})
}

func checkKinds(t *testing.T, r *change.Row) {
	t.Helper()
	for i, v := range r.Values {
		col := r.Table.Columns[i].Name
		switch v.Kind {
		case change.KindNull, change.KindUnchanged:
			if v.Text != "" {
				t.Fatalf("%s: %v value with text %q", col, v.Kind, v.Text)
			}
		case change.KindInt:
			if n, err := strconv.ParseInt(v.Text, 10, 64); err != nil || n != v.Int {
				t.Fatalf("%s: int %d printed %q", col, v.Int, v.Text)
			}
		case change.KindTime:
			if got := v.Time.Format("2006-01-02 15:04:05"); len(v.Text) < 19 || got != v.Text[:19] {
				t.Fatalf("%s: time %s printed %q", col, v.Time, v.Text)
			}
		}
	}
}
