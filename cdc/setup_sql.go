package cdc

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// SetupSQL is what `deskhook setup --print-sql` prints: the whole setup as a
// psql script for a DBA to run by hand, connected to the helpdesk database
// as a superuser (or as the tables' owner with CREATE on the database,
// CREATEROLE and REPLICATION). It creates the role deskhook runs as
// (source.dsn's user) with REPLICATION and SELECT on every table deskhook
// reads (source.tables), the publication (marked as setup's, so Teardown drops it),
// REPLICA IDENTITY FULL on tickets and, after the transaction, the slot.
// It needs no connection: it comes from the config alone.
func SetupSQL(cfg Config) (string, error) {
	cfg.SetDefaults()
	if err := cfg.Validate("source"); err != nil {
		return "", err
	}
	pc, err := pgconn.ParseConfig(cfg.DSN)
	if err != nil {
		return "", invalidDSN(cfg.DSN, err)
	}
	role, db := pc.User, pc.Database
	if db == "" {
		db = role // libpq's default
	}
	r, pub := quoteIdent(role), quoteIdent(cfg.Publication)
	var tables []string
	for _, t := range cfg.Tables.List() {
		tables = append(tables, cfg.qualified(t))
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("-- deskhook setup, to run by hand: as a superuser (or as the owner of the tables with CREATE on")
	w("-- the database, CREATEROLE and REPLICATION), connected to database %s:", quoteIdent(db))
	w("--")
	w("--   psql -v ON_ERROR_STOP=1 -v password='...' -d %s -f deskhook-setup.sql", shellWord(db))
	w("--")
	w("-- deskhook itself then runs as role %s, which needs nothing more than what this grants.", r)
	w("-- Leave out -v password=... for a role that logs in without one (peer or certificate).")
	w("")
	w("BEGIN;")
	w("")
	w("-- The role deskhook runs as (source.dsn's user): it streams the slot and reads the tables.")
	w(`\if :{?password}`)
	w("CREATE ROLE %s LOGIN REPLICATION PASSWORD :'password';", r)
	w(`\else`)
	w("CREATE ROLE %s LOGIN REPLICATION;", r)
	w(`\endif`)
	w("GRANT CONNECT ON DATABASE %s TO %s;", quoteIdent(db), r)
	w("GRANT USAGE ON SCHEMA %s TO %s;", quoteIdent(cfg.Schema), r)
	w("GRANT SELECT ON %s TO %s;", strings.Join(tables, ", "), r)
	w("")
	w("-- The publication over the tables deskhook follows. The comment marks it as setup's: teardown")
	w("-- drops it (and leaves the replica identity below as it is).")
	w("CREATE PUBLICATION %s FOR TABLE %s;", pub, strings.Join(tables, ", "))
	w("COMMENT ON PUBLICATION %s IS %s;", pub, quoteLiteral(setupRecord{}.comment()))
	w("")
	w("-- Updates of tickets carry the old row, so deskhook tells which fields changed.")
	w("ALTER TABLE %s REPLICA IDENTITY FULL;", cfg.qualified(cfg.Tables.Tickets))
	w("")
	w("COMMIT;")
	w("")
	w("-- The replication slot, after the publication (a slot older than its publication cannot decode")
	w("-- what was committed in between) and outside the transaction (PostgreSQL creates a logical slot")
	w("-- only in a transaction that has written nothing).")
	w("SELECT pg_create_logical_replication_slot(%s, 'pgoutput');", quoteLiteral(cfg.Slot))
	return b.String(), nil
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
