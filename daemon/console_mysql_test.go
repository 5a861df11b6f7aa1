package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/console"
	"github.com/deskhook/deskhook/testenv"
)

// TestConsoleOverviewMySQL: for a MySQL/MariaDB source the console's
// overview shows the binlog, the stored position and the margin before
// the server purges it, not PostgreSQL's slot and WAL.
func TestConsoleOverviewMySQL(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := mustParse(t, `
source: {type: mysql, dsn: "`+db.DeskhookDSN+`"}
store: {path: `+filepath.Join(t.TempDir(), "deskhook.db")+`}
admin: {listen: off}
endpoints: [{url: "http://127.0.0.1:1/hooks"}]
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := New(ctx, cfg, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	defer func() {
		cancel()
		<-runErr
	}()

	var ov console.Overview
	deadline := time.Now().Add(time.Minute)
	for {
		if ov, err = (&consoleBackend{d: d}).Overview(ctx); err != nil {
			t.Fatal(err)
		}
		if factValue(ov.Source, "Margin before the position is purged") != "" && factValue(ov.Source, "Stream") != "disconnected" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview never showed a connected stream and the binlog's margin: %+v", ov.Source)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := factValue(ov.Source, "Database"); !strings.Contains(v, "MySQL/MariaDB") {
		t.Errorf("Database: %q", v)
	}
	if v := factValue(ov.Source, "Binlog"); !strings.Contains(v, "stored position") {
		t.Errorf("Binlog: %q", v)
	}
	for _, f := range ov.Source {
		if strings.Contains(f.Label, "WAL") || strings.Contains(f.Label, "Slot") || strings.Contains(f.Value, "walsender") {
			t.Errorf("a PostgreSQL fact on a MySQL source's overview: %+v", f)
		}
	}
}

func factValue(facts []console.Fact, label string) string {
	for _, f := range facts {
		if f.Label == label {
			return f.Value
		}
	}
	return ""
}
