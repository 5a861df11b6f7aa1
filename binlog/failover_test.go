package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/deskhook/deskhook/testenv"
)

// TestPromotedReplicaKeepsStreaming: after a failover to a replica (same
// GTID domain, log_slave_updates), the stored token's anchor names a file
// and offset of the old primary: on the promoted replica, another server,
// the GTIDs alone say where to read on, as they did before anchors. It is
// not refused as a reset server.
func TestPromotedReplicaKeepsStreaming(t *testing.T) {
	ctx := context.Background()
	prim := testenv.MariaDB(t, testenv.Dedicated(), testenv.NoFsync())
	padm, err := sql.Open("mysql", prim.Server.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer padm.Close()
	for _, q := range []string{"CREATE USER 'repl'@'%' IDENTIFIED BY 'replpw'", "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'"} {
		if _, err := padm.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	rep, err := testenv.StartMariaDB(ctx, testenv.NoFsync(), testenv.WithSettings(map[string]string{"server_id": "2", "log_slave_updates": "ON"}))
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	radm, err := sql.Open("mysql", rep.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer radm.Close()
	for _, q := range []string{"RESET MASTER", "FLUSH BINARY LOGS", "SET GLOBAL gtid_slave_pos=''",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='replpw', MASTER_USE_GTID=slave_pos", prim.Server.Port),
		"START SLAVE"} {
		if _, err := radm.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	cfg := testConfig(prim)
	run := startReader(t, cfg, "", nil)
	for range 3 {
		mark(t, prim)
	}
	m := mark(t, prim)
	txs := transactions(run.c.waitFor(t, "m", time.Minute, sawMarker(m)))
	run.close(t)
	last := txs[len(txs)-1]
	token := WithAnchor(last.Resume, last.Anchor)
	// The replica catches up.
	for i := 0; ; i++ {
		var pos string
		radm.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos)
		if pos == last.Resume {
			break
		}
		if i > 300 {
			var io, sqlErr string
			rows, _ := radm.Query("SHOW SLAVE STATUS")
			cols, _ := rows.Columns()
			vals := make([]sql.NullString, len(cols))
			dst := make([]any, len(cols))
			for i := range vals {
				dst[i] = &vals[i]
			}
			for rows.Next() {
				rows.Scan(dst...)
				for i, c := range cols {
					if strings.Contains(c, "Error") || strings.Contains(c, "Running") {
						io += c + "=" + vals[i].String + "; "
					}
				}
			}
			t.Fatalf("replica at %q, want %q: %s %s", pos, last.Resume, io, sqlErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Failover: the replica is promoted; the DSN now names it.
	if _, err := radm.Exec("STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	rcfg := cfg
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	mc.Addr = fmt.Sprintf("127.0.0.1:%d", rep.Port)
	rcfg.DSN = mc.FormatDSN()
	if _, err := CheckRetention(ctx, rcfg, token); err != nil {
		t.Fatalf("CheckRetention(%s) on the promoted replica: %v", token, err)
	}
	r2 := startReader(t, rcfg, token, nil)
	after := fmt.Sprintf("after-failover-%d", time.Now().UnixNano())
	if _, err := radm.Exec("INSERT INTO `"+prim.Name+"`.teams (name, status, assign_alert, admin_notes) VALUES (?, 1, 0, '')", after); err != nil {
		t.Fatal(err)
	}
	r2.c.waitFor(t, "a marker written on the promoted replica", time.Minute, sawMarker(after))
}
