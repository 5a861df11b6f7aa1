package main

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// binlogFiles lists the server's binlog files.
func (e *e2e) binlogFiles() []string {
	e.t.Helper()
	rows, err := e.pool().QueryContext(context.Background(), "SHOW BINARY LOGS")
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		dst := make([]any, len(cols))
		var name string
		dst[0] = &name
		for i := 1; i < len(dst); i++ {
			dst[i] = new(any)
		}
		if err := rows.Scan(dst...); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, name)
	}
	return out
}

// purgeAllButActive purges every binlog file but the one the server writes.
func (e *e2e) purgeAllButActive() {
	e.t.Helper()
	files := e.binlogFiles()
	last := files[len(files)-1]
	for deadline := time.Now().Add(time.Minute); len(e.binlogFiles()) > 1; time.Sleep(100 * time.Millisecond) {
		// The server keeps a file a dump thread still reads, until it
		// notices the reader is gone.
		e.exec("PURGE BINARY LOGS TO '" + last + "'")
		if time.Now().After(deadline) {
			e.t.Fatalf("PURGE BINARY LOGS TO %s left %v", last, e.binlogFiles())
		}
	}
}

// metric reads a gauge or counter of the daemon's /metrics (-1: absent).
func metric(t *testing.T, d *daemonProc, name string) int {
	t.Helper()
	_, body, err := d.get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// TestMySQLLostPositionNeedsAcceptGap is issue 14's "a purged position is
// refused loudly and accepted only with --accept-gap", on the real binary:
//   - deskhook behind the server's binlog (its mapping failing) while the
//     server rotates: /readyz 503 and check WARN say the next purge takes
//     the stored position, before it happens;
//   - the binlog holding the stored position purged while the daemon is
//     down: it does not stream; one ERROR naming the stored GTID and the
//     oldest left, /readyz 503 with the reason, the metric, check FAIL
//     with the fix, plain setup refusing; `setup --accept-gap`, run while
//     the daemon holds the store, records the gap (status shows it) and
//     streaming resumes from the oldest binlog left;
//   - the server reset (RESET MASTER: its GTID sequence starts again below
//     the stored position): refused the same way; accepted, positions go on
//     in a new epoch, so every event id stays unique and what the server
//     wrote after the reset is delivered.
func TestMySQLLostPositionNeedsAcceptGap(t *testing.T) {
	t.Parallel()
	e := newMySQLE2E(t, testenv.Dedicated(), testenv.NoFsync())
	ctx := context.Background()
	hd := testenv.NewMySQLHelpdesk(e.pool())
	// A ticket deskhook never sees written: a reply to it needs its row
	// from the database.
	old, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	d := e.start()
	deliver := e.mysqlDeliverer()
	deliver(1)

	// Behind: the reply cannot be mapped while its ticket's table is away;
	// the server rotates its binlog meanwhile.
	d.stop()
	delivered := len(deliveredIDs(e.rcv.Requests()))
	stored := statusJSON(t, e.must("status", "--json")).Outbox.Resume
	if _, err := hd.AgentReply(ctx, old.TicketID, testenv.AgentAlice, "<p>late</p>"); err != nil {
		t.Fatal(err)
	}
	e.exec("RENAME TABLE tickets TO tickets_away")
	e.exec("FLUSH BINARY LOGS")
	e.exec("FLUSH BINARY LOGS")
	res := e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^WARN  stored binlog position: binlog retention: the stored position `+
		stored+` is in binlog file 1 of 3; the server may purge only 0 file\(s\) before it is lost`).MatchString(res.stdout) {
		t.Errorf("check while behind: %s", res)
	}
	d = startDaemon(t, e.cfgPath, e.admin)
	d.waitReadyz(http.StatusServiceUnavailable, 60*time.Second, "binlog retention: the stored position "+stored,
		"admin.min_binlog_margin 1")
	e.exec("RENAME TABLE tickets_away TO tickets")
	d.waitReadyz(http.StatusOK, 60*time.Second)

	// Purged while the daemon is down.
	e.waitDelivered(delivered+1, 30*time.Second) // the late reply
	d.stop()
	stored = statusJSON(t, e.must("status", "--json")).Outbox.Resume
	lost := e.loadMySQL(ctx, testenv.LoadConfig{Tickets: 1, Seed: 2})
	e.exec("FLUSH BINARY LOGS")
	e.purgeAllButActive()
	oldest := e.gtid()
	d = startDaemon(t, e.cfgPath, e.admin)
	body := d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "the stored position "+stored+
		" is no longer in the server's binlogs", "the oldest binlog starts after "+oldest, "--accept-gap")
	waitRestarts(t, d, 3)
	if lines := errorLines(d, "the stored position "+stored+" is no longer in the server's binlogs"); len(lines) != 1 {
		t.Errorf("want one ERROR line naming the stored position %s, got %d:\n%s", stored, len(lines), d.stderr.String())
	}
	if v := metric(t, d, "deskhook_source_position_lost"); v != 1 {
		t.Errorf("deskhook_source_position_lost %d, want 1; /readyz said:\n%s", v, body)
	}
	res = e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  stored binlog position: binlog: the stored position `+stored+
		` is no longer in the server's binlogs \(the binlogs holding the transactions after it were purged\)`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "fix: deskhook setup --accept-gap") || strings.Count(res.stdout, "FAIL") != 1 {
		t.Errorf("check with the position purged: %s", res)
	}
	if res := e.run("setup"); res.code != 1 || !strings.Contains(res.stderr, "--accept-gap") {
		t.Errorf("setup without --accept-gap: want exit 1 pointing at --accept-gap; %s", res)
	}
	res = e.must("setup", "--accept-gap") // the daemon holds the store: through its API
	if !strings.Contains(res.stdout, "accepted a gap (binlog purged): changes after position ") ||
		!strings.Contains(res.stdout, "reading on after GTID "+oldest) || !strings.Contains(res.stdout, "recorded the gap in store") ||
		strings.Contains(res.stdout, "epoch") {
		t.Errorf("setup --accept-gap:\n%s", res)
	}
	d.waitReadyz(http.StatusOK, 30*time.Second)
	deliver = e.mysqlDeliverer()
	deliver(3)
	if v := metric(t, d, "deskhook_source_position_lost"); v != 0 {
		t.Errorf("deskhook_source_position_lost %d after the gap was accepted, want 0", v)
	}
	for _, a := range arrivals(e.rcv.Requests()) {
		if a.ticket == strconv.FormatInt(lost.Tickets[0].TicketID, 10) {
			t.Errorf("%s of ticket %s, written in the purged binlog, was delivered: the test's premise is wrong", a.event, a.ticket)
		}
	}
	res = e.must("status")
	if !regexp.MustCompile(`gap\s+changes after \d+ and up to \d+ are lost \(binlog purged; accepted [^;]+; read on after GTID ` +
		oldest + `\)`).MatchString(res.stdout) {
		t.Errorf("status does not show the gap:\n%s", res.stdout)
	}
	e.must("check")

	// The server reset: its sequence starts again, below the stored one.
	before := len(deliveredIDs(e.rcv.Requests()))
	d.stop()
	e.exec("RESET MASTER")
	after := e.loadMySQL(ctx, testenv.LoadConfig{Tickets: 2, Replies: 1, Seed: 4}) // after the reset: kept
	d = startDaemon(t, e.cfgPath, e.admin)
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "rebuilt or reset", "--accept-gap")
	res = e.must("setup", "--accept-gap")
	if !strings.Contains(res.stdout, "accepted a gap (server rebuilt or reset)") ||
		!strings.Contains(res.stdout, "go on in epoch 1") || !strings.Contains(res.stdout, "reading on after the binlog's first transaction") {
		t.Errorf("setup --accept-gap after RESET MASTER:\n%s", res)
	}
	d.waitReadyz(http.StatusOK, 30*time.Second)
	e.waitDelivered(before+after.TotalEvents(), 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	reqsAll := e.rcv.Requests()
	checkOneBodyPerID(t, reqsAll)
	epochIDs := 0
	for id := range deliveredIDs(reqsAll) {
		if strings.HasPrefix(id, "evt_0001") {
			epochIDs++
		}
	}
	if epochIDs != after.TotalEvents() {
		t.Errorf("%d event ids in epoch 1, want the %d events written after the reset", epochIDs, after.TotalEvents())
	}
	st := statusJSON(t, e.must("status", "--json"))
	if g := st.Outbox.Gaps; len(g) != 2 || g[1].Reason != "server rebuilt or reset" || !strings.HasPrefix(g[1].To, "1:") {
		t.Errorf("status --json gaps: %+v", g)
	}

	// Reset again, and this time the new history goes past the stored
	// sequence number before the daemon is back: the stored GTID exists
	// again, but it is another transaction. Refused the same way (the
	// stored token says where its transaction was in the binlog), not read
	// on from there, which would skip what the server wrote first.
	d.stop()
	storedSeq, err := strconv.Atoi(st.Outbox.Position[strings.IndexByte(st.Outbox.Position, ':')+1:])
	if err != nil {
		t.Fatalf("stored position %q: %v", st.Outbox.Position, err)
	}
	before = len(deliveredIDs(e.rcv.Requests()))
	e.exec("RESET MASTER")
	again := e.loadMySQL(ctx, testenv.LoadConfig{Tickets: 1, Replies: 1, Seed: 5})
	for range 2*storedSeq + 5 { // other writes on the server
		e.exec("UPDATE teams SET admin_notes = CONCAT(admin_notes, 'x') WHERE id = 1")
	}
	d = startDaemon(t, e.cfgPath, e.admin)
	d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "rebuilt or reset", "--accept-gap")
	if res := e.run("check"); res.code != 1 || !strings.Contains(res.stdout, "rebuilt or reset") {
		t.Errorf("check after a reset beyond the stored position: %s", res)
	}
	res = e.must("setup", "--accept-gap")
	if !strings.Contains(res.stdout, "accepted a gap (server rebuilt or reset)") || !strings.Contains(res.stdout, "go on in epoch 2") {
		t.Errorf("setup --accept-gap after a reset beyond the stored position:\n%s", res)
	}
	d.waitReadyz(http.StatusOK, 30*time.Second)
	e.waitDelivered(before+again.TotalEvents(), 60*time.Second)
	checkOneBodyPerID(t, e.rcv.Requests())
	d.stop()
}
