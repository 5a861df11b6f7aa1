package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// valueString renders a column value of either database the same way:
// NULL, integers in decimal, times as Y-m-d H:i:s in UTC, text and bytes
// as they are.
func valueString(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return string(v)
	case time.Time:
		return v.UTC().Format(time.DateTime)
	case bool:
		if v {
			return "1"
		}
		return "0"
	}
	return fmt.Sprint(v)
}

// mysqlRows reads a whole table, ordered by id: one map of column to
// rendered value per row.
func mysqlRows(t *testing.T, db *sql.DB, table string) []map[string]string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := map[string]string{}
		for i, c := range cols {
			r[c] = valueString(vals[i])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// pgRows is mysqlRows on PostgreSQL.
func pgRows(t *testing.T, pool *pgxpool.Pool, table string) []map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT * FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		r := map[string]string{}
		for i, f := range rows.FieldDescriptions() {
			r[f.Name] = valueString(vals[i])
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var gtidSeqRE = regexp.MustCompile(`-(\d+)$`)

// gtidSeq is the sequence number of the last GTID a MariaDB wrote.
func gtidSeq(t *testing.T, db *sql.DB) int {
	t.Helper()
	var pos string
	if err := db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	if pos == "" {
		return 0
	}
	m := gtidSeqRE.FindStringSubmatch(pos)
	if m == nil {
		t.Fatalf("gtid_binlog_pos %q", pos)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The same helpdesk actions write the same rows on MySQL as on PostgreSQL,
// each action in as many transactions as there: every column the two
// schemas share holds the same value, but for transferred_at, which MySQL
// fills with the zero date where PostgreSQL has NULL.
func TestMySQLSameRowsAsPostgres(t *testing.T) {
	pgPool := Postgres(t, NoFsync()).Pool(t)
	my := MariaDB(t, Dedicated(), NoFsync()) // its own binlog: the GTID count is ours alone
	myDB := my.Pool(t)
	start := time.Date(2022, 6, 16, 7, 52, 32, 987654321, time.UTC)
	pgClock, myClock := &clock{t: start}, &clock{t: start}
	pgH, myH := NewHelpdesk(pgPool), NewMySQLHelpdesk(myDB)
	pgH.Now, myH.Now = pgClock.Now, myClock.Now
	ctx := context.Background()

	ids := func(w Write, err error) (Write, error) { w.CommittedAt = time.Time{}; return w, err }
	row := func(id int64, err error) (Write, error) { return Write{TicketID: id}, err }
	due := time.Date(2022, 7, 1, 12, 0, 0, 0, time.UTC)
	steps := []struct {
		name string
		do   func(h *Helpdesk) (Write, error)
		txs  int // transactions the action commits
	}{
		{"create", func(h *Helpdesk) (Write, error) {
			return ids(h.CreateTicket(ctx, NewTicket{Requester: ClientErin, Creator: AgentAlice, HelpTopic: TopicSales,
				Priority: PriorityHigh, Source: SourceEmail, Subject: "Printer", Body: "<p>on fire 🔥</p>"}))
		}, 1},
		{"create in two", func(h *Helpdesk) (Write, error) {
			return ids(h.CreateTicket(ctx, NewTicket{TwoTransactions: true}))
		}, 2},
		{"first reply", func(h *Helpdesk) (Write, error) { return ids(h.AgentReply(ctx, 1, AgentAlice, "<p>first</p>")) }, 1},
		{"client reply", func(h *Helpdesk) (Write, error) { return ids(h.ClientReply(ctx, 1, ClientErin, "<p>thanks</p>")) }, 1},
		{"second reply", func(h *Helpdesk) (Write, error) { return ids(h.AgentReply(ctx, 1, AgentBob, "<p>second</p>")) }, 1},
		{"note", func(h *Helpdesk) (Write, error) { return ids(h.InternalNote(ctx, 1, AgentCarol, "<p>psst</p>")) }, 1},
		{"assign team", func(h *Helpdesk) (Write, error) { return ids(h.AssignTeam(ctx, 1, TeamLevel2)) }, 1},
		{"assign agent", func(h *Helpdesk) (Write, error) { return ids(h.AssignAgent(ctx, 1, AgentBob, AdminID)) }, 1},
		{"department", func(h *Helpdesk) (Write, error) { return ids(h.ChangeDepartment(ctx, 1, DeptOperation)) }, 1},
		{"close", func(h *Helpdesk) (Write, error) { return ids(h.ChangeStatus(ctx, 1, StatusClosed)) }, 1},
		{"reopen", func(h *Helpdesk) (Write, error) { return ids(h.ChangeStatus(ctx, 1, StatusOpen)) }, 1},
		{"resolve", func(h *Helpdesk) (Write, error) { return ids(h.ChangeStatus(ctx, 1, StatusResolved)) }, 1},
		{"on hold", func(h *Helpdesk) (Write, error) { return ids(h.ChangeStatus(ctx, 1, StatusOnHold)) }, 1},
		{"owner", func(h *Helpdesk) (Write, error) { return ids(h.ChangeOwner(ctx, 1, ClientGrace)) }, 1},
		{"due date", func(h *Helpdesk) (Write, error) { return ids(h.ChangeDueDate(ctx, 1, due)) }, 1},
		{"collaborator", func(h *Helpdesk) (Write, error) { return row(h.AddCollaborator(ctx, 1, ClientDave)) }, 1},
		{"attachment", func(h *Helpdesk) (Write, error) { return row(h.AddAttachment(ctx, 1, "log.txt", []byte("boom"))) }, 1},
		{"attachment of the other", func(h *Helpdesk) (Write, error) {
			return row(h.AddAttachment(ctx, 2, "gone.txt", []byte("gone")))
		}, 1},
		{"delete", func(h *Helpdesk) (Write, error) { return ids(h.Delete(ctx, 1)) }, 1},
		{"hard delete", func(h *Helpdesk) (Write, error) { return ids(h.HardDelete(ctx, 2)) }, 1},
	}
	for _, st := range steps {
		pgClock.Advance(time.Minute)
		myClock.Advance(time.Minute)
		pw, err := st.do(pgH)
		if err != nil {
			t.Fatalf("%s on PostgreSQL: %v", st.name, err)
		}
		before := gtidSeq(t, myDB)
		mw, err := st.do(myH)
		if err != nil {
			t.Fatalf("%s on MySQL: %v", st.name, err)
		}
		if n := gtidSeq(t, myDB) - before; n != st.txs {
			t.Errorf("%s committed %d transactions on MySQL, want %d", st.name, n, st.txs)
		}
		if pw != mw {
			t.Errorf("%s wrote %+v on PostgreSQL, %+v on MySQL", st.name, pw, mw)
		}
	}

	for _, tables := range [][2]string{{"tickets", "tickets"}, {"ticket_thread", "ticket_thread"},
		{"ticket_collaborator", "ticket_collaborator"}, {"ticket_attachment", "ticket_attachment"}} {
		pgr, myr := pgRows(t, pgPool, tables[0]), mysqlRows(t, myDB, tables[1])
		if len(pgr) != len(myr) || len(myr) == 0 {
			t.Fatalf("%s: %d rows on PostgreSQL, %d on MySQL", tables[1], len(pgr), len(myr))
		}
		for i := range myr {
			compared := 0
			for col, mv := range myr[i] {
				pv, shared := pgr[i][col]
				if !shared {
					continue
				}
				compared++
				if col == "transferred_at" {
					pv = "NULL / 0000-00-00 00:00:00"
					mv = "NULL / " + zeroDate(t, myDB, myr[i]["id"])
				}
				if pv != mv {
					t.Errorf("%s %s.%s = %q on MySQL, %q on PostgreSQL", tables[1], myr[i]["id"], col, mv, pv)
				}
			}
			if compared < 7 {
				t.Errorf("%s: only %d columns compared", tables[1], compared)
			}
		}
	}
}

// zeroDate is tickets.transferred_at of ticket id as MySQL shows it.
func zeroDate(t *testing.T, db *sql.DB, id string) string {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT CAST(transferred_at AS CHAR) FROM tickets WHERE id = ?", id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// A new ticket's transferred_at holds the zero date, as on a real Faveo:
// the insert leaves the NOT NULL column out, which Faveo's non-strict
// session allows and a strict one refuses.
func TestMySQLZeroDate(t *testing.T) {
	db := MariaDB(t)
	pool := db.Pool(t)
	h := NewMySQLHelpdesk(pool)
	w, err := h.CreateTicket(context.Background(), NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	var isZero bool
	if err := pool.QueryRow("SELECT transferred_at = '0000-00-00 00:00:00' FROM tickets WHERE id = ?", w.TicketID).Scan(&isZero); err != nil {
		t.Fatal(err)
	}
	if got := zeroDate(t, pool, strconv.FormatInt(w.TicketID, 10)); got != "0000-00-00 00:00:00" || !isZero {
		t.Errorf("transferred_at = %q (zero date: %v), want 0000-00-00 00:00:00", got, isZero)
	}

	strict, err := sql.Open("mysql", db.DSN+"?sql_mode=%27STRICT_TRANS_TABLES%27")
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	const insert = `INSERT INTO tickets (ticket_number, rating, ratingreply, flags, ip_address, lock_by, isoverdue,
		reopened, isanswered, html, is_deleted, closed, is_transferred) VALUES ('X', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)`
	if _, err := strict.Exec(insert); !isMySQLError(err, 1364) {
		t.Errorf("insert without transferred_at in a strict session: %v, want refused (1364)", err)
	}
	if _, err := pool.Exec(insert); err != nil {
		t.Errorf("the same insert in Faveo's session: %v", err)
	}
}

// Bodies are bytes in a LONGBLOB and attachments bytes in a MEDIUMBLOB:
// both are stored exactly as written, whatever they hold.
func TestMySQLBytesStoredExactly(t *testing.T) {
	db := MariaDB(t)
	pool := db.Pool(t)
	h := NewMySQLHelpdesk(pool)
	ctx := context.Background()
	body := "<p>déjà vu 🙂 \\ ' \" ?</p>"
	w, err := h.CreateTicket(ctx, NewTicket{Subject: "Ünïcode $1", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	content := []byte{0, 0xff, 0xfe, '\\', '\'', 'x', 0x80}
	aid, err := h.AddAttachment(ctx, w.ThreadID, "bin.dat", content)
	if err != nil {
		t.Fatal(err)
	}
	var gotTitle, gotBody, gotFile []byte
	if err := pool.QueryRow("SELECT title, body FROM ticket_thread WHERE id = ?", w.ThreadID).Scan(&gotTitle, &gotBody); err != nil {
		t.Fatal(err)
	}
	if string(gotTitle) != "Ünïcode $1" || string(gotBody) != body {
		t.Errorf("thread title %q body %q, want %q and %q", gotTitle, gotBody, "Ünïcode $1", body)
	}
	if err := pool.QueryRow("SELECT file FROM ticket_attachment WHERE id = ?", aid).Scan(&gotFile); err != nil {
		t.Fatal(err)
	}
	if string(gotFile) != string(content) {
		t.Errorf("attachment holds %x, want %x", gotFile, content)
	}
}

func TestMySQLActionsOnMissingTicket(t *testing.T) {
	checkActionsOnMissingTicket(t, NewMySQLHelpdesk(MariaDB(t).Pool(t)))
}

// Several goroutines share one Helpdesk on MySQL: concurrent creations get
// distinct ids and numbers, and concurrent agent replies to one ticket still
// give it exactly one first_reply.
func TestMySQLHelpdeskConcurrent(t *testing.T) {
	pool := MariaDB(t, NoFsync()).Pool(t)
	const writers, perWriter = 4, 5
	createConcurrently(t, NewMySQLHelpdesk(pool), writers, perWriter)
	var tickets, firsts, withOneFirst, numbered int
	err := pool.QueryRow(`SELECT count(*), sum(f), sum(f = 1), sum(n) FROM (
		SELECT t.id, sum(th.thread_type = 'first_reply') AS f, t.ticket_number = CONCAT('AAAA-0000-', LPAD(t.id, 4, '0')) AS n
		FROM tickets t LEFT JOIN ticket_thread th ON th.ticket_id = t.id GROUP BY t.id) x`).Scan(&tickets, &firsts, &withOneFirst, &numbered)
	if err != nil {
		t.Fatal(err)
	}
	if tickets != writers*perWriter || withOneFirst != tickets || firsts != tickets || numbered != tickets {
		t.Errorf("%d tickets (%d numbered after their id), %d first replies, %d tickets with exactly one",
			tickets, numbered, firsts, withOneFirst)
	}
}

// The same load configuration runs the same plan on MySQL as on
// PostgreSQL and leaves every ticket in the same state.
func TestLoadMySQLMatchesPostgres(t *testing.T) {
	pgPool := Postgres(t, NoFsync()).Pool(t)
	myDB := MariaDB(t, NoFsync()).Pool(t)
	ctx := context.Background()
	cfg := LoadConfig{Tickets: 10, Replies: 2, Updates: 4, Writers: 3, Seed: 11,
		UpdateKinds: []ActionKind{ActStatus, ActDepartment, ActAssignAgent, ActAssignTeam, ActOwner, ActDueDate, ActNote}}
	pres, err := Load(ctx, pgPool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mres, err := LoadMySQL(ctx, myDB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pres.Events) != fmt.Sprint(mres.Events) || fmt.Sprint(pres.Actions) != fmt.Sprint(mres.Actions) {
		t.Errorf("events %v and actions %v on PostgreSQL, %v and %v on MySQL", pres.Events, pres.Actions, mres.Events, mres.Actions)
	}
	state := func(rows []map[string]string, id int64) string {
		for _, r := range rows {
			if r["id"] == strconv.FormatInt(id, 10) {
				due := "due when created" // the wall clock at creation: differs
				if r["is_manual_duedate"] == "1" {
					due = r["duedate"]
				}
				return strings.Join([]string{r["status"], r["dept_id"], r["assigned_to"], r["team_id"], r["user_id"],
					due, r["closed"], r["reopened"]}, " ")
			}
		}
		return "missing"
	}
	pgTickets, myTickets := pgRows(t, pgPool, "tickets"), mysqlRows(t, myDB, "tickets")
	for i := range pres.Tickets {
		pa, ma := pres.Tickets[i].Actions, mres.Tickets[i].Actions
		if len(pa) != len(ma) {
			t.Fatalf("ticket %d: %d actions on PostgreSQL, %d on MySQL", i, len(pa), len(ma))
		}
		for j := range pa {
			if pa[j].Kind != ma[j].Kind || pa[j].Value != ma[j].Value {
				t.Errorf("ticket %d action %d: %s %d on PostgreSQL, %s %d on MySQL", i, j, pa[j].Kind, pa[j].Value, ma[j].Kind, ma[j].Value)
			}
		}
		ps, ms := state(pgTickets, pres.Tickets[i].TicketID), state(myTickets, mres.Tickets[i].TicketID)
		if ps != ms || ms == "missing" {
			t.Errorf("ticket %d ends as %q on PostgreSQL, %q on MySQL", i, ps, ms)
		}
	}
}

func TestMySQLPlaceholders(t *testing.T) {
	q, args := mysqlPlaceholders("UPDATE t SET a = $2, b = $3, c = $2 WHERE id = $1 AND x = 'lit'", []any{"id", "two", "three"})
	if q != "UPDATE t SET a = ?, b = ?, c = ? WHERE id = ? AND x = 'lit'" || fmt.Sprint(args) != "[two three two id]" {
		t.Errorf("got %q %v", q, args)
	}
	if q, args := mysqlPlaceholders("SELECT $10, $1", make([]any, 10)); q != "SELECT ?, ?" || len(args) != 2 {
		t.Errorf("two-digit placeholder: %q %v", q, args)
	}
	if _, args := mysqlPlaceholders("SELECT $2", []any{1}); len(args) != 0 {
		t.Errorf("a placeholder without its argument gave %v; the driver must see too few", args)
	}
}
