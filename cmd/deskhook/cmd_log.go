package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/outbox"
)

func init() {
	register("log", "the delivery log: every attempt, by ticket, endpoint, event, outcome, time", cmdLog)
}

const logHelp = `The delivery log: every delivery attempt, newest first (docs/delivery-log.md).

  deskhook log [filters] [--limit N] [--cursor C] [--json]
  deskhook log show ID [--json]      the stored event: payload, endpoints, attempts

filters: --ticket N, --endpoint NAME, --event ID, --type TYPE,
--outcome delivered|retry|dead|failed (comma-separated), --since T, --until T
(RFC 3339, 2006-01-02, or a duration back from now such as 90m or 2h).
Works while the daemon runs (through its API) and on the store when it does not.`

func cmdLog(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && args[0] == "show" {
		return cmdLogShow(ctx, e, args[1:])
	}
	fs, cfgPath := newFlags(e, "log", "[filters] | show ID", logHelp, true)
	var q outbox.LogQuery
	var outcome, since, until string
	fs.Int64Var(&q.TicketID, "ticket", 0, "only this ticket id")
	fs.StringVar(&q.Endpoint, "endpoint", "", "only this endpoint")
	fs.StringVar(&q.EventID, "event", "", "only this event id")
	fs.StringVar(&q.EventType, "type", "", "only this event type (ticket_created, ...)")
	fs.StringVar(&outcome, "outcome", "", "only these outcomes: delivered, retry, dead, failed")
	fs.StringVar(&since, "since", "", "only attempts at or after this time")
	fs.StringVar(&until, "until", "", "only attempts before this time")
	fs.StringVar(&q.Cursor, "cursor", "", "go on after this cursor (printed after a page)")
	limit := fs.Int("limit", 50, "most entries to print")
	asJSON := fs.Bool("json", false, "print JSON: {entries, next}")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	var err error
	if q.Outcomes, err = outbox.ParseOutcomes(outcome); err != nil {
		return usagef("--outcome: %v", err)
	}
	now := time.Now()
	if q.Since, err = parseTimeOrAgo("since", since, now); err != nil {
		return err
	}
	if q.Until, err = parseTimeOrAgo("until", until, now); err != nil {
		return err
	}
	if *limit < 1 {
		return usagef("--limit: at least 1 (got %d)", *limit)
	}
	cfg, err := e.loadOpsConfig(*cfgPath)
	if err != nil {
		return err
	}
	ops, err := daemon.OpenOps(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer ops.Close()

	// Pages may come short (a query looks at a bounded number of index
	// keys per request): follow them until the limit or the end.
	page := outbox.LogPage{Entries: []outbox.LogEntry{}}
	for {
		q.Limit = min(*limit-len(page.Entries), 1000)
		p, err := ops.Log(ctx, q)
		if err != nil {
			return err
		}
		page.Entries = append(page.Entries, p.Entries...)
		page.Next, page.Index, page.Scanned = p.Next, p.Index, page.Scanned+p.Scanned
		if p.Next == "" || len(page.Entries) >= *limit {
			break
		}
		q.Cursor = p.Next
	}
	if *asJSON {
		return printJSON(e, page)
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tENDPOINT\tTICKET\tEVENT\tTYPE\tATTEMPT\tOUTCOME\tRESULT\tTOOK\tNEXT")
	for _, l := range page.Entries {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", l.At.Local().Format("2006-01-02 15:04:05.000"),
			l.Endpoint, l.TicketID, l.EventID, l.EventType, l.Attempt, l.Outcome, attemptText(l.Status, l.Error),
			l.Duration.Round(time.Millisecond), timeOrDash(l.NextAt))
	}
	w.Flush()
	fmt.Fprintf(e.stdout, "%d attempt(s)\n", len(page.Entries))
	if page.Next != "" {
		fmt.Fprintf(e.stdout, "older attempts: add --cursor %s\n", page.Next)
	}
	return nil
}

func cmdLogShow(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "log show", "ID", logHelp, true)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("log show: one event id (got %d arguments)", len(pos))
	}
	cfg, err := e.loadOpsConfig(*cfgPath)
	if err != nil {
		return err
	}
	ops, err := daemon.OpenOps(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer ops.Close()
	ev, err := ops.Event(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e, ev)
	}
	fmt.Fprintf(e.stdout, "id         %s\nevent      %s\nticket     %d\ncommitted  %s\n",
		ev.ID, ev.Type, ev.TicketID, timeOrDash(ev.CommitTime))
	fmt.Fprintln(e.stdout, "endpoints")
	for _, d := range ev.Endpoints {
		line := fmt.Sprintf("  %-20s %s", d.Endpoint, d.State)
		switch d.State {
		case "pending":
			line += fmt.Sprintf(", %d attempt(s), next %s", d.Attempts, nowOr(d.Next))
		case "dead":
			line += fmt.Sprintf(" since %s, %d attempt(s)", timeOrDash(d.DiedAt), d.Attempts)
		}
		if d.Orphaned {
			line += " (orphaned)"
		}
		fmt.Fprintln(e.stdout, line)
	}
	fmt.Fprintf(e.stdout, "attempts   %d\n", len(ev.Attempts))
	for _, a := range ev.Attempts {
		fmt.Fprintf(e.stdout, "  %s  %-20s #%d  %-9s  %s  %s\n", a.At.Local().Format("2006-01-02 15:04:05.000"), a.Endpoint,
			a.Attempt, a.Outcome, attemptText(a.Status, a.Error), a.Duration.Round(time.Millisecond))
		if a.Response != "" {
			fmt.Fprintf(e.stdout, "      response: %q\n", a.Response)
		}
	}
	fmt.Fprintf(e.stdout, "payload    %s\n", ev.Payload)
	return nil
}

func attemptText(status int, errText string) string {
	s := ""
	if status != 0 {
		s = "HTTP " + strconv.Itoa(status)
	}
	if errText != "" {
		if len(errText) > 60 {
			errText = errText[:57] + "..."
		}
		s = strings.TrimSpace(s + " " + errText)
	}
	if s == "" {
		return "-"
	}
	return s
}

func nowOr(t time.Time) string {
	if t.IsZero() {
		return "now"
	}
	return timeOrDash(t)
}

// parseTimeOrAgo reads a time as parseTime does, or a duration back from
// now ("90m", "2h").
func parseTimeOrAgo(flagName, v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && v != "" {
		if d < 0 {
			return time.Time{}, usagef("--%s: a duration back from now must not be negative (got %s)", flagName, v)
		}
		return now.Add(-d), nil
	}
	t, err := parseTime(flagName, v)
	if err != nil {
		return t, usagef("--%s: not a time or a duration (got %q); write RFC 3339, 2006-01-02, or e.g. 90m", flagName, v)
	}
	return t, nil
}
