package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// connect opens an ordinary (non-replication) connection.
func connect(ctx context.Context, cfg Config) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cdc: source.dsn is not a valid connection string (%s)", RedactDSN(cfg.DSN))
	}
	if pc.RuntimeParams["application_name"] == "" {
		pc.RuntimeParams["application_name"] = "deskhook"
	}
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("cdc: connecting to the source database: %w", err)
	}
	return conn, nil
}

// setupComment marks a publication as made by Setup; the JSON after it
// records what Teardown must undo beyond dropping it.
const setupComment = "deskhook setup "

type setupRecord struct {
	// RestoreIdentity is set when Setup changed a table's replica
	// identity to FULL: what it was before.
	RestoreIdentity *identityRecord `json:"restore_replica_identity,omitempty"`
}

type identityRecord struct {
	Table string `json:"table"`           // quoted schema.table
	Was   string `json:"was"`             // pg_class.relreplident: d, n or i
	Index string `json:"index,omitempty"` // the identity index's name, when Was is i
}

func parseSetupComment(c string) (setupRecord, bool) {
	var rec setupRecord
	if !strings.HasPrefix(c, setupComment) {
		return rec, false
	}
	_ = json.Unmarshal([]byte(strings.TrimPrefix(c, setupComment)), &rec)
	return rec, true
}

func (r setupRecord) comment() string {
	b, _ := json.Marshal(r)
	return setupComment + string(b)
}

// Setup makes the database ready for the Reader: the publication over the
// configured tables, REPLICA IDENTITY FULL on tickets (old values make
// diffs exact) and the pgoutput slot. It is idempotent: it creates or adds
// only what is missing, and returns what it did (nothing on a second run).
// The publication's comment records that Setup made it and what the
// tickets replica identity was, so Teardown undoes exactly that.
func Setup(ctx context.Context, cfg Config) (done []string, err error) {
	cfg.SetDefaults()
	if err := cfg.Validate(""); err != nil {
		return nil, fmt.Errorf("cdc: invalid config: %w", err)
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())

	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return nil, fmt.Errorf("cdc: setup: %w", err)
	}
	if walLevel != "logical" {
		return nil, &objectError{kind: ErrWALLevel, msg: fmt.Sprintf("cdc: setup: wal_level is %q; set it to "+
			"logical (ALTER SYSTEM SET wal_level = logical;) and restart PostgreSQL, then run setup again", walLevel)}
	}
	var missing []string
	for _, t := range cfg.Tables.List() {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", cfg.qualified(t)).Scan(&ok); err != nil {
			return nil, fmt.Errorf("cdc: setup: %w", err)
		}
		if !ok {
			missing = append(missing, cfg.displayName(t))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("cdc: setup: table(s) %s not found; check source.schema and source.tables",
			strings.Join(missing, ", "))
	}

	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		d, err := setupPublication(ctx, tx, cfg)
		done = append(done, d...)
		return err
	}); err != nil {
		return nil, fmt.Errorf("cdc: setup: %w", err)
	}

	// A logical slot cannot be created in a transaction that wrote.
	var plugin, slotType, slotDB, db string
	err = conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), slot_type, coalesce(database, ''), current_database()
		FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&plugin, &slotType, &slotDB, &db)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		var lsn string
		if err := conn.QueryRow(ctx, "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
			cfg.Slot).Scan(&lsn); err != nil {
			return done, fmt.Errorf("cdc: setup: creating replication slot %s: %w", quoteIdent(cfg.Slot), err)
		}
		done = append(done, fmt.Sprintf("created replication slot %s (pgoutput) at %s", cfg.Slot, lsn))
	case err != nil:
		return done, fmt.Errorf("cdc: setup: %w", err)
	case plugin != "pgoutput" || slotType != "logical" || slotDB != db:
		return done, &objectError{kind: ErrSlotInvalid, msg: fmt.Sprintf("cdc: setup: replication slot %s exists "+
			"as a %s slot with plugin %q in database %q; pick another source.slot, or drop it "+
			"(SELECT pg_drop_replication_slot(%s);) and run setup again",
			quoteIdent(cfg.Slot), slotType, plugin, slotDB, quoteLiteral(cfg.Slot))}
	}
	return done, nil
}

