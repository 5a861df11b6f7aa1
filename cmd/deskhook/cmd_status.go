package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
)

func init() {
	register("status", "show the slot, the store's queues and the endpoints", cmdStatus)
}

func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "status", "[-c deskhook.yaml] [--json]",
		"Shows the replication slot (active, confirmed LSN, retained WAL) — for MySQL/MariaDB\n"+
			"the stored binlog position (GTID) and how many binlog files the server can purge\n"+
			"before it — the store (stored position, pending per endpoint, oldest pending age,\n"+
			"dead letters, accepted gaps) and the endpoints (enabled, last success, last error).\n"+
			"Works while the daemon runs.", true)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := noArgs(fs, args); err != nil {
		return err
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
	st, err := ops.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(e, st)
	return nil
}

func printStatus(e *env, st *daemon.Status) {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	daemonState := "not running"
	if st.Daemon {
		daemonState = "running"
		if st.Ready != nil && *st.Ready {
			daemonState += ", ready"
		} else {
			daemonState += ", NOT READY"
		}
	}
	fmt.Fprintf(w, "daemon\t%s\n", daemonState)
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  problem\t%s\n", p)
	}
	s := st.Slot
	if b := st.Binlog; b != nil {
		printBinlog(w, b)
	} else if s.Error != "" {
		fmt.Fprintf(w, "slot %s\t%s\n", s.Name, s.Error)
	} else {
		active := "inactive"
		if s.Active {
			active = fmt.Sprintf("active (pid %d)", s.ActivePID)
		}
		fmt.Fprintf(w, "slot %s\t%s, confirmed %s, retained WAL %s, wal_status %s\n",
			s.Name, active, s.ConfirmedLSN, cdc.HumanBytes(s.RetainedBytes), s.WALStatus)
	}
	if r := st.Stream; r != nil {
		conn := "disconnected"
		if r.Connected {
			conn = "connected"
		}
		fmt.Fprintf(w, "stream\t%s, received %s, acknowledged %s, %d transactions pending\n",
			conn, r.Received, r.Acknowledged, r.Pending)
	}
	o := st.Outbox
	fmt.Fprintf(w, "store %s\tposition %s, %d pending, %d dead letters", o.Path, o.Position, o.Pending, o.DeadLetters)
	if o.Error != "" {
		fmt.Fprintf(w, ", INTAKE STOPPED: %s", o.Error)
	}
	fmt.Fprintln(w)
	for _, g := range o.Gaps {
		if g.Resume != "" || st.Binlog != nil {
			fmt.Fprintf(w, "  gap\tchanges after %s and up to %s are lost (%s; accepted %s; read on after GTID %s)\n",
				g.From, g.To, g.Reason, timeOrDash(g.At), g.Resume)
			continue
		}
		fmt.Fprintf(w, "  gap	changes after %s and before %s are lost (%s; accepted %s)\n", g.From, g.To, g.Reason,
			timeOrDash(g.At))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ENDPOINT\tENABLED\tPENDING\tOLDEST\tDEAD\tLAST SUCCESS\tLAST ERROR")
	for _, ep := range st.Endpoints {
		enabled := enabledText(ep)
		oldest := "-"
		if ep.Pending > 0 {
			oldest = time.Duration(ep.OldestPendingAge * float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", ep.Name, enabled, ep.Pending, oldest, ep.DeadLetters,
			timeOrDash(ep.LastSuccess), lastError(ep))
	}
	w.Flush()
	printOrphans(e, st.Endpoints)
}

// printBinlog prints a MySQL source's stored position as the server sees
// it.
func printBinlog(w io.Writer, b *daemon.BinlogStatus) {
	stored := b.Stored
	if stored == "" {
		stored = "-"
	}
	if b.Error != "" {
		fmt.Fprintf(w, "binlog\tstored GTID %s: %s\n", stored, b.Error)
		return
	}
	margin := fmt.Sprintf("%d of %d binlog file(s) (%s) can be purged before it", b.MarginFiles, b.Files,
		cdc.HumanBytes(b.MarginBytes))
	if b.MarginFiles == b.Files-1 {
		margin = "in the active binlog file (never purged)"
	}
	if b.AtRisk {
		margin += " — AT RISK (admin.min_binlog_margin)"
	}
	fmt.Fprintf(w, "binlog\tstored GTID %s, %s; server at %s, oldest binlog starts after %s\n", stored, margin,
		b.Current, orDash(b.Oldest))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// enabledText says whether an endpoint is enabled as status and endpoints
// list both show it: yes, no (who disabled it) or orphaned (not in the
// config).
func enabledText(ep daemon.EndpointStatus) string {
	switch {
	case ep.Orphaned:
		return "ORPHANED (not in config)"
	case !ep.Enabled && ep.DisabledBy != "":
		return "no (" + ep.DisabledBy + ")"
	case !ep.Enabled:
		return "no"
	}
	return "yes"
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func lastError(ep daemon.EndpointStatus) string {
	if ep.LastError == "" {
		return "-"
	}
	msg := ep.LastError
	if len(msg) > 60 {
		msg = msg[:57] + "..."
	}
	return timeOrDash(ep.LastErrorAt) + " " + msg
}
