package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskhook/deskhook/mapping"
)

// measureSyscall returns the mean cost of a trivial system call in ns: every
// socket read and write pays it before doing any work, and on some virtual
// machines it is ten times what it is on bare metal.
func measureSyscall(n int) float64 {
	start := time.Now()
	for range n {
		syscall.Getppid()
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// measureFsync overwrites 4 KiB and calls fdatasync n times in dir, as
// bbolt's commit does, and returns the latencies.
func measureFsync(dir string, n int) Latency {
	f, err := os.Create(filepath.Join(dir, "fsync-probe"))
	if err != nil {
		return Latency{}
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := bytes.Repeat([]byte{0xAB}, 4096)
	var d []time.Duration
	for i := 0; i < n; i++ {
		buf[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			return Latency{}
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return Latency{}
		}
		d = append(d, time.Since(t0))
	}
	if l := summarize(d); l != nil {
		return *l
	}
	return Latency{}
}

// bounds measures the bare HTTP client against the receiver. (The
// pgoutput bound runs inside the backlog scenario, over its WAL.)
func (e *env) bounds(ctx context.Context, rep *Report) (*Result, error) {
	body := e.sample
	if body == nil {
		var err error
		if body, _, err = mapping.Render(mapping.FormatForm, fallbackPayload); err != nil {
			return nil, err
		}
	}
	res := &Result{Name: "bounds"}
	dur := e.scaledDur(3*time.Second, time.Second)
	for _, conns := range []int{1, 16} {
		h, err := bareHTTP(ctx, e.rcv.URL+"/bare", body, conns, dur)
		if err != nil {
			return res, err
		}
		rep.Bounds.HTTP = append(rep.Bounds.HTTP, h)
		res.note("HTTP %d conn: %.0f req/s", conns, h.PerSec)
		res.Events += h.Requests
		res.Seconds += h.Seconds
	}
	res.Expected = res.Events
	if p := rep.Bounds.Pgoutput; p != nil {
		res.note("pgoutput: %.0f rows/s, %.0f txns/s, %.0f events/s", p.RowsPerSec, p.TxnsPerSec, p.EventsPerSec)
	}
	return res, nil
}

// fallbackPayload is used when the backlog did not run to provide a real
// body: a ticket_reply of the usual size.
var fallbackPayload = []byte(`{"event":"ticket_reply","replied_by":{"id":"2","first_name":"Alice","last_name":"Agent","email":"alice@example.com","user_name":"alice"},` +
	`"thread":{"id":"42","ticket_id":"10","user_id":"2","thread_type":"first_reply","poster":"support","source":"1","is_internal":"0",` +
	`"title":"","body":"<p>Agent reply</p>","created_at":"2024-01-01 10:00:00","updated_at":"2024-01-01 10:00:00",` +
	`"ticket":{"id":"10","ticket_number":"AAAA-0000-0010","user_id":"5","dept_id":"1","priority_id":"1","sla":"1","help_topic_id":"1","status":"1",` +
	`"source":"1","isoverdue":"0","reopened":"0","isanswered":"1","html":"0","is_deleted":"0","closed":"0","created_at":"2024-01-01 09:00:00",` +
	`"updated_at":"2024-01-01 10:00:00","thread_count":"2","attachment_count":"0","poster":"support"}}}`)

// bareHTTP posts body to url from conns goroutines, one keep-alive
// connection each, for dur.
func bareHTTP(ctx context.Context, url string, body []byte, conns int, dur time.Duration) (HTTPBound, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	stop := time.Now().Add(dur)
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for time.Now().Before(stop) && ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", mapping.ContentTypeForm)
				resp, err := c.Do(req)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	h := HTTPBound{Conns: conns, Requests: int(n.Load()), Seconds: elapsed.Seconds(), BodyBytes: len(body)}
	h.PerSec = float64(h.Requests) / elapsed.Seconds()
	if h.Requests > 0 {
		h.CPUPer1000 = cpu.Seconds() * 1000 / float64(h.Requests)
	}
	if firstErr != nil {
		return h, fmt.Errorf("bare HTTP: %w", firstErr)
	}
	return h, nil
}

// endMarker is the prefix of the logical decoding message written after
// the backlog: the bare consumer asks for messages and stops at it; the
// daemon does not ask for them and never sees it.
const endMarker = "deskhook-bench-end"

// barePgoutput reads slot from its start up to the endMarker message,
// parsing every pgoutput message and copying every column's text (decode
// only: no mapping, no storing). It never confirms, so the slot can be
// dropped afterwards.
func barePgoutput(ctx context.Context, dsn, slot, publication string) (*PgoutputBound, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("bare pgoutput: %w", err)
	}
	pc.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("bare pgoutput: connect: %w", err)
	}
	defer conn.Close(context.Background())
	start, cpu0 := time.Now(), cpuTime()
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", publication), "messages 'true'"},
	})
	if err != nil {
		return nil, fmt.Errorf("bare pgoutput: start replication: %w", err)
	}
	var (
		b         PgoutputBound
		relations = map[uint32]*pglogrepl.RelationMessage{}
		sink      int
	)
	decode := func(t *pglogrepl.TupleData) {
		if t == nil {
			return
		}
		for _, c := range t.Columns {
			if c.DataType == pglogrepl.TupleDataTypeText {
				sink += len(string(c.Data))
			}
		}
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("bare pgoutput: receive: %w", err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			if er, ok := msg.(*pgproto3.ErrorResponse); ok {
				return nil, fmt.Errorf("bare pgoutput: %s", er.Message)
			}
			continue
		}
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				return nil, err
			}
			if ka.ReplyRequested {
				if err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: 0}); err != nil {
					return nil, err
				}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return nil, err
			}
			m, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return nil, fmt.Errorf("bare pgoutput: %w", err)
			}
			switch m := m.(type) {
			case *pglogrepl.RelationMessage:
				relations[m.RelationID] = m
			case *pglogrepl.InsertMessage:
				if relations[m.RelationID] == nil {
					return nil, errors.New("bare pgoutput: insert before its relation")
				}
				decode(m.Tuple)
				b.Rows++
			case *pglogrepl.UpdateMessage:
				decode(m.OldTuple)
				decode(m.NewTuple)
				b.Rows++
			case *pglogrepl.DeleteMessage:
				decode(m.OldTuple)
				b.Rows++
			case *pglogrepl.CommitMessage:
				b.Transactions++
			case *pglogrepl.LogicalDecodingMessage:
				if m.Prefix != endMarker {
					continue
				}
				b.Seconds = time.Since(start).Seconds()
				b.RowsPerSec = float64(b.Rows) / b.Seconds
				b.TxnsPerSec = float64(b.Transactions) / b.Seconds
				b.CPUPer1000 = (cpuTime() - cpu0).Seconds() // CPU seconds; the caller divides by the events
				if cpu, ok := procCPU(int(conn.PID())); ok {
					b.WalsenderCPUPerEventUs = float64(cpu.Microseconds()) // µs; the caller divides by the events
				}
				_ = sink
				return &b, nil
			}
		}
	}
}

