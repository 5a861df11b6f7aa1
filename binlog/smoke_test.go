package binlog

import (
	"context"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

func TestSmoke(t *testing.T) {
	db := testenv.MariaDB(t)
	run := startReader(t, testConfig(db), "", nil)
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	w, err := hd.CreateTicket(context.Background(), testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	bs := run.c.waitFor(t, "ticket", 30*time.Second, func(bs []*change.Batch) bool { return len(transactions(bs)) > 0 })
	for _, b := range bs {
		t.Logf("batch pos=%d resume=%s seq=%d last=%v commit=%s", b.Pos, b.Resume, b.Seq, b.Last, b.CommitTime)
		for _, c := range b.Changes {
			t.Logf("  %s %s", c.Op, c.Table.Name)
			if c.New != nil {
				for i, v := range c.New.Values {
					t.Logf("    %s (%s) = %q kind %d", c.Table.Columns[i].Name, c.Table.Columns[i].Type, v.Text, v.Kind)
				}
			}
		}
	}
	_ = w
}
