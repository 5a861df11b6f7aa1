package main

// Schema drift, the tables deskhook reads beyond tickets and threads, and
// TRUNCATE, on the real binary and a real database (issue "Nothing lost
// silently", points 1, 4 and 5; `check` catching what `run` trips on).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// countLines counts the lines of s that contain every one of parts.
func countLines(s string, parts ...string) int {
	n := 0
	for _, line := range strings.Split(s, "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
		}
	}
	return n
}

// waitMetric waits until the sample name{labels} reads want.
func waitMetric(t *testing.T, d *daemonProc, want float64, timeout time.Duration, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := sumMetric(d.metrics(), name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} = %v after %s, want %v", name, strings.Join(labels, ","), got, timeout, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitEvent waits until the receiver got an event of type event for
// ticket and returns its form body.
func (e *e2e) waitEvent(event string, ticket int64, timeout time.Duration) url.Values {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var body string
	err := e.rcv.WaitFor(ctx, func(reqs []testenv.Request) bool {
		for _, a := range arrivals(reqs) {
			if a.event == event && a.ticket == fmt.Sprint(ticket) {
				body = a.body
				return true
			}
		}
		return false
	})
	if err != nil {
		e.t.Fatalf("no %s for ticket %d within %s: %v", event, ticket, timeout, err)
	}
	form, _ := url.ParseQuery(body)
	return form
}

// eventsOf lists the event types the receiver got for ticket, in order.
func (e *e2e) eventsOf(ticket int64) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range arrivals(e.rcv.Requests()) {
		if a.ticket == fmt.Sprint(ticket) && !seen[a.id] {
			seen[a.id] = true
			out = append(out, a.event)
		}
	}
	return out
}

