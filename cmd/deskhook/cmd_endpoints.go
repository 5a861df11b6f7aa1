package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/deskhook/deskhook/daemon"
)

// printOrphans says what to do about orphaned endpoints, under a listing.
func printOrphans(e *env, eps []daemon.EndpointStatus) {
	for _, ep := range eps {
		if ep.Orphaned {
			fmt.Fprintf(e.stdout, "\nendpoint %s is orphaned: it is not in the config; its %d pending events and %d dead letters "+
				"are kept and nothing is sent.\n  Put an endpoint named %s back in the config to resume it (one without a name is "+
				"named after its url: give it \"name: %s\"), or drop them: deskhook endpoints forget %s\n",
				ep.Name, ep.Pending, ep.DeadLetters, ep.Name, ep.Name, ep.Name)
		}
	}
}

func init() {
	register("endpoints", "endpoints: list, enable, disable, forget", cmdEndpoints)
}

const endpointsHelp = `  deskhook endpoints list     [--json]
  deskhook endpoints enable   NAME            (also after a 410 Gone disabled it)
  deskhook endpoints disable  NAME [--reason TEXT]
  deskhook endpoints forget   NAME            (an orphaned endpoint: drops its events)

A disabled endpoint keeps queueing events and sends nothing until enabled.
An endpoint that is no longer in the config is orphaned: its queue and dead
letters are kept, nothing is sent and nothing new is queued for it. Put it
back in the config (same name) to resume it, or forget it to drop them.
Works while the daemon runs.`

func cmdEndpoints(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, endpointsHelp)
		if len(args) == 0 {
			return usagef("endpoints: which of list, enable, disable, forget?")
		}
		return nil
	}
	sub := args[0]
	switch sub {
	case "list", "enable", "disable", "forget":
	default:
		return usagef("endpoints: unknown subcommand %q (list, enable, disable, forget)", sub)
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
	case "enable", "disable", "forget":
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
			if ep.DisabledReason != "" && !ep.Orphaned {
				enabled = strings.TrimSuffix(enabled, ")") + ": " + ep.DisabledReason + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\n", ep.Name, ep.URL, enabled, ep.Pending, ep.DeadLetters, timeOrDash(ep.LastSuccess))
		}
		if err := w.Flush(); err != nil {
			return err
		}
		printOrphans(e, st.Endpoints)
		return nil
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
	case "forget":
		f, err := ops.Forget(ctx, name)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "endpoint %s forgotten: dropped %d events (%d pending, %d dead letters)\n",
			name, f.Pending+f.DeadLetters, f.Pending, f.DeadLetters)
		return nil
	}
	fmt.Fprintf(e.stdout, "endpoint %s %sd\n", name, sub)
	return nil
}
