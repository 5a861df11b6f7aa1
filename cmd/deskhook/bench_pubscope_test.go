package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// BenchmarkPublicationScope measures what a publication over the whole
// schema (FOR TABLES IN SCHEMA, PostgreSQL ≥ 15: a table rebuilt by a
// migration stays published) would cost against setup's publication over
// the configured tables: the helpdesk's writes to tables deskhook does not
// read (sessions, jobs, logs) are then sent to deskhook, decoded and
// dropped. Each iteration writes otherTxns one-row transactions to such a
// table, then one status change, and waits for its event; the daemon's
// and its walsender's CPU time are reported per unrelated transaction.
//
//	go test -run '^$' -bench PublicationScope -benchtime 3x ./cmd/deskhook/
//
// docs/schema-drift.md records the figures.
func BenchmarkPublicationScope(b *testing.B) {
	for _, scope := range []string{"tables", "schema"} {
		b.Run(scope, func(b *testing.B) { benchPublicationScope(b, scope) })
	}
}

const otherTxns = 5000

func benchPublicationScope(b *testing.B, scope string) {
	e := newE2E(b)
	e.section("log")["level"] = "info"
	e.writeConfig()
	if scope == "schema" {
		// Marked as setup's own, so setup adds the slot and the replica
		// identity to it.
		e.db.Exec(b, `CREATE PUBLICATION deskhook FOR TABLES IN SCHEMA public;
			COMMENT ON PUBLICATION deskhook IS 'deskhook setup {}'`)
	}
	e.setup()
	d := e.start()
	ctx := context.Background()
	pool := e.db.Pool(b)
	hd := testenv.NewHelpdesk(pool)
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		b.Fatal(err)
	}
	delivered := 1
	e.waitDelivered(delivered, 30*time.Second)
	var walsender int
	if err := pool.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, e.slot).Scan(&walsender); err != nil {
		b.Fatal(err)
	}
	commits := func() float64 { return sumMetric(d.metrics(), "deskhook_outbox_commits_total") }

	var daemonCPU, senderCPU time.Duration
	var outboxCommits float64
	b.ResetTimer()
	for i := range b.N {
		d0, s0, c0 := procCPU(b, d.cmd.Process.Pid), procCPU(b, walsender), commits()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for wr := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := wr; j < otherTxns; j += 4 {
					if _, err := pool.Exec(ctx, `INSERT INTO audit_log (message) VALUES ($1)`, fmt.Sprint("request ", j)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
		status := testenv.StatusClosed
		if i%2 == 1 {
			status = testenv.StatusOpen
		}
		if _, err := hd.ChangeStatus(ctx, w.TicketID, status); err != nil {
			b.Fatal(err)
		}
		delivered++
		e.waitDelivered(delivered, 5*time.Minute)
		daemonCPU += procCPU(b, d.cmd.Process.Pid) - d0
		senderCPU += procCPU(b, walsender) - s0
		outboxCommits += commits() - c0
	}
	b.StopTimer()
	n := float64(b.N * otherTxns)
	b.ReportMetric(float64(daemonCPU.Microseconds())/n, "daemon-cpu-µs/txn")
	b.ReportMetric(float64(senderCPU.Microseconds())/n, "walsender-cpu-µs/txn")
	b.ReportMetric(outboxCommits/n, "outbox-commits/txn")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/n, "wall-µs/txn")
	d.stop()
}

// procCPU is the CPU time a process has used, all its threads (Linux
// /proc/PID/stat utime and stime, in the kernel's 100 Hz ticks).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("reading the CPU time of process %d: %v", pid, err)
	}
	// The fields after the command name (in parentheses, which may hold
	// spaces): state is the first, utime the 12th, stime the 13th.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, raw)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
