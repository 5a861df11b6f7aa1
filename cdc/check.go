package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// CheckResult is one prerequisite: OK, or what is wrong (Detail) and how to
// fix it (Fix: SQL to run or configuration to change). A warning is OK
// (deskhook runs) with something the operator should look at: Warn, with
// Detail and Fix.
type CheckResult struct {
	Name   string
	OK     bool
	Warn   bool
	Detail string
	Fix    string
}

// Check verifies every prerequisite of the Reader and the mapping and
// reports each one: the connection, wal_level, the role's REPLICATION (or
// superuser) privilege, max_slot_wal_keep_size (a warning when unbounded),
// wal_sender_timeout against status_interval, each table's presence and
// SELECT privilege (every table deskhook reads: source.tables), the
// columns the mapping reads and their types (mapping.Needs), the tickets
// replica identity, the publication's contents, and the slot (present,
// pgoutput, not in use elsewhere, its WAL). It changes nothing. When the
// connection fails there is nothing more to check and that is the only
// result. Each problem is one result.
func Check(ctx context.Context, cfg Config) []CheckResult {
	cfg.SetDefaults()
	var res []CheckResult
	add := func(name string, ok bool, detail, fix string) {
		res = append(res, CheckResult{Name: name, OK: ok, Detail: detail, Fix: fix})
	}
	warn := func(name, detail, fix string) {
		res = append(res, CheckResult{Name: name, OK: true, Warn: true, Detail: detail, Fix: fix})
	}
	if err := cfg.Validate("source"); err != nil {
		add("config", false, err.Error(), "fix the source section of the configuration file")
		return res
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		add("connection", false, err.Error(), "check source.dsn (host, port, database, user, password) and that "+
			"the server accepts the connection (listen_addresses, pg_hba.conf)")
		return res
	}
	defer conn.Close(context.Background())
	failed := func(name string, err error) { add(name, false, "query failed: "+err.Error(), "") }

	var version, user, db, walLevel string
	var repl, super bool
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_user, current_database(),
		current_setting('wal_level'), r.rolreplication, r.rolsuper FROM pg_roles r WHERE r.rolname = current_user`).
		Scan(&version, &user, &db, &walLevel, &repl, &super); err != nil {
		failed("connection", err)
		return res
	}
	add("connection", true, fmt.Sprintf("PostgreSQL %s, database %s, role %s", version, db, user), "")
	if walLevel == "logical" {
		add("wal_level", true, "logical", "")
	} else {
		add("wal_level", false, fmt.Sprintf("wal_level is %s; logical replication needs logical", walLevel),
			"ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL")
	}
	switch {
	case super:
		add("role privilege", true, fmt.Sprintf("role %s is a superuser", user), "")
	case repl:
		add("role privilege", true, fmt.Sprintf("role %s has REPLICATION", user), "")
	default:
		add("role privilege", false, fmt.Sprintf("role %s has neither REPLICATION nor superuser", user),
			fmt.Sprintf("ALTER ROLE %s REPLICATION;", quoteIdent(user)))
	}

	checkServer(ctx, conn, cfg, add, warn, failed)

	sc, err := inspect(ctx, conn, cfg)
	if err != nil {
		failed("tables", err)
	} else {
		checkTables(cfg, sc, add)
	}
	checkPublication(ctx, conn, cfg, add, failed)
	checkSlot(ctx, conn, cfg, add, failed)
	return res
}

type addFunc func(name string, ok bool, detail, fix string)

// checkTables reports each table (present and readable), the columns the
// mapping reads of it, and its replica identity where the mapping needs
// the old row; each problem once (publication membership is the
// publication's check).
func checkTables(cfg Config, sc schemaState, add addFunc) {
	for _, t := range sc.tables {
		name := "table " + cfg.displayName(t.name)
		ps := t.problems(cfg, sc)
		failedHere := false
		for _, p := range ps {
			switch p.Kind {
			case "missing", "no_select":
				add(name, false, p.Detail, p.Fix)
				failedHere = true
			}
		}
		if !t.exists {
			continue
		}
		if !failedHere {
			add(name, true, "present, readable", "")
		}
		if len(t.need.Columns) > 0 {
			bad := false
			for _, p := range ps {
				if col, ok := strings.CutPrefix(p.Kind, "missing_column:"); ok {
					add("column "+cfg.displayName(t.name)+"."+col, false, p.Detail, p.Fix)
					bad = true
				} else if col, ok := strings.CutPrefix(p.Kind, "column_type:"); ok {
					add("column "+cfg.displayName(t.name)+"."+col, false, p.Detail, p.Fix)
					bad = true
				}
			}
			if !bad {
				add("columns "+cfg.displayName(t.name), true,
					fmt.Sprintf("has the %d column(s) deskhook reads, with usable types", len(t.need.Columns)), "")
			}
		}
		if t.need.OldRow {
			name := "replica identity " + cfg.displayName(t.name)
			ok := true
			for _, p := range ps {
				if p.Kind == "replica_identity" {
					add(name, false, p.Detail, p.Fix)
					ok = false
				}
			}
			if ok {
				add(name, true, "FULL", "")
			}
		}
	}
}

// checkServer checks the server settings a long-running slot depends on:
// max_slot_wal_keep_size (what a stalled slot may keep) and
// wal_sender_timeout (how soon the server ends a silent connection)
// against source.status_interval.
func checkServer(ctx context.Context, conn *pgx.Conn, cfg Config, add addFunc, warn func(name, detail, fix string),
	failed func(string, error)) {
	var keep, timeout *int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'max_slot_wal_keep_size'),
		(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_sender_timeout')`).Scan(&keep, &timeout); err != nil {
		failed("server settings", err)
		return
	}
	const keepName = "max_slot_wal_keep_size"
	switch {
	case keep == nil:
		warn(keepName, "this server (before PostgreSQL 13) cannot bound the WAL a slot keeps: a deskhook that stays "+
			"down keeps WAL until the disk fills", "watch deskhook_slot_retained_wal_bytes (admin.max_slot_lag fails /readyz)")
	case *keep < 0:
		warn(keepName, "unbounded (-1): a deskhook that stays down keeps WAL until the database's disk fills",
			"ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf(); (past the bound the slot is "+
				"invalidated and the changes in between are lost: size it for the longest outage you will fix)")
	default:
		add(keepName, true, fmt.Sprintf("%s: a slot further behind loses its WAL (deskhook then says so and "+
			"needs setup again)", HumanBytes(*keep<<20)), "")
	}
	const toName = "wal_sender_timeout"
	// The reader sends a status update every status_interval, lowered to
	// a third of wal_sender_timeout, and at least every 100ms.
	const floor = 100 * time.Millisecond
	switch {
	case timeout == nil:
		failed(toName, errors.New("setting not found"))
	case *timeout == 0:
		warn(toName, "0 (disabled): the server never ends a replication connection that went silent, so a "+
			"deskhook that died without closing it keeps the slot in use until TCP gives up",
			"ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf();")
	default:
		to := time.Duration(*timeout) * time.Millisecond
		switch {
		case to/3 < floor:
			add(toName, false, fmt.Sprintf("%s: deskhook answers at most every %s, too seldom for a third of it; "+
				"the server would end the connection", to, floor), "ALTER SYSTEM SET wal_sender_timeout = '60s'; "+
				"SELECT pg_reload_conf();")
		case cfg.StatusInterval > to/3:
			warn(toName, fmt.Sprintf("%s: deskhook sends its status every %s (a third of it), not every %s as "+
				"source.status_interval says", to, statusInterval(cfg.StatusInterval, to), cfg.StatusInterval),
				fmt.Sprintf("set source.status_interval to %s or less, or raise wal_sender_timeout", to/3))
		default:
			add(toName, true, fmt.Sprintf("%s; deskhook sends its status every %s (source.status_interval)",
				to, cfg.StatusInterval), "")
		}
	}
}

