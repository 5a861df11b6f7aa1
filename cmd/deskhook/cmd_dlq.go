package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/outbox"
)

func init() {
	register("dlq", "dead letters: list, show, replay, drop", cmdDLQ)
}

const dlqHelp = `Dead letters are events an endpoint never accepted after its whole retry schedule.

  deskhook dlq list    [selection] [--limit N] [--json]
  deskhook dlq show    [--endpoint NAME] ID [--json]
  deskhook dlq replay  selection     (delivered again with their original ids)
  deskhook dlq drop    selection

selection: --endpoint NAME, --ticket N, --from TIME, --to TIME (RFC 3339 or
2006-01-02), an event ID as argument, or --all (replay and drop need one).
Works while the daemon runs.`

func cmdDLQ(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, dlqHelp)
		if len(args) == 0 {
			return usagef("dlq: which of list, show, replay, drop?")
		}
		return nil
	}
	sub := args[0]
	switch sub {
	case "list", "show", "replay", "drop":
	default:
		return usagef("dlq: unknown subcommand %q (list, show, replay, drop)", sub)
	}
	fs, cfgPath := newFlags(e, "dlq "+sub, "[flags] [ID]", dlqHelp, true)
	sel := addSelection(fs)
	limit := fs.Int("limit", 0, "list at most N")
	asJSON := fs.Bool("json", false, "print JSON (list, show)")
	all := fs.Bool("all", false, "select every dead letter (replay, drop)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	f, err := sel.filter()
	if err != nil {
		return err
	}
	switch len(pos) {
	case 0:
	case 1:
		f.ID = pos[0]
	default:
		return usagef("dlq %s: one event id at most (got %d arguments)", sub, len(pos))
	}
	if sub == "show" && f.ID == "" {
		return usagef("dlq show: which event id?")
	}
	if (sub == "replay" || sub == "drop") && f == (outbox.DeadFilter{}) && !*all {
		return usagef("dlq %s: select dead letters (an id, --endpoint, --ticket, --from/--to) or pass --all", sub)
	}
	if (sub == "replay" || sub == "drop") && *limit != 0 {
		// Replay and drop act on the whole selection: a limit they ignored
		// would touch more than the operator asked for.
		return usagef("dlq %s: --limit applies to list only; narrow the selection instead (an id, --endpoint, --ticket, --from/--to)", sub)
	}
	f.Limit = *limit

	cfg, err := e.loadOpsConfig(*cfgPath)
	if err != nil {
		return err
	}
	ops, err := daemon.OpenOps(ctx, cfg, sub == "replay" || sub == "drop")
	if err != nil {
		return err
	}
	defer ops.Close()

	switch sub {
	case "list":
		dl, err := ops.DeadLetters(ctx, f)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e, dl)
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ENDPOINT\tID\tEVENT\tTICKET\tCOMMITTED\tDIED\tATTEMPTS\tLAST ERROR")
		for _, d := range dl {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%s\n", d.Endpoint, d.ID, d.Type, d.TicketID,
				timeOrDash(d.CommitTime), timeOrDash(d.DiedAt), len(d.Attempts), lastAttempt(d.Attempts))
		}
		w.Flush()
		fmt.Fprintf(e.stdout, "%d dead letter(s)\n", len(dl))
	case "show":
		endpoint := f.Endpoint
		if endpoint == "" {
			dl, err := ops.DeadLetters(ctx, outbox.DeadFilter{ID: f.ID})
			if err != nil {
				return err
			}
			switch len(dl) {
			case 0:
				return fmt.Errorf("dlq show: no dead letter with id %s", f.ID)
			case 1:
				endpoint = dl[0].Endpoint
			default:
				return usagef("dlq show: %s is dead at %d endpoints; name one with --endpoint", f.ID, len(dl))
			}
		}
		d, err := ops.DeadLetter(ctx, endpoint, f.ID)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e, d)
		}
		fmt.Fprintf(e.stdout, "endpoint   %s\nid         %s\nevent      %s\nticket     %d\ncommitted  %s\ndied       %s\n",
			d.Endpoint, d.ID, d.Type, d.TicketID, timeOrDash(d.CommitTime), timeOrDash(d.DiedAt))
		fmt.Fprintf(e.stdout, "attempts   %d\n", len(d.Attempts))
		for i, a := range d.Attempts {
			fmt.Fprintf(e.stdout, "  %2d  %s  status %d  %s  %s\n", i+1, timeOrDash(a.At), a.Status,
				a.Latency.Round(time.Millisecond), a.Error)
			if a.Response != "" {
				fmt.Fprintf(e.stdout, "      response: %q\n", a.Response)
			}
		}
		fmt.Fprintf(e.stdout, "payload    %s\n", d.Payload)
	case "replay", "drop":
		var n int
		if sub == "replay" {
			n, err = ops.Replay(ctx, f)
		} else {
			n, err = ops.Drop(ctx, f)
		}
		if err != nil {
			return err
		}
		verb := map[string]string{"replay": "replayed", "drop": "dropped"}[sub]
		fmt.Fprintf(e.stdout, "%s %d dead letter(s)\n", verb, n)
	}
	return nil
}

func lastAttempt(as []outbox.Attempt) string {
	if len(as) == 0 {
		return "-"
	}
	a := as[len(as)-1]
	if a.Status != 0 {
		return "HTTP " + strconv.Itoa(a.Status)
	}
	msg := a.Error
	if len(msg) > 50 {
		msg = msg[:47] + "..."
	}
	return msg
}

// selection is the dead-letter selection flags.
type selection struct {
	endpoint, from, to string
	ticket             int64
}

func addSelection(fs *flag.FlagSet) *selection {
	s := &selection{}
	fs.StringVar(&s.endpoint, "endpoint", "", "only this endpoint")
	fs.Int64Var(&s.ticket, "ticket", 0, "only this ticket id")
	fs.StringVar(&s.from, "from", "", "only events committed at or after this time")
	fs.StringVar(&s.to, "to", "", "only events committed before this time")
	return s
}

func (s *selection) filter() (outbox.DeadFilter, error) {
	f := outbox.DeadFilter{Endpoint: s.endpoint, TicketID: s.ticket}
	var err error
	if f.From, err = parseTime("from", s.from); err != nil {
		return f, err
	}
	if f.To, err = parseTime("to", s.to); err != nil {
		return f, err
	}
	return f, nil
}

func parseTime(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--%s: not a time (got %q); write RFC 3339 or 2006-01-02", flagName, v)
}

func printJSON(e *env, v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
