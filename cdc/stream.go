package cdc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// replicationConfig is the connection config for the walsender: a logical
// replication connection to the DSN's database, dates printed in ISO style
// whatever the server's DateStyle (values keep the text the server printed).
func (r *Reader) replicationConfig() (*pgconn.Config, error) {
	pc, err := pgconn.ParseConfig(r.cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cdc: source.dsn is not a valid connection string (%s)", RedactDSN(r.cfg.DSN))
	}
	pc.RuntimeParams["replication"] = "database"
	pc.RuntimeParams["DateStyle"] = "ISO"
	if pc.RuntimeParams["application_name"] == "" {
		pc.RuntimeParams["application_name"] = r.opts.ApplicationName
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 15 * time.Second
	}
	return pc, nil
}

// slotState is what a connection learns before it starts streaming.
type slotState struct {
	senderTimeout time.Duration // 0: disabled
	confirmed     uint64
}

// preflight checks, on the replication connection, what START_REPLICATION
// would otherwise report less clearly (or, for a missing publication, only
// at the first change).
func (r *Reader) preflight(ctx context.Context, conn *pgconn.PgConn) (slotState, error) {
	var st slotState
	if conn.ParameterStatus("standard_conforming_strings") != "on" {
		return st, errors.New("cdc: the server has standard_conforming_strings off; deskhook needs it on")
	}
	sql := `SELECT current_setting('wal_level'), current_setting('wal_sender_timeout'), current_database(),
	  EXISTS (SELECT 1 FROM pg_publication WHERE pubname = ` + quoteLiteral(r.cfg.Publication) + `),
	  s.plugin, s.slot_type, s.database, s.active_pid, s.confirmed_flush_lsn, s.wal_status
	FROM (SELECT 1) AS one LEFT JOIN pg_replication_slots s ON s.slot_name = ` + quoteLiteral(r.cfg.Slot)
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return st, err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 10 {
		return st, errors.New("cdc: unexpected answer to the slot query")
	}
	row := res[0].Rows[0]
	col := func(i int) string { return string(row[i]) }
	slot, pub, db := quoteIdent(r.cfg.Slot), quoteIdent(r.cfg.Publication), quoteIdent(col(2))
	if col(0) != "logical" {
		return st, &objectError{kind: ErrWALLevel, msg: fmt.Sprintf("cdc: wal_level is %q, logical replication needs "+
			"\"logical\": ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL", col(0))}
	}
	if st.senderTimeout, err = parsePGDuration(col(1)); err != nil {
		return st, fmt.Errorf("cdc: wal_sender_timeout: %w", err)
	}
	if col(3) != "t" {
		return st, &objectError{kind: ErrPublicationMissing, msg: fmt.Sprintf("cdc: publication %s does not exist in "+
			"database %s; run `deskhook setup` or fix source.publication", pub, db)}
	}
	if row[5] == nil { // slot_type; plugin is NULL for a physical slot
		return st, &objectError{kind: ErrSlotMissing, msg: fmt.Sprintf("cdc: replication slot %s does not exist; "+
			"run `deskhook setup` or fix source.slot", slot)}
	}
	if col(5) != "logical" || col(4) != "pgoutput" || col(6) != col(2) {
		return st, &objectError{kind: ErrSlotInvalid, msg: fmt.Sprintf("cdc: replication slot %s is a %s slot with "+
			"plugin %q in database %q; deskhook needs a logical pgoutput slot in database %s: pick another "+
			"source.slot or drop this one (SELECT pg_drop_replication_slot(%s)) and run `deskhook setup`",
			slot, col(5), col(4), col(6), db, quoteLiteral(r.cfg.Slot))}
	}
	if col(9) == "lost" {
		return st, &objectError{kind: ErrSlotLost, msg: fmt.Sprintf("cdc: replication slot %s has lost WAL it "+
			"needed (wal_status lost, max_slot_wal_keep_size exceeded): recreate it with `deskhook teardown && "+
			"deskhook setup`; changes in between are lost", slot)}
	}
	if row[7] != nil {
		return st, &objectError{kind: ErrSlotInUse, msg: fmt.Sprintf("cdc: replication slot %s is in use by "+
			"process %s (another deskhook or consumer)", slot, col(7))}
	}
	if row[8] != nil {
		lsn, err := pglogrepl.ParseLSN(col(8))
		if err != nil {
			return st, fmt.Errorf("cdc: slot %s confirmed_flush_lsn: %w", slot, err)
		}
		st.confirmed = uint64(lsn)
	}
	return st, nil
}