func checkPublication(ctx context.Context, conn *pgx.Conn, cfg Config, add addFunc, failed func(string, error)) {
	name := "publication " + cfg.Publication
	pub := quoteIdent(cfg.Publication)
	var all, ins, upd, del bool
	err := conn.QueryRow(ctx, `SELECT puballtables, pubinsert, pubupdate, pubdelete FROM pg_publication
		WHERE pubname = $1`, cfg.Publication).Scan(&all, &ins, &upd, &del)
	if errors.Is(err, pgx.ErrNoRows) {
		tables := make([]string, 0, 7)
		for _, t := range cfg.Tables.List() {
			tables = append(tables, cfg.qualified(t))
		}
		add(name, false, "does not exist", fmt.Sprintf("run deskhook setup, or: CREATE PUBLICATION %s FOR TABLE %s;",
			pub, strings.Join(tables, ", ")))
		return
	}
	if err != nil {
		failed(name, err)
		return
	}
	missing, extra, err := publicationTables(ctx, conn, cfg)
	if err != nil {
		failed(name, err)
		return
	}
	switch {
	case len(missing) > 0:
		add(name, false, "lacks "+strings.Join(missing, ", "),
			fmt.Sprintf("run deskhook setup, or: ALTER PUBLICATION %s ADD TABLE %s;", pub, strings.Join(missing, ", ")))
	case !ins || !upd || !del:
		add(name, false, "does not publish every insert, update and delete",
			fmt.Sprintf("ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate');", pub))
	default:
		detail := fmt.Sprintf("publishes the %d tables", len(cfg.Tables.List()))
		if all {
			detail += " (FOR ALL TABLES)"
		} else if len(extra) > 0 {
			detail += "; also " + strings.Join(extra, ", ") + " (handed over, ignored by the mapping)"
		}
		add(name, true, detail, "")
	}
}

