package main

import (
	"context"
	"fmt"

	"github.com/deskhook/deskhook/cdc"
)

func init() {
	register("setup", "create the publication, slot and replica identity deskhook needs", cmdSetup)
	register("teardown", "remove what setup created", cmdTeardown)
}

func cmdSetup(ctx context.Context, e *env, args []string) error {
	return setupOrTeardown(ctx, e, args, "setup",
		"Creates, if missing, the publication over the helpdesk tables, REPLICA IDENTITY FULL\n"+
			"on tickets and the logical replication slot. Safe to run again. Needs a role that\n"+
			"owns the tables (or a superuser) and has REPLICATION.", cdc.Setup)
}

func cmdTeardown(ctx context.Context, e *env, args []string) error {
	return setupOrTeardown(ctx, e, args, "teardown",
		"Removes what setup created: the slot, the publication (if setup made it) and the\n"+
			"replica identity change. Stop the daemon first. Safe to run again.", cdc.Teardown)
}

func setupOrTeardown(ctx context.Context, e *env, args []string, name, summary string,
	do func(context.Context, cdc.Config) ([]string, error)) error {
	fs, cfgPath := newFlags(e, name, "[-c deskhook.yaml]", summary, true)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	done, err := do(ctx, cfg.Source)
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