// sqlPgoutput reads slot (without consuming it) through PostgreSQL's SQL
// interface: a backend decodes the WAL with the same plugin and options as
// the stream and sends the messages as rows, many to a write, where the
// walsender checks its client once per WAL record and flushes once per
// message. The gap between the two is what the replication protocol's
// round trips cost on this machine.
func sqlPgoutput(ctx context.Context, pool *pgxpool.Pool, slot, publication string) (*SQLDecodeBound, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("sql decode: %w", err)
	}
	defer conn.Release()
	// The stream that read the slot before has closed its connection, but
	// its walsender lets go of the slot a moment later: the SQL interface
	// refuses an active slot ("replication slot ... is active for PID").
	for deadline := time.Now().Add(30 * time.Second); ; {
		var active bool
		if err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active); err != nil {
			return nil, fmt.Errorf("sql decode: %w", err)
		}
		if !active {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sql decode: slot %s is still in use 30s after its stream closed", slot)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return nil, fmt.Errorf("sql decode: %w", err)
	}
	cpu0, cpuOK := procCPU(pid)
	start := time.Now()
	rows, err := conn.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
		'proto_version', '1', 'publication_names', $2)`, slot, publication)
	if err != nil {
		return nil, fmt.Errorf("sql decode: %w", err)
	}
	var b SQLDecodeBound
	for rows.Next() {
		data := rows.RawValues()[0]
		b.Messages++
		if len(data) > 0 && data[0] == 'C' {
			b.Transactions++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sql decode: %w", err)
	}
	b.Seconds = time.Since(start).Seconds()
	if b.Transactions > 0 {
		b.TxnsPerSec = float64(b.Transactions) / b.Seconds
		if cpu1, ok := procCPU(pid); ok && cpuOK {
			b.BackendCPUPerTxnUs = float64((cpu1 - cpu0).Microseconds()) / float64(b.Transactions)
		}
	}
	return &b, nil
}
