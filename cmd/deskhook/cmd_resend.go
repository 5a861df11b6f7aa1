package main

import (
	"context"
	"fmt"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/outbox"
)

func init() {
	register("resend", "send stored events again to one endpoint (same webhook-id and body)", cmdResend)
}

const resendHelp = `Sends stored events again to one endpoint, with their original webhook-id
and body, as new attempts (docs/delivery-log.md). Delivered events are
queued again, pending ones are due now, dead letters are queued again.

  deskhook resend --endpoint NAME ID
  deskhook resend --endpoint NAME --ticket N [--from T] [--to T]
  deskhook resend --endpoint NAME --from T [--to T]

--from and --to bound the events' commit time (RFC 3339, 2006-01-02, or a
duration back from now such as 2h). Works while the daemon runs (through
its API); without a daemon it queues them in the store, sent at its start.`

func cmdResend(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "resend", "--endpoint NAME (ID | --ticket N | --from T [--to T])", resendHelp, true)
	endpoint := fs.String("endpoint", "", "the endpoint to send to (required)")
	ticket := fs.Int64("ticket", 0, "the ticket's stored events")
	from := fs.String("from", "", "events committed at or after this time")
	to := fs.String("to", "", "events committed before this time")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	sel := outbox.ResendSelection{TicketID: *ticket}
	switch len(pos) {
	case 0:
	case 1:
		sel.ID = pos[0]
	default:
		return usagef("resend: one event id at most (got %d arguments)", len(pos))
	}
	now := time.Now()
	if sel.From, err = parseTimeOrAgo("from", *from, now); err != nil {
		return err
	}
	if sel.To, err = parseTimeOrAgo("to", *to, now); err != nil {
		return err
	}
	if *endpoint == "" {
		return usagef("resend: which endpoint? (--endpoint NAME)")
	}
	if sel.Empty() {
		return usagef("resend: select events: an event id, --ticket, or --from/--to")
	}
	cfg, err := e.loadOpsConfig(*cfgPath)
	if err != nil {
		return err
	}
	ops, err := daemon.OpenOps(ctx, cfg, true)
	if err != nil {
		return err
	}
	defer ops.Close()
	res, err := ops.Resend(ctx, sel, *endpoint)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, res)
	}
	if res.Events == 0 {
		fmt.Fprintln(e.stdout, "no stored event matches the selection (never stored, or pruned with its log)")
		return nil
	}
	fmt.Fprintf(e.stdout, "re-sending %d event(s) to %s: %d queued again, %d pending made due now, %d dead letter(s) queued again\n",
		res.Events, *endpoint, res.Queued, res.Due, res.Revived)
	return nil
}
