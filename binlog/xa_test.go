package binlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestXAOnAnotherTable: XA transactions on a table deskhook does not read
// (any application on the same server may use them) neither stop the
// reader nor hide what follows. The second half of a prepared XA
// transaction, XA COMMIT, is a GTID group of its own that no XID event
// ends; before it was handled, the next GTID failed the reader for good
// ("GTID ... begins while ... is open"), at every restart.
func TestXAOnAnotherTable(t *testing.T) {
	db := testenv.MariaDB(t)
	cfg := testConfig(db)
	db.Exec(t, "CREATE TABLE xa_other (id INT PRIMARY KEY) ENGINE=InnoDB")
	run := startReader(t, cfg, "", nil)
	conn, err := db.Pool(t).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"XA START 'two'", "INSERT INTO xa_other VALUES (1)", "XA END 'two'", "XA PREPARE 'two'", "XA COMMIT 'two'",
		"XA START 'rolled'", "INSERT INTO xa_other VALUES (2)", "XA END 'rolled'", "XA PREPARE 'rolled'", "XA ROLLBACK 'rolled'",
		"XA START 'one'", "INSERT INTO xa_other VALUES (3)", "XA END 'one'", "XA COMMIT 'one' ONE PHASE",
	} {
		if _, err := conn.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	m := mark(t, db)
	run.c.waitFor(t, "the marker written after the XA transactions", time.Minute, sawMarker(m))
	select {
	case err := <-run.done:
		t.Fatalf("the reader stopped: %v", err)
	default:
	}
}

func TestHealthySession(t *testing.T) {
	for _, c := range []struct {
		streamed, handed bool
		lasted           time.Duration
		want             bool
	}{
		{false, false, time.Hour, false},       // never got to stream
		{true, true, time.Millisecond, true},   // handed a transaction over
		{true, false, time.Millisecond, false}, // connected, then failed at once: the same event again?
		{true, false, 31 * time.Second, true},  // stood longer than the longest wait (idle helpdesk)
		{true, false, 30 * time.Second, false}, // not longer
	} {
		if got := healthySession(c.streamed, c.handed, c.lasted, 30*time.Second); got != c.want {
			t.Errorf("healthySession(%v, %v, %s) = %v", c.streamed, c.handed, c.lasted, got)
		}
	}
}

// TestMySQLRequirements: what MySQL needs besides MariaDB's settings (no
// MySQL server is installable here: the requirements are checked on the
// values a MySQL 8 server reports), each FAIL with its my.cnf line.
func TestMySQLRequirements(t *testing.T) {
	good := serverInfo{logBin: "ON", format: "ROW", rowImage: "FULL", rowMetadata: "FULL", gtidMode: "ON", enforceGTID: "ON",
		compression: "OFF"}
	if err := good.requirementsError(); err != nil {
		t.Fatalf("a MySQL 8 set up as README says: %v", err)
	}
	old := good
	old.compression = "" // before 8.0.20: no such variable
	if err := old.requirementsError(); err != nil {
		t.Errorf("a server without binlog_transaction_compression: %v", err)
	}
	for name, c := range map[string]struct {
		change func(*serverInfo)
		cnf    string
	}{
		"gtid_mode":   {func(s *serverInfo) { s.gtidMode = "OFF" }, "gtid_mode = ON"},
		"enforce":     {func(s *serverInfo) { s.enforceGTID = "WARN" }, "enforce_gtid_consistency = ON"},
		"compression": {func(s *serverInfo) { s.compression = "ON" }, "binlog_transaction_compression = OFF"},
	} {
		s := good
		c.change(&s)
		if err := s.requirementsError(); err == nil || !strings.Contains(err.Error(), c.cnf) {
			t.Errorf("%s: %v; want the my.cnf line %q", name, err, c.cnf)
		}
	}
}