// startWithTicket runs setup, starts the daemon, creates a ticket and
// waits for its ticket_created.
func (e *e2e) startWithTicket() (*daemonProc, *testenv.Helpdesk, testenv.Write) {
	e.t.Helper()
	e.setup()
	d := e.start()
	hd := testenv.NewHelpdesk(e.db.Pool(e.t))
	w, err := hd.CreateTicket(context.Background(), testenv.NewTicket{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitEvent("ticket_created", w.TicketID, 30*time.Second)
	return d, hd, w
}

// TestDriftTableRebuilt: a migration rebuilds ticket_thread in one
// transaction, which drops it from the publication. The running daemon
// says so within source.verify_interval: one ERROR line naming the table
// and the fix (not repeated while nothing changes), /readyz 503 with the
// reason, deskhook_source_problems, and `check` fails naming it. After
// `deskhook setup` adds it back, all clears (INFO) and replies flow again.
func TestDriftTableRebuilt(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("source")["verify_interval"] = "1s"
	e.writeConfig()
	d, hd, w := e.startWithTicket()
	ctx := context.Background()

	e.db.Exec(t, `BEGIN;
		CREATE TABLE t2 (LIKE ticket_thread INCLUDING ALL);
		INSERT INTO t2 SELECT * FROM ticket_thread;
		DROP TABLE ticket_thread;
		ALTER TABLE t2 RENAME TO ticket_thread;
		SELECT setval(pg_get_serial_sequence('ticket_thread', 'id'), (SELECT max(id) FROM ticket_thread));
		COMMIT`)
	body := d.waitReadyz(http.StatusServiceUnavailable, 30*time.Second, "public.ticket_thread", "not in publication")
	if !strings.Contains(body, `ALTER PUBLICATION "deskhook" ADD TABLE "public"."ticket_thread"`) {
		t.Errorf("/readyz does not say the fix:\n%s", body)
	}
	waitMetric(t, d, 1, 10*time.Second, "deskhook_source_problems", `table="public.ticket_thread"`, `problem="not_published"`)
	waitLog(t, d, "source schema problem")
	// Several verifications later, still one ERROR line.
	time.Sleep(4 * time.Second)
	logs := d.stderr.String()
	if n := countLines(logs, "level=ERROR", "source schema problem", "table=public.ticket_thread", "problem=not_published",
		"ALTER PUBLICATION"); n != 1 {
		t.Errorf("%d ERROR lines for the rebuilt table, want 1:\n%s", n, logs)
	}
	res := e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  publication deskhook: lacks "public"."ticket_thread"`).MatchString(res.stdout) {
		t.Errorf("check with the table out of the publication: %s", res)
	}

	e.setup() // adds the table back
	d.waitReadyz(http.StatusOK, 30*time.Second)
	waitLog(t, d, "source schema problem resolved")
	waitMetric(t, d, 0, 10*time.Second, "deskhook_source_problems")
	if _, err := hd.AgentReply(ctx, w.TicketID, testenv.AgentAlice, "<p>after the migration</p>"); err != nil {
		t.Fatal(err)
	}
	e.waitEvent("ticket_reply", w.TicketID, 30*time.Second)
	d.stop()
}

// TestDriftColumnRenamed: renaming tickets.status (which the mapping reads
// for ticket_status_updated) is noticed as soon as the stream describes
// tickets anew: ERROR, /readyz 503, the metric, `check` FAIL; the update
// that lacks the column is a counted bad row, not another event. Renamed
// back, status changes fire again.
func TestDriftColumnRenamed(t *testing.T) {
	t.Parallel()
	e := newE2E(t) // the default verify_interval (30s): the Relation message triggers the check
	d, hd, w := e.startWithTicket()
	ctx := context.Background()

	e.db.Exec(t, `ALTER TABLE tickets RENAME COLUMN status TO status_id`)
	e.db.Exec(t, `UPDATE tickets SET status_id = $1 WHERE id = $2`, testenv.StatusClosed, w.TicketID)
	body := d.waitReadyz(http.StatusServiceUnavailable, 20*time.Second, "public.tickets", "lacks column status")
	if !strings.Contains(body, "ticket_status_updated") {
		t.Errorf("/readyz does not say what the column is for:\n%s", body)
	}
	waitMetric(t, d, 1, 10*time.Second, "deskhook_source_problems", `table="public.tickets"`, `problem="missing_column:status"`)
	waitMetric(t, d, 1, 10*time.Second, "deskhook_mapping_bad_rows_total", `table="tickets"`)
	if n := countLines(d.stderr.String(), "level=ERROR", "source schema problem", "table=public.tickets",
		"problem=missing_column:status", "RENAME COLUMN"); n != 1 {
		t.Errorf("%d ERROR lines for the renamed column, want 1:\n%s", n, d.stderr.String())
	}
	res := e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  column public.tickets.status: lacks column status`).MatchString(res.stdout) {
		t.Errorf("check with the column renamed: %s", res)
	}

	e.db.Exec(t, `ALTER TABLE tickets RENAME COLUMN status_id TO status`)
	if _, err := hd.ChangeStatus(ctx, w.TicketID, testenv.StatusOpen); err != nil {
		t.Fatal(err)
	}
	e.waitEvent("ticket_status_updated", w.TicketID, 30*time.Second)
	d.waitReadyz(http.StatusOK, 20*time.Second)
	if got := e.eventsOf(w.TicketID); strings.Join(got, ",") != "ticket_created,ticket_status_updated" {
		t.Errorf("events of the ticket: %v (the update without its status column must fire nothing)", got)
	}
	d.stop()
}

// TestAttachmentFollowed: an attachment added to a ticket while streaming
// shows in that ticket's next event. The daemon sets the database up
// itself (auto_setup), publishing the attachment and collaborator tables,
// and verifies the schema only after that: no problem is ever reported.
func TestAttachmentFollowed(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.section("source")["auto_setup"] = true
	e.writeConfig()
	d := e.start()
	ctx := context.Background()
	hd := testenv.NewHelpdesk(e.db.Pool(t))
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	if f := e.waitEvent("ticket_created", w.TicketID, 30*time.Second); f.Get("ticket[attachment_count]") != "0" {
		t.Errorf("ticket_created: attachment_count %q", f.Get("ticket[attachment_count]"))
	}
	if _, err := hd.AddAttachment(ctx, w.ThreadID, "invoice.pdf", []byte("%PDF-1.4")); err != nil {
		t.Fatal(err)
	}
	if _, err := hd.AddCollaborator(ctx, w.TicketID, testenv.ClientErin); err != nil {
		t.Fatal(err)
	}
	if _, err := hd.AgentReply(ctx, w.TicketID, testenv.AgentAlice, "<p>got it</p>"); err != nil {
		t.Fatal(err)
	}
	f := e.waitEvent("ticket_reply", w.TicketID, 30*time.Second)
	if a, c := f.Get("thread[ticket][attachment_count]"), f.Get("thread[ticket][collaborator_count]"); a != "1" || c != "1" {
		t.Errorf("ticket_reply after an attachment and a collaborator: attachment_count %q, collaborator_count %q", a, c)
	}
	d.stop()
	if strings.Contains(d.stderr.String(), "source schema problem") {
		t.Errorf("a schema problem was reported on a database the daemon set up:\n%s", d.stderr.String())
	}
}

// TestTruncateThreads: TRUNCATE ticket_thread is logged at WARN with the
// table and counted; the next reply is a ticket_reply, not a second
// ticket_created made up from the emptied table.
func TestTruncateThreads(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	d, hd, w := e.startWithTicket()
	ctx := context.Background()
	e.db.Exec(t, `TRUNCATE ticket_thread`)
	if _, err := hd.AgentReply(ctx, w.TicketID, testenv.AgentAlice, "<p>after the truncate</p>"); err != nil {
		t.Fatal(err)
	}
	e.waitEvent("ticket_reply", w.TicketID, 30*time.Second)
	if got := e.eventsOf(w.TicketID); strings.Join(got, ",") != "ticket_created,ticket_reply" {
		t.Errorf("events of the ticket: %v", got)
	}
	waitLog(t, d, "TRUNCATE of a published table")
	if n := countLines(d.stderr.String(), "level=WARN", "TRUNCATE of a published table", "table=public.ticket_thread"); n != 1 {
		t.Errorf("%d WARN lines for the truncate, want 1:\n%s", n, d.stderr.String())
	}
	waitMetric(t, d, 1, 10*time.Second, "deskhook_cdc_truncates_total", `table="public.ticket_thread"`)
	d.stop()
}

// limitedRole creates a role with REPLICATION and SELECT on every table
// deskhook reads but ticket_attachment, and returns the test database's
// DSN for it.
func limitedRole(t *testing.T, e *e2e) (role, dsn string) {
	t.Helper()
	role = "lim_" + e.db.Name
	e.db.Exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN REPLICATION PASSWORD 'pw'`, role))
	t.Cleanup(func() { e.db.Exec(t, fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", role, role)) })
	e.db.Exec(t, fmt.Sprintf(`GRANT SELECT ON tickets, ticket_thread, users, ticket_status, ticket_status_type,
		department, teams, ticket_collaborator TO %s`, role))
	u, err := url.Parse(e.db.DSN)
	if err != nil || u.Scheme == "" {
		return role, e.db.DSN + fmt.Sprintf(" user=%s password=pw", role)
	}
	u.User = url.UserPassword(role, "pw")
	return role, u.String()
}

// TestMissingSelectOnAttachments: a role that may not read
// ticket_attachment fails `check` (with the GRANT), and the daemon is
// unready at once: from its first verification, and with the lookup's own
// error as soon as a ticket's counts are read. After the GRANT the stream
// resumes by itself and the held event is delivered.
func TestMissingSelectOnAttachments(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ctx := context.Background()
	hd := testenv.NewHelpdesk(e.db.Pool(t))
	old, err := hd.CreateTicket(ctx, testenv.NewTicket{}) // before the stream: its counts are read from the database
	if err != nil {
		t.Fatal(err)
	}
	e.setup() // as the owner
	role, dsn := limitedRole(t, e)
	e.section("source")["dsn"] = dsn
	e.writeConfig()

	res := e.run("check")
	if res.code != 1 || !regexp.MustCompile(`(?m)^FAIL  table public.ticket_attachment: role `+role+` cannot SELECT from it`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, `fix: GRANT SELECT ON "public"."ticket_attachment" TO "`+role+`";`) {
		t.Errorf("check without SELECT on the attachments: %s", res)
	}
	if n := strings.Count(res.stdout, "FAIL  "); n != 1 {
		t.Errorf("%d failures, want 1:\n%s", n, res.stdout)
	}

	d := startDaemon(t, e.cfgPath, e.admin)
	d.waitReadyz(http.StatusServiceUnavailable, 15*time.Second, "public.ticket_attachment", "cannot SELECT")
	if _, err := hd.AgentReply(ctx, old.TicketID, testenv.AgentAlice, "<p>an old ticket</p>"); err != nil {
		t.Fatal(err)
	}
	d.waitReadyz(http.StatusServiceUnavailable, 15*time.Second, "reading the source while mapping failed", "permission denied")

	e.db.Exec(t, fmt.Sprintf(`GRANT SELECT ON ticket_attachment TO %s`, role))
	e.waitEvent("ticket_reply", old.TicketID, 60*time.Second)
	d.waitReadyz(http.StatusOK, 30*time.Second)
	if res := e.run("check"); res.code != 0 {
		t.Errorf("check after the GRANT: %s", res)
	}
	d.stop()
}