func setupPublication(ctx context.Context, tx pgx.Tx, cfg Config) (done []string, err error) {
	pub := quoteIdent(cfg.Publication)
	var comment string
	var ins, upd, del, trunc bool
	err = tx.QueryRow(ctx, `SELECT coalesce(obj_description(oid, 'pg_publication'), ''),
		pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`,
		cfg.Publication).Scan(&comment, &ins, &upd, &del, &trunc)
	var rec setupRecord
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		names := make([]string, 0, 7)
		for _, t := range cfg.Tables.List() {
			names = append(names, cfg.qualified(t))
		}
		if _, err := tx.Exec(ctx, "CREATE PUBLICATION "+pub+" FOR TABLE "+strings.Join(names, ", ")); err != nil {
			return nil, fmt.Errorf("creating publication %s: %w", pub, err)
		}
		done = append(done, fmt.Sprintf("created publication %s for %d tables", cfg.Publication, len(names)))
	case err != nil:
		return nil, err
	default:
		var ours bool
		if rec, ours = parseSetupComment(comment); !ours {
			return nil, fmt.Errorf("publication %s exists and was not made by deskhook setup; choose another "+
				"source.publication, or drop it (DROP PUBLICATION %s;) and run setup again", pub, pub)
		}
		missing, _, err := publicationTables(ctx, tx, cfg)
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			if _, err := tx.Exec(ctx, "ALTER PUBLICATION "+pub+" ADD TABLE "+strings.Join(missing, ", ")); err != nil {
				return nil, fmt.Errorf("adding tables to publication %s: %w", pub, err)
			}
			done = append(done, fmt.Sprintf("added %s to publication %s", strings.Join(missing, ", "), cfg.Publication))
		}
		if !ins || !upd || !del || !trunc {
			if _, err := tx.Exec(ctx, "ALTER PUBLICATION "+pub+" SET (publish = 'insert, update, delete, truncate')"); err != nil {
				return nil, err
			}
			done = append(done, fmt.Sprintf("set publication %s to publish insert, update, delete, truncate", cfg.Publication))
		}
	}

	tickets := cfg.qualified(cfg.Tables.Tickets)
	var ident, index string
	if err := tx.QueryRow(ctx, `SELECT c.relreplident::text, coalesce((SELECT ic.relname::text
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid AND i.indisreplident), '')
		FROM pg_class c WHERE c.oid = to_regclass($1)`, tickets).Scan(&ident, &index); err != nil {
		return nil, fmt.Errorf("reading the replica identity of %s: %w", tickets, err)
	}
	if ident != "f" {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+tickets+" REPLICA IDENTITY FULL"); err != nil {
			return nil, fmt.Errorf("setting REPLICA IDENTITY FULL on %s: %w", tickets, err)
		}
		if rec.RestoreIdentity == nil {
			rec.RestoreIdentity = &identityRecord{Table: tickets, Was: ident, Index: index}
		}
		done = append(done, fmt.Sprintf("set REPLICA IDENTITY FULL on %s (was %s)",
			cfg.displayName(cfg.Tables.Tickets), identityName(ident)))
	}
	if c := rec.comment(); c != comment {
		if _, err := tx.Exec(ctx, "COMMENT ON PUBLICATION "+pub+" IS "+quoteLiteral(c)); err != nil {
			return nil, err
		}
	}
	return done, nil
}

func identityName(relreplident string) string {
	switch relreplident {
	case "d":
		return "DEFAULT"
	case "n":
		return "NOTHING"
	case "f":
		return "FULL"
	case "i":
		return "USING INDEX"
	}
	return relreplident
}

