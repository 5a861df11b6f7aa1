package main

import (
	"context"
	"fmt"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
)

func init() {
	register("setup", "create the publication, slot and replica identity deskhook needs (MySQL: nothing), accept a gap", cmdSetup)
	register("teardown", "remove what setup created", cmdTeardown)
}

func cmdSetup(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "setup", "[-c deskhook.yaml] [--print-sql | --accept-gap]",
		"Creates, if missing, the publication over the helpdesk tables, REPLICA IDENTITY FULL\n"+
			"on tickets and the logical replication slot. Safe to run again. It needs a role that\n"+
			"owns the tables (or a superuser), with CREATE on the database and REPLICATION; it\n"+
			"names up front whatever the role lacks, and then changes nothing.\n\n"+
			"--print-sql prints the same as a psql script for a DBA (the role deskhook runs as,\n"+
			"its grants, the publication, the replica identity, the slot); nothing is run.\n\n"+
			"Once the store has streamed, setup creates no slot by itself: a slot dropped or\n"+
			"invalidated, or one that starts past the store's position, means the changes in\n"+
			"between are lost. --accept-gap creates (or re-creates, or accepts) the slot anyway\n"+
			"and records the gap in the store, also while the daemon runs; `status` shows it.\n\n"+
			"MySQL/MariaDB (source.type: mysql): there is nothing to create on the server. setup\n"+
			"says whether the server's binlogs still hold the stored position; when they do not\n"+
			"(purged, or the server rebuilt or reset), --accept-gap records the gap and reads on\n"+
			"from the start of the oldest binlog left. --print-sql prints the account, its\n"+
			"grants and the my.cnf lines.", true)
	printSQL := fs.Bool("print-sql", false, "print the setup as SQL for a DBA instead of running it")
	acceptGap := fs.Bool("accept-gap", false, "create or accept a slot that skips changes, and record the gap")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *printSQL && *acceptGap {
		return usagef("setup: --print-sql and --accept-gap do not go together")
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *printSQL && cfg.Source.IsMySQL() {
		fmt.Fprint(e.stdout, binlog.PrintSQL(cfg.Source.MySQL()))
		return nil
	}
	if *printSQL {
		sql, err := cdc.SetupSQL(cfg.Source.Postgres())
		if err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		fmt.Fprint(e.stdout, sql)
		return nil
	}
	done, err := daemon.Setup(ctx, cfg, *acceptGap)
	return report(e, "setup", done, err)
}

func cmdTeardown(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "teardown", "[-c deskhook.yaml]",
		"Removes what setup created: the slot, the publication (if setup made it) and the\n"+
			"replica identity change. Stop the daemon first. Safe to run again. Like setup, it\n"+
			"names up front whatever the role lacks, and then changes nothing. MySQL/MariaDB:\n"+
			"setup created nothing on the server, so there is nothing to remove.", true)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Source.IsMySQL() {
		fmt.Fprintln(e.stdout, "teardown: nothing to remove on the MySQL/MariaDB server: the binlog reader keeps no "+
			"slot there (the stored position is in the store; remove store.path to forget it)")
		return nil
	}
	done, err := cdc.Teardown(ctx, cfg.Source.Postgres())
	return report(e, "teardown", done, err)
}

// report prints what setup or teardown did, then its error.
func report(e *env, name string, done []string, err error) error {
	for _, d := range done {
		fmt.Fprintln(e.stdout, d)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err) // main scrubs it
	}
	if len(done) == 0 {
		fmt.Fprintf(e.stdout, "%s: nothing to do\n", name)
	}
	return nil
}
