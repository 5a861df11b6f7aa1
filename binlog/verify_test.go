package binlog

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/testenv"
)

// Verify finds nothing on Faveo's schema, and each change a migration can
// make to what deskhook reads: a column renamed, a column of another type,
// a table dropped; check says the same, once each, with the fix.
func TestVerify(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	ctx := context.Background()
	ps, err := Verify(ctx, cfg)
	if err != nil || len(ps) != 0 {
		t.Fatalf("Verify on Faveo's schema: %v, %v", ps, err)
	}
	db.Exec(t, "ALTER TABLE tickets RENAME COLUMN status TO state")
	db.Exec(t, "ALTER TABLE ticket_thread MODIFY COLUMN poster DOUBLE")
	db.Exec(t, "DROP TABLE teams")
	ps, err = Verify(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Table+" "+p.Kind)
	}
	want := []string{db.Name + ".tickets missing_column:status", db.Name + ".ticket_thread column_type:poster",
		db.Name + ".teams missing"}
	if !slices.Equal(got, want) {
		t.Fatalf("Verify after the migration: %v, want %v", got, want)
	}
	for _, w := range []string{"RENAME COLUMN <its new name> TO `status`", "MODIFY COLUMN `poster` TEXT", "source.tables.teams"} {
		found := false
		for _, p := range ps {
			found = found || strings.Contains(p.Fix, w)
		}
		if !found {
			t.Errorf("no fix says %q: %+v", w, ps)
		}
	}
	rs := results(t, Check(ctx, cfg))
	for name, detail := range map[string]string{
		"column " + db.Name + ".tickets.status":       "lacks column status",
		"column " + db.Name + ".ticket_thread.poster": "is of type double",
		"table " + db.Name + ".teams":                 "not found",
	} {
		if r := rs[name]; r.OK || !strings.Contains(r.Detail, detail) {
			t.Errorf("check %s: %+v; want a FAIL saying %q", name, r, detail)
		}
	}
	if r := rs["columns "+db.Name+".users"]; !r.OK {
		t.Errorf("check of an untouched table: %+v", r)
	}
}