func checkSlot(ctx context.Context, conn *pgx.Conn, cfg Config, add addFunc, failed func(string, error)) {
	name := "slot " + cfg.Slot
	s, err := slotInfo(ctx, conn, cfg)
	if errors.Is(err, ErrSlotMissing) {
		add(name, false, "does not exist", fmt.Sprintf("run deskhook setup, or: SELECT "+
			"pg_create_logical_replication_slot(%s, 'pgoutput');", quoteLiteral(cfg.Slot)))
		return
	}
	if err != nil {
		failed(name, err)
		return
	}
	if s.Plugin != "pgoutput" || s.Type != "logical" || s.Database != s.currentDB {
		add(name, false, fmt.Sprintf("a %s slot with plugin %q in database %q; deskhook needs a logical "+
			"pgoutput slot in %q", s.Type, s.Plugin, s.Database, s.currentDB),
			fmt.Sprintf("choose another source.slot, or: SELECT pg_drop_replication_slot(%s); then run deskhook setup",
				quoteLiteral(cfg.Slot)))
		return
	}
	add(name, true, fmt.Sprintf("pgoutput, confirmed up to %s", s.ConfirmedFlush), "")
	if s.Active {
		add(name+" in use", false, fmt.Sprintf("read by process %d (%s); the reader will wait for it",
			s.ActivePID, s.activeBy), fmt.Sprintf("stop the other consumer (SELECT pg_terminate_backend(%d);) "+
			"or set source.slot to a slot of deskhook's own", s.ActivePID))
	} else {
		add(name+" in use", true, "not in use", "")
	}
	wal := name + " WAL"
	detail := fmt.Sprintf("wal_status %s, retains %s of WAL", s.WALStatus, HumanBytes(s.RetainedBytes))
	switch s.WALStatus {
	case "lost":
		add(wal, false, detail+": changes since the slot's position are gone",
			"recreate the slot: deskhook teardown && deskhook setup (events in between are lost)")
	case "unreserved":
		add(wal, false, detail+": past max_wal_size, the WAL may be removed at the next checkpoint",
			"start deskhook so the slot advances, or raise max_slot_wal_keep_size")
	default:
		add(wal, true, detail, "")
	}
}

