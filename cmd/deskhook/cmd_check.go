package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
)

func init() {
	register("check", "check every prerequisite, with the fix for each failure", cmdCheck)
}

func cmdCheck(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "check", "[-c deskhook.yaml]",
		"Checks the config and every prerequisite (connection, wal_level, privileges, server\n"+
			"settings, every table deskhook reads and the columns it reads, replica identity,\n"+
			"publication, slot, free space for the store): one line each, ok, WARN or FAIL with\n"+
			"the fix. For MySQL/MariaDB: the binlog settings (with their my.cnf lines), the\n"+
			"account's replication privileges, binlog retention, server_id, the tables and\n"+
			"columns, and the stored position against the server's binlogs. Exits 1 when any\n"+
			"check fails (2 when the config itself is invalid).", true)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		var ce *daemon.ConfigError
		if !errors.As(err, &ce) {
			return err
		}
		// Each problem once, on its own FAIL line; nothing more on stderr.
		lines := strings.Split(strings.TrimRight(ce.Err.Error(), "\n"), "\n")
		for _, l := range lines {
			fmt.Fprintf(e.stdout, "FAIL  config %s: %s\n", ce.Path, e.red.Replace(l))
		}
		fmt.Fprintf(e.stdout, "%d check(s) failed\n", len(lines))
		return &quietError{code: 2}
	}
	fmt.Fprintf(e.stdout, "ok    config: %s\n", *cfgPath)
	failed := 0
	ownReader := runningDaemonReader(ctx, cfg)
	var results []cdc.CheckResult
	if cfg.Source.IsMySQL() {
		for _, r := range daemon.CheckMySQL(ctx, cfg) {
			results = append(results, cdc.CheckResult(r))
		}
	} else {
		mark := func() (cdc.Mark, error) { return daemon.StoreMark(ctx, cfg) }
		results = cdc.CheckWith(ctx, cfg.Source.Postgres(), cdc.CheckOptions{Mark: mark})
	}
	results = append(results, storeSpace(cfg.Store.Path))
	for _, r := range results {
		switch {
		case !r.OK && ownReader != 0 && r.Name == "slot "+cfg.Source.Slot+" in use":
			// Read by the daemon this config runs: as it should be.
			r = cdc.CheckResult{Name: r.Name, OK: true,
				Detail: fmt.Sprintf("by the running deskhook daemon (walsender pid %d)", ownReader)}
		case r.Warn && ownReader != 0 && cfg.Source.IsMySQL() && r.Name == "server_id":
			// The replica with deskhook's server_id is the daemon this
			// config runs.
			r = cdc.CheckResult{Name: r.Name, OK: true, Detail: fmt.Sprintf("%d, used by the running deskhook daemon "+
				"(replication connection %d)", cfg.Source.ServerID, ownReader)}
		}
		switch {
		case r.OK && !r.Warn:
			fmt.Fprintf(e.stdout, "ok    %s", r.Name)
			if r.Detail != "" {
				fmt.Fprintf(e.stdout, ": %s", e.red.Replace(r.Detail))
			}
			fmt.Fprintln(e.stdout)
			continue
		case r.OK:
			fmt.Fprintf(e.stdout, "WARN  %s: %s\n", r.Name, e.red.Replace(r.Detail))
		default:
			failed++
			fmt.Fprintf(e.stdout, "FAIL  %s: %s\n", r.Name, e.red.Replace(r.Detail))
		}
		if r.Fix != "" {
			fmt.Fprintf(e.stdout, "      fix: %s\n", e.red.Replace(r.Fix))
		}
	}
	if failed > 0 {
		fmt.Fprintf(e.stdout, "%d check(s) failed\n", failed)
		return &quietError{code: 1}
	}
	return nil
}

// runningDaemonReader returns the walsender pid (MySQL: the replication
// connection's id) of the daemon running with this config, when it runs
// and its stream holds the slot (is connected) (else 0).
func runningDaemonReader(ctx context.Context, cfg *daemon.Config) uint32 {
	ops, err := daemon.OpenOps(ctx, cfg, false)
	if err != nil {
		return 0
	}
	defer ops.Close()
	st, err := ops.Status(ctx)
	if err == nil && cfg.Source.IsMySQL() && st.Daemon && st.Stream != nil && st.Stream.Connected {
		return st.Stream.ConnectionID
	}
	if err != nil || !st.Daemon || st.Stream == nil || !st.Stream.Connected || !st.Slot.Active ||
		st.Slot.ActivePID != int(st.Stream.WalsenderPID) {
		return 0
	}
	return st.Stream.WalsenderPID
}
