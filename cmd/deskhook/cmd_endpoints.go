package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/deskhook/deskhook/daemon"
)

func init() {
	register("endpoints", "endpoints: list, enable, disable", cmdEndpoints)
}

const endpointsHelp = `  deskhook endpoints list     [--json]
  deskhook endpoints enable   NAME            (also after a 410 Gone disabled it)
  deskhook endpoints disable  NAME [--reason TEXT]

A disabled endpoint keeps queueing events and sends nothing until enabled.
Works while the daemon runs.`

func cmdEndpoints(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, endpointsHelp)
		if len(args) == 0 {
			return usagef("endpoints: which of list, enable, disable?")
		}
		return nil
	}
	sub := args[0]
	switch sub {
	case "list", "enable", "disable":
	default:
		return usagef("endpoints: unknown subcommand %q (list, enable, disable)", sub)
	}
	fs, cfgPath := newFlags(e, "endpoints "+sub, "[flags]", endpointsHelp, true)
	asJSON := fs.Bool("json", false, "print JSON (list)")
	reason := fs.String("reason", "", "why (disable)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	var name string
	switch sub {
	case "list":
		if len(pos) > 0 {
			return usagef("endpoints list: unexpected argument %q", pos[0])
		}
	case "enable", "disable":
		if len(pos) != 1 {
			return usagef("endpoints %s: which endpoint? (one name)", sub)
		}
		name = pos[0]
	}
	cfg, err := e.loadOpsConfig(*cfgPath)
	if err != nil {
		return err
	}
	ops, err := daemon.OpenOps(ctx, cfg, sub != "list")
	if err != nil {
		return err
	}
	defer ops.Close()
	switch sub {
	case "list":
		st, err := ops.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e, st.Endpoints)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tURL\tENABLED\tPENDING\tDEAD\tLAST SUCCESS")
		for _, ep := range st.Endpoints {
			enabled := enabledText(ep)
			if ep.DisabledReason != "" {
				enabled = strings.TrimSuffix(enabled, ")") + ": " + ep.DisabledReason + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", ep.Name, ep.URL, enabled, ep.Pending, ep.DeadLetters, timeOrDash(ep.LastSuccess))
		}
		return w.Flush()
	case "enable":
		if err := ops.Enable(ctx, name); err != nil {
			return err
		}
	case "disable":
		if *reason == "" {
			*reason = "disabled with deskhook endpoints disable"
		}
		if err := ops.Disable(ctx, name, *reason); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "endpoint %s %sd\n", name, sub)
	return nil
}
