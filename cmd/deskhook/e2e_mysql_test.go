package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// TestMySQLStreams: a daemon on a MariaDB helpdesk, started on a store that
// has never streamed, reads from the server's position at its start and
// delivers what the helpdesk does next; status shows the stored GTID, check
// passes, setup and teardown have nothing to do on the server.
func TestMySQLStreams(t *testing.T) {
	t.Parallel()
	e := newMySQLE2E(t)
	before := e.loadMySQL(context.Background(), testenv.LoadConfig{Tickets: 1, Seed: 1}) // before the daemon: not read
	res := e.must("setup")
	if !strings.Contains(res.stdout, "nothing to create on the MySQL/MariaDB server") ||
		!strings.Contains(res.stdout, "the store has not streamed yet") {
		t.Errorf("setup on a fresh store: %s", res)
	}
	d := e.start()
	deliver := e.mysqlDeliverer()
	deliver(2)
	for _, a := range arrivals(e.rcv.Requests()) {
		if a.ticket == "1" && before.Tickets[0].TicketID == 1 {
			t.Errorf("%s of ticket 1, written before the first start, was delivered", a.event)
		}
	}
	st := statusJSON(t, e.must("status", "--json"))
	if st.Binlog == nil || st.Binlog.Stored != e.gtid() || st.Binlog.Error != "" || st.Outbox.Resume != st.Binlog.Stored ||
		st.Stream == nil || !st.Stream.Connected || st.Stream.ConnectionID == 0 {
		t.Errorf("status: binlog %+v, outbox %+v, stream %+v; server at %s", st.Binlog, st.Outbox, st.Stream, e.gtid())
	}
	res = e.must("status")
	if !regexp.MustCompile(`binlog\s+stored GTID `+e.gtid()+`, in the active binlog file`).MatchString(res.stdout) ||
		strings.Contains(res.stdout, "slot ") {
		t.Errorf("status:\n%s", res.stdout)
	}
	res = e.must("check")
	for _, want := range []string{"ok    binlog_row_metadata: FULL", "ok    server_id: ",
		"ok    stored binlog position: GTID " + e.gtid() + " is on the server, in the active binlog file",
		"ok    columns " + e.my.Name + ".tickets"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("check lacks %q:\n%s", want, res.stdout)
		}
	}
	res = e.must("setup")
	if !strings.Contains(res.stdout, "the stored position (GTID "+e.gtid()+") is on the server") {
		t.Errorf("setup on a streaming store: %s", res)
	}
	if res := e.must("teardown"); !strings.Contains(res.stdout, "nothing to remove") {
		t.Errorf("teardown: %s", res)
	}
	if res := e.must("setup", "--print-sql"); !strings.Contains(res.stdout, "GRANT REPLICATION SLAVE") ||
		!strings.Contains(res.stdout, "binlog_row_metadata = FULL") {
		t.Errorf("setup --print-sql: %s", res)
	}
	d.waitReadyz(http.StatusOK, 10*time.Second)
	d.stop()
}