// parsePGDuration parses a time setting as SHOW prints it ("10s", "1min",
// "500ms", "0"); a bare number is milliseconds.
func parsePGDuration(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(c rune) bool { return c < '0' || c > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], s[i:]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q", s)
	}
	units := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[unit]
	if !ok {
		return 0, fmt.Errorf("cannot parse %q", s)
	}
	return time.Duration(n) * u, nil
}

// statusInterval is the configured interval, lowered to a third of the
// server's wal_sender_timeout so the walsender never times us out.
func statusInterval(cfg time.Duration, senderTimeout time.Duration) time.Duration {
	d := min(cfg, MaxStatusInterval)
	if senderTimeout > 0 {
		d = min(d, senderTimeout/3)
	}
	return max(d, 100*time.Millisecond)
}

// session runs one replication connection. streamed reports whether it got
// as far as streaming (the backoff restarts then).
func (r *Reader) session(ctx context.Context, st *runState) (streamed bool, err error) {
	pc, err := r.replicationConfig()
	if err != nil {
		return false, &protocolError{err: err}
	}
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	ss, err := r.preflight(ctx, conn)
	if err != nil {
		return false, err
	}
	r.prog.baseline(ss.confirmed)
	r.prog.mu.Lock()
	start := r.prog.flush
	r.prog.mu.Unlock()
	args := []string{"proto_version '1'", "publication_names " + quoteLiteral(quoteIdent(r.cfg.Publication))}
	if err := pglogrepl.StartReplication(ctx, conn, r.cfg.Slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return false, err
	}
	interval := statusInterval(r.cfg.StatusInterval, ss.senderTimeout)
	r.log.Info("replication streaming", "slot", r.cfg.Slot, "publication", r.cfg.Publication,
		"from", change.Position(start), "walsender_pid", conn.PID(), "status_interval", interval)
	r.prog.setConnected(true, conn.PID())
	defer r.prog.setConnected(false, 0)
	st.dec.reset()
	defer st.dec.reset()
	return true, r.stream(ctx, conn, st, interval, ss.senderTimeout)
}