// HumanBytes writes a byte count as people read it ("1.5 GiB"), as the
// checks and the CLI's status show retained WAL.
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Slot is the state of the replication slot, for status and metrics.
type Slot struct {
	Name      string
	Plugin    string
	Type      string // logical or physical
	Database  string
	Active    bool
	ActivePID int
	// ConfirmedFlush is what the consumer confirmed; RestartLSN the
	// oldest WAL the slot keeps.
	ConfirmedFlush change.Position
	RestartLSN     change.Position
	// WALStatus is pg_replication_slots.wal_status: reserved, extended,
	// unreserved or lost.
	WALStatus string
	// CurrentLSN is the server's current WAL position.
	CurrentLSN change.Position
	// RetainedBytes is the WAL the slot keeps (CurrentLSN - RestartLSN);
	// LagBytes how far the confirmed position trails (CurrentLSN -
	// ConfirmedFlush).
	RetainedBytes int64
	LagBytes      int64

	currentDB, activeBy string
}

// SlotInfo reads the slot's state with an ordinary connection. A missing
// slot is an error matching ErrSlotMissing.
func SlotInfo(ctx context.Context, cfg Config) (Slot, error) {
	cfg.SetDefaults()
	conn, err := connect(ctx, cfg)
	if err != nil {
		return Slot{}, err
	}
	defer conn.Close(context.Background())
	return slotInfo(ctx, conn, cfg)
}

func slotInfo(ctx context.Context, conn *pgx.Conn, cfg Config) (Slot, error) {
	s := Slot{Name: cfg.Slot}
	var pid *int32
	var confirmed, restart, current *string
	var by string
	err := conn.QueryRow(ctx, `
		WITH cur AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
		                         ELSE pg_current_wal_lsn() END AS lsn)
		SELECT coalesce(s.plugin, ''), s.slot_type, coalesce(s.database, ''), current_database(),
		       s.active_pid, s.confirmed_flush_lsn::text, s.restart_lsn::text, coalesce(s.wal_status, ''),
		       cur.lsn::text, coalesce((SELECT coalesce(a.application_name, '') || ' from ' ||
		           coalesce(host(a.client_addr), 'local socket') FROM pg_stat_activity a WHERE a.pid = s.active_pid), '')
		FROM pg_replication_slots s, cur WHERE s.slot_name = $1`, cfg.Slot).
		Scan(&s.Plugin, &s.Type, &s.Database, &s.currentDB, &pid, &confirmed, &restart, &s.WALStatus, &current, &by)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, &objectError{kind: ErrSlotMissing, msg: fmt.Sprintf("cdc: replication slot %s does not exist",
			quoteIdent(cfg.Slot))}
	}
	if err != nil {
		return s, fmt.Errorf("cdc: reading replication slot %s: %w", quoteIdent(cfg.Slot), err)
	}
	s.activeBy = by
	if pid != nil {
		s.Active, s.ActivePID = true, int(*pid)
	}
	lsn := func(p *string) change.Position {
		if p == nil {
			return 0
		}
		l, _ := pglogrepl.ParseLSN(*p)
		return change.Position(l)
	}
	s.ConfirmedFlush, s.RestartLSN, s.CurrentLSN = lsn(confirmed), lsn(restart), lsn(current)
	if s.RestartLSN > 0 && s.CurrentLSN > s.RestartLSN {
		s.RetainedBytes = int64(s.CurrentLSN - s.RestartLSN)
	}
	if s.ConfirmedFlush > 0 && s.CurrentLSN > s.ConfirmedFlush {
		s.LagBytes = int64(s.CurrentLSN - s.ConfirmedFlush)
	}
	return s, nil
}