// publicationTables compares the publication with the configured tables:
// the quoted names of those it lacks, and the schema.table names it has
// beyond them.
func publicationTables(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, cfg Config) (missing, extra []string, err error) {
	rows, err := q.Query(ctx, `SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1`,
		cfg.Publication)
	if err != nil {
		return nil, nil, err
	}
	has := map[string]bool{}
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return nil, nil, err
		}
		has[s+"\x00"+t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, t := range cfg.Tables.List() {
		k := cfg.Schema + "\x00" + t
		want[k] = true
		if !has[k] {
			missing = append(missing, cfg.qualified(t))
		}
	}
	for k := range has {
		if !want[k] {
			extra = append(extra, strings.Replace(k, "\x00", ".", 1))
		}
	}
	return missing, extra, nil
}

// Teardown removes what Setup made: the slot, the publication (only if
// Setup made it) and, if Setup changed it, the tickets replica identity
// back to what it was. It is idempotent and returns what it did. It refuses
// to drop a slot that a process is reading.
func Teardown(ctx context.Context, cfg Config) (done []string, err error) {
	cfg.SetDefaults()
	if err := cfg.Validate(""); err != nil {
		return nil, fmt.Errorf("cdc: invalid config: %w", err)
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())

	var active *int32
	err = conn.QueryRow(ctx, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", cfg.Slot).Scan(&active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("cdc: teardown: %w", err)
	case active != nil:
		return nil, fmt.Errorf("cdc: teardown: replication slot %s is in use by process %d; stop deskhook "+
			"(or the other consumer) first", quoteIdent(cfg.Slot), *active)
	default:
		if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", cfg.Slot); err != nil {
			return nil, fmt.Errorf("cdc: teardown: dropping replication slot %s: %w", quoteIdent(cfg.Slot), err)
		}
		done = append(done, "dropped replication slot "+cfg.Slot)
	}

	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var comment string
		err := tx.QueryRow(ctx, `SELECT coalesce(obj_description(oid, 'pg_publication'), '')
			FROM pg_publication WHERE pubname = $1`, cfg.Publication).Scan(&comment)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		rec, ours := parseSetupComment(comment)
		if !ours {
			done = append(done, fmt.Sprintf("left publication %s in place: deskhook setup did not make it", cfg.Publication))
			return nil
		}
		if ri := rec.RestoreIdentity; ri != nil {
			d, err := restoreIdentity(ctx, tx, ri)
			if err != nil {
				return err
			}
			done = append(done, d...)
		}
		if _, err := tx.Exec(ctx, "DROP PUBLICATION "+quoteIdent(cfg.Publication)); err != nil {
			return err
		}
		done = append(done, "dropped publication "+cfg.Publication)
		return nil
	})
	if err != nil {
		return done, fmt.Errorf("cdc: teardown: %w", err)
	}
	return done, nil
}

// restoreIdentity puts a table's replica identity back, if it is still the
// FULL that Setup set (someone may have changed it since, or dropped the
// table or the index).
func restoreIdentity(ctx context.Context, tx pgx.Tx, ri *identityRecord) ([]string, error) {
	var ident string
	err := tx.QueryRow(ctx, "SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)", ri.Table).Scan(&ident)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && ident != "f") {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	to := "DEFAULT"
	switch ri.Was {
	case "n":
		to = "NOTHING"
	case "i":
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
			WHERE i.indrelid = to_regclass($1) AND ic.relname = $2)`, ri.Table, ri.Index).Scan(&exists); err != nil {
			return nil, err
		}
		if exists {
			to = "USING INDEX " + quoteIdent(ri.Index)
		}
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+ri.Table+" REPLICA IDENTITY "+to); err != nil {
		return nil, fmt.Errorf("restoring the replica identity of %s: %w", ri.Table, err)
	}
	return []string{fmt.Sprintf("restored REPLICA IDENTITY %s on %s", to, ri.Table)}, nil
}