// stream is the connection goroutine's loop. It reads messages while the
// queue has room; when the queue is full it stops reading (TCP pushes back
// on the walsender) but keeps sending status updates on the timer, so the
// walsender never times out however long the consumer blocks.
func (r *Reader) stream(ctx context.Context, conn *pgconn.PgConn, st *runState, interval, senderTimeout time.Duration) error {
	// With no answer at all for this long, the connection is presumed dead
	// (status updates ask the server to answer after two quiet intervals).
	deadAfter := max(2*senderTimeout, time.Minute)
	var (
		pending    decoded
		hasPending bool
		open       bool
		now        = time.Now()
		nextStatus = now
		heard      = now // last message from the server, or when reading resumed
	)
	// Each read is bounded by the next status time through the socket's
	// read deadline, and ctx ending wakes a blocked read by moving the
	// deadline into the past. A context per read would do the same, at the
	// cost of setting up a context watcher for every message (a few % of
	// the reader's CPU in a backlog). A read that times out is resumed
	// where it stopped.
	sock := conn.Conn()
	stopWake := context.AfterFunc(ctx, func() { _ = sock.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		stopWake()
		_ = sock.SetReadDeadline(time.Time{}) // finish and Close use the connection
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	for {
		if ctx.Err() != nil {
			return r.finish(conn, st)
		}
		now = time.Now()
		if !now.Before(nextStatus) {
			quiet := now.Sub(heard)
			if !hasPending && quiet > deadAfter {
				return fmt.Errorf("cdc: no message from the server for %s", quiet.Round(time.Second))
			}
			if err := r.status(conn, now, !hasPending && quiet > 2*interval); err != nil {
				return err
			}
			nextStatus = now.Add(interval)
			if err := sock.SetReadDeadline(nextStatus); err != nil {
				return err
			}
			if ctx.Err() != nil {
				// ctx ended before the deadline was set: the wake-up may
				// have been overwritten.
				continue
			}
		}
		if hasPending {
			if st.q.TryPush(pending.batch, pending.bytes) {
				r.enqueued(st, pending)
				if pending.batch.Last {
					r.prog.handed(pendingTxn{pos: pending.batch.Pos, end: pending.end, commit: pending.batch.CommitTime})
				}
				hasPending, pending = false, decoded{}
				heard = time.Now()
				if open && !st.dec.inTxn {
					open = false
					r.prog.setOpen(false, time.Time{})
				}
				continue
			}
			timer.Reset(time.Until(nextStatus))
			select {
			case <-st.q.HasRoom():
			case <-timer.C:
			case <-ctx.Done():
			}
			timer.Stop()
			continue
		}

		msg, err := conn.ReceiveMessage(context.Background()) // bounded by the read deadline
		if err != nil {
			if ctx.Err() != nil || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return err
		}
		heard = time.Now()
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			cd, err := parseCopyData(m.Data)
			if err != nil {
				return &protocolError{err: err}
			}
			if cd.keepalive {
				r.prog.sawWAL(cd.walStart, cd.walStart)
				if cd.reply {
					if err := r.status(conn, heard, false); err != nil {
						return err
					}
				}
				continue
			}
			r.prog.sawWAL(cd.walStart, 0)
			out, ok, err := st.dec.decode(cd.wal)
			if err != nil {
				var re *TableRenamedError
				if errors.As(err, &re) {
					return re
				}
				return &protocolError{err: fmt.Errorf("at %s: %w", change.Position(cd.walStart), err)}
			}
			pending, hasPending = out, ok
			if now := st.dec.inTxn || hasPending; now != open {
				open = now
				r.prog.setOpen(open, st.dec.commitTime)
			}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		case *pgproto3.CopyDone:
			return errors.New("cdc: the server ended the replication stream")
		case *pgproto3.NoticeResponse:
			r.log.Info("server notice", "severity", m.Severity, "message", m.Message)
		}
	}
}

// copyData is a message of the replication stream: a primary keepalive
// (walStart is the server's WAL end) or XLogData carrying one pgoutput
// message.
type copyData struct {
	keepalive bool
	reply     bool
	walStart  uint64
	wal       []byte
}

func parseCopyData(data []byte) (copyData, error) {
	if len(data) == 0 {
		return copyData{}, errors.New("empty CopyData message")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return copyData{}, err
		}
		return copyData{keepalive: true, reply: ka.ReplyRequested, walStart: uint64(ka.ServerWALEnd)}, nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return copyData{}, err
		}
		return copyData{walStart: uint64(xld.WALStart), wal: xld.WALData}, nil
	}
	return copyData{}, fmt.Errorf("unknown CopyData message %q", data[0])
}

// status sends a standby status update.
func (r *Reader) status(conn *pgconn.PgConn, now time.Time, reply bool) error {
	write, flush := r.prog.positions()
	if err := sendStatus(conn, write, flush, now, reply); err != nil {
		return fmt.Errorf("cdc: sending standby status: %w", err)
	}
	return nil
}

// finish ends a connection cleanly: no more reading; the consumer gets a
// moment to acknowledge what it was handed, then the final status update
// confirms it.
func (r *Reader) finish(conn *pgconn.PgConn, st *runState) error {
	if wait := r.opts.FinalAckWait; wait > 0 {
		wctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		select {
		case <-st.handlerDone:
		case <-wctx.Done():
		}
		for r.prog.pending() > 0 && wctx.Err() == nil {
			select {
			case <-r.prog.acks:
			case <-wctx.Done():
			}
		}
	}
	err := r.status(conn, time.Now(), false)
	write, flush := r.prog.positions()
	r.log.Info("replication stopped", "slot", r.cfg.Slot, "received", change.Position(write), "confirmed", change.Position(flush))
	return err
}
