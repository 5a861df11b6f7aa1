package cdc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/deskhook/deskhook/change"
)

// dbFacts is what Setup and Teardown read before they change anything:
// enough to know every statement they would run and whether the role may
// run it, so that they either do all of it or nothing.
type dbFacts struct {
	user, db, source, walLevel string
	super, replication         bool
	createOnDB                 bool // CREATE on the database (to create a publication)
	maxSlots, usedSlots        int
	currentLSN                 change.Position

	missingTables []string        // display names of configured tables that do not exist
	owns          map[string]bool // quoted schema.table → whether the role owns it

	pub     pubFacts
	tickets identityFacts
	slot    slotFacts
}

type pubFacts struct {
	exists, owned        bool
	comment              string
	commentNull          bool
	ins, upd, del, trunc bool
	missing              []string // quoted names of configured tables it lacks
	publish              string   // its publish option as it is, e.g. "insert, update, delete"
	recorded             setupRecord
	ours                 bool // made by Setup (its comment says so)
}

type identityFacts struct {
	exists      bool
	ident       string // pg_class.relreplident
	index       string // the identity index, when ident is i
	owned       bool
	table, name string // quoted schema.table; schema.table
}

type slotFacts struct {
	exists                bool
	plugin, typ, database string
	activePID             *int32
	confirmed             change.Position
	walStatus             string
}

// readFacts reads dbFacts; it changes nothing.
func readFacts(ctx context.Context, conn *pgx.Conn, cfg Config) (*dbFacts, error) {
	f := &dbFacts{owns: map[string]bool{}}
	var current string
	if err := conn.QueryRow(ctx, `SELECT current_user, current_database(), current_setting('wal_level'), r.rolsuper, r.rolreplication,
		has_database_privilege(current_database(), 'CREATE'),
		current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots)::int,
		(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END)::text
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&f.user, &f.db, &f.walLevel,
		&f.super, &f.replication, &f.createOnDB, &f.maxSlots, &f.usedSlots, &current); err != nil {
		return nil, err
	}
	if l, err := pglogrepl.ParseLSN(current); err == nil {
		f.currentLSN = change.Position(l)
	}
	f.source = databaseSource(ctx, conn)
	for _, t := range cfg.Tables.List() {
		var exists, owned bool
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL,
			coalesce((SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)), false)`,
			cfg.qualified(t)).Scan(&exists, &owned); err != nil {
			return nil, err
		}
		if !exists {
			f.missingTables = append(f.missingTables, cfg.displayName(t))
		}
		f.owns[cfg.qualified(t)] = owned
	}
	if err := readPublication(ctx, conn, cfg, &f.pub); err != nil {
		return nil, err
	}
	f.tickets.table, f.tickets.name = cfg.qualified(cfg.Tables.Tickets), cfg.displayName(cfg.Tables.Tickets)
	err := conn.QueryRow(ctx, `SELECT c.relreplident::text, coalesce((SELECT ic.relname::text
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid AND i.indisreplident), ''),
		pg_has_role(c.relowner, 'USAGE')
		FROM pg_class c WHERE c.oid = to_regclass($1)`, f.tickets.table).
		Scan(&f.tickets.ident, &f.tickets.index, &f.tickets.owned)
	switch {
	case err == nil:
		f.tickets.exists = true
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, fmt.Errorf("reading the replica identity of %s: %w", f.tickets.table, err)
	}
	return f, readSlot(ctx, conn, cfg, &f.slot)
}

func readPublication(ctx context.Context, conn *pgx.Conn, cfg Config, p *pubFacts) error {
	var comment *string
	err := conn.QueryRow(ctx, `SELECT obj_description(oid, 'pg_publication'), pubinsert, pubupdate, pubdelete,
		pubtruncate, pg_has_role(pubowner, 'USAGE') FROM pg_publication WHERE pubname = $1`,
		cfg.Publication).Scan(&comment, &p.ins, &p.upd, &p.del, &p.trunc, &p.owned)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	p.exists, p.commentNull = true, comment == nil
	if comment != nil {
		p.comment = *comment
	}
	p.recorded, p.ours = parseSetupComment(p.comment)
	var ops []string
	for _, o := range []struct {
		on   bool
		name string
	}{{p.ins, "insert"}, {p.upd, "update"}, {p.del, "delete"}, {p.trunc, "truncate"}} {
		if o.on {
			ops = append(ops, o.name)
		}
	}
	p.publish = strings.Join(ops, ", ")
	p.missing, _, err = publicationTables(ctx, conn, cfg)
	return err
}

func readSlot(ctx context.Context, conn *pgx.Conn, cfg Config, s *slotFacts) error {
	var confirmed *string
	err := conn.QueryRow(ctx, `SELECT coalesce(plugin, ''), slot_type, coalesce(database, ''), active_pid,
		confirmed_flush_lsn::text, coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1`,
		cfg.Slot).Scan(&s.plugin, &s.typ, &s.database, &s.activePID, &confirmed, &s.walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	s.exists = true
	if confirmed != nil {
		if l, err := pglogrepl.ParseLSN(*confirmed); err == nil {
			s.confirmed = change.Position(l)
		}
	}
	return nil
}
