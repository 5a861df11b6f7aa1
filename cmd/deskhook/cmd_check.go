package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
)

func init() {
	register("check", "check every prerequisite, with the fix for each failure", cmdCheck)
}

func cmdCheck(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "check", "[-c deskhook.yaml]",
		"Checks the config and every database prerequisite (connection, wal_level, privileges,\n"+
			"tables, replica identity, publication, slot): one line each, ok or FAIL with the fix.\n"+
			"Exits 1 when any check fails.", true)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		var ce *daemon.ConfigError
		if errors.As(err, &ce) {
			fmt.Fprintf(e.stdout, "FAIL  config: %v\n", ce.Err)
		}
		return err
	}
	fmt.Fprintf(e.stdout, "ok    config: %s\n", *cfgPath)
	failed := 0
	ownReader := runningDaemonReader(ctx, cfg)
	mark := func() (cdc.Mark, error) { return daemon.StoreMark(ctx, cfg) }
	for _, r := range cdc.CheckWith(ctx, cfg.Source, cdc.CheckOptions{Mark: mark}) {
		if !r.OK && ownReader != 0 && r.Name == "slot "+cfg.Source.Slot+" in use" {
			// Read by the daemon this config runs: as it should be.
			r = cdc.CheckResult{Name: r.Name, OK: true,
				Detail: fmt.Sprintf("by the running deskhook daemon (walsender pid %d)", ownReader)}
		}
		if r.OK {
			fmt.Fprintf(e.stdout, "ok    %s", r.Name)
			if r.Detail != "" {
				fmt.Fprintf(e.stdout, ": %s", e.red.Replace(r.Detail))
			}
			fmt.Fprintln(e.stdout)
			continue
		}
		failed++
		fmt.Fprintf(e.stdout, "FAIL  %s: %s\n", r.Name, e.red.Replace(r.Detail))
		if r.Fix != "" {
			fmt.Fprintf(e.stdout, "      fix: %s\n", r.Fix)
		}
	}
	if failed > 0 {
		fmt.Fprintf(e.stdout, "%d check(s) failed\n", failed)
		return &quietError{code: 1}
	}
	return nil
}

// runningDaemonReader returns the walsender pid of the daemon running with
// this config, when it runs and its stream holds the slot (else 0).
func runningDaemonReader(ctx context.Context, cfg *daemon.Config) uint32 {
	ops, err := daemon.OpenOps(ctx, cfg, false)
	if err != nil {
		return 0
	}
	defer ops.Close()
	st, err := ops.Status(ctx)
	if err != nil || !st.Daemon || st.Stream == nil || !st.Stream.Connected || !st.Slot.Active ||
		st.Slot.ActivePID != int(st.Stream.WalsenderPID) {
		return 0
	}
	return st.Stream.WalsenderPID
}
