package cdc

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
	"github.com/jackc/pgx/v5"
)

// blockFor is how long the downstream of TestBlockedDownstreamKeepsConnection
// blocks: nine times the server's wal_sender_timeout.
const blockFor = 90 * time.Second

// walsender is a row of pg_stat_replication.
type walsender struct {
	pid      int32
	replyAge time.Duration // since the last standby status update
}

func (f *fixture) walsenders(t testing.TB) []walsender {
	t.Helper()
	rows, err := f.pool.Query(testCtx(t, 10*time.Second), `SELECT pid,
		coalesce(extract(epoch FROM clock_timestamp() - reply_time), 1e6)::float8
		FROM pg_stat_replication WHERE application_name = 'deskhook'`)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (w walsender, err error) {
		var secs float64
		err = r.Scan(&w.pid, &secs)
		w.replyAge = time.Duration(secs * float64(time.Second))
		return w, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// TestBlockedDownstreamKeepsConnection: a Handle that blocks for 90 s, on a
// server whose wal_sender_timeout is 10 s, while a transaction larger than
// the queue and the socket buffers waits behind it. The reader stops
// reading, keeps sending status updates, and keeps its walsender: same pid
// before and after, no reconnect, no timeout in the server's log, and the
// data arrives afterwards.
func TestBlockedDownstreamKeepsConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false, testenv.WithSettings(map[string]string{"wal_sender_timeout": "10s"}), testenv.NoFsync())
	const rows = 20_000 // ~18 MB on the wire: more than the socket buffers hold
	f.db.Exec(t, `INSERT INTO tickets (ticket_number, user_id, status, created_at)
		SELECT 'AAAA-' || g, 5, 1, now() FROM generate_series(1, $1::int) g`, rows)
	if _, err := Setup(testCtx(t, time.Minute), f.cfg); err != nil {
		t.Fatal(err)
	}
	cfg := f.cfg
	cfg.StatusInterval = 0 // the default, 5 s: the reader lowers it to 10s/3
	cfg.QueueBytes, cfg.MaxBatchBytes = 64<<10, 64<<10
	cfg.SetDefaults()

	unblock, blocked := make(chan struct{}), make(chan struct{})
	var (
		mu      sync.Mutex
		changes = map[string]int{} // table → changes handed over
		txns    []change.Position
		first   = true
	)
	var reader *Reader
	h := HandlerFunc(func(ctx context.Context, b *change.Batch) error {
		mu.Lock()
		block := first
		first = false
		mu.Unlock()
		if block {
			close(blocked)
			select {
			case <-unblock:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range b.Changes {
			changes[c.Table.Name]++
		}
		if b.Last {
			txns = append(txns, b.Pos)
			reader.Ack(b.Pos)
		}
		return nil
	})
	run := startReader(t, cfg, h, ReaderOptions{})
	reader = run.reader
	run.waitConnected(t)
	before := f.walsenders(t)
	if len(before) != 1 || uint32(before[0].pid) != reader.Stats().BackendPID {
		t.Fatalf("walsenders %+v, reader's pid %d", before, reader.Stats().BackendPID)
	}

	start := time.Now()
	f.db.Exec(t, "UPDATE tickets SET isoverdue = 1")
	// Once Handle blocks, the reader fills its queue, then stops reading:
	// what it received stops moving.
	select {
	case <-blocked:
	case <-time.After(time.Minute):
		t.Fatal("no batch handed over within a minute")
	}
	var received change.Position
	waitFor(t, 30*time.Second, "the reader to stop reading", func() bool {
		prev := received
		received = reader.Stats().Received
		time.Sleep(time.Second)
		return received != 0 && received == prev && reader.Stats().Received == received
	})
	// A transaction committed meanwhile arrives after the block.
	ctx := testCtx(t, 3*time.Minute)
	late, err := f.hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	for time.Since(start) < blockFor {
		time.Sleep(min(10*time.Second, blockFor-time.Since(start)))
		ws := f.walsenders(t)
		if len(ws) != 1 || ws[0].pid != before[0].pid {
			t.Fatalf("after %s the walsenders are %+v, want pid %d alone", time.Since(start).Round(time.Second), ws, before[0].pid)
		}
		// Status updates keep arriving (every 10s/3).
		if ws[0].replyAge > 6*time.Second {
			t.Errorf("after %s the last status update is %s old", time.Since(start).Round(time.Second), ws[0].replyAge)
		}
	}
	if got := reader.Stats().Received; got != received {
		t.Errorf("the reader read on while the queue was full: received %s, then %s", received, got)
	}
	close(unblock)

	waitFor(t, 2*time.Minute, "every change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return changes["tickets"] == rows+1 && changes["ticket_thread"] == 1
	})
	if after := f.walsenders(t); len(after) != 1 || after[0].pid != before[0].pid {
		t.Errorf("walsenders after the block %+v, before %+v", after, before)
	}
	if st := reader.Stats(); st.Reconnects != 0 || !st.Connected {
		t.Errorf("stats after the block: %+v", st)
	}
	if log, err := os.ReadFile(f.db.Server.LogPath()); err != nil {
		t.Error(err)
	} else if strings.Contains(string(log), "timeout") {
		t.Errorf("the server logged a timeout:\n%s", f.db.Server.LogTail())
	}
	mu.Lock()
	if len(txns) != 2 || txns[1] <= txns[0] {
		t.Errorf("transactions %v, want the UPDATE then the late ticket %d", txns, late.TicketID)
	}
	mu.Unlock()
	if err := run.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}
