package daemon

import (
	"context"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
)

// changeSource is what the daemon needs of a change stream: the
// PostgreSQL reader (cdc, behind pgSource) or the MySQL/MariaDB binlog
// reader (binlog, behind mysqlSource, source_mysql.go).
type changeSource interface {
	// Run streams committed transactions to h from resume — the token
	// stored with the outbox's position (always "" for PostgreSQL, whose
	// slot keeps the position) — until ctx ends (nil) or an error no retry
	// heals.
	Run(ctx context.Context, resume string, h change.Handler) error
	// Ack says every transaction at or before pos is durable in the
	// outbox (the outbox's OnDurable).
	Ack(pos change.Position)
	// Stats is the stream's state, for /readyz, status and the stall check.
	Stats() streamStats
}

// streamStats is a stream's state in the daemon's terms.
type streamStats struct {
	Connected bool
	// ServerID is the server's id of the stream's connection: the
	// walsender's pid (PostgreSQL), the replication connection's id (MySQL).
	ServerID uint32
	// Received is the last transaction received (handed over, for the
	// binlog); Acknowledged the highest passed to Ack; Confirmed the one
	// last confirmed to the server (the binlog's: the acknowledged one,
	// which the store holds).
	Received, Acknowledged, Confirmed change.Position
	LastCommitTime                    time.Time
	// Pending counts transactions handed over and not yet acknowledged
	// (for the binlog, GTIDs between the two, unwatched ones included).
	Pending    int
	Reconnects uint64
}

// lookup is the source's by-primary-key reader for the mapping.
type lookup interface {
	mapping.Source
	Close()
}

// pgSource is cdc's Reader as a changeSource.
type pgSource struct{ rd *cdc.Reader }

func (s pgSource) Run(ctx context.Context, _ string, h change.Handler) error { return s.rd.Run(ctx, h) }

func (s pgSource) Ack(pos change.Position) { s.rd.Ack(pos) }

func (s pgSource) Stats() streamStats {
	st := s.rd.Stats()
	return streamStats{Connected: st.Connected, ServerID: st.BackendPID, Received: st.Received,
		Acknowledged: st.Acknowledged, Confirmed: st.Confirmed, LastCommitTime: st.LastCommitTime, Pending: st.Pending,
		Reconnects: st.Reconnects}
}

// posString prints a position of the daemon's source as its operator reads
// it: an LSN (PostgreSQL), a GTID sequence number (MySQL, binlogPos).
func (d *Daemon) posString(p change.Position) string {
	if d.mysql != nil {
		return binlogPos(p)
	}
	return p.String()
}

// streamStatus is the stream's state as status shows it.
func (d *Daemon) streamStatus() *StreamStatus {
	rs := d.src.Stats()
	st := &StreamStatus{Connected: rs.Connected, Received: d.posString(rs.Received),
		Acknowledged: d.posString(rs.Acknowledged), Confirmed: d.posString(rs.Confirmed),
		LastCommitTime: rs.LastCommitTime, Pending: rs.Pending, Reconnects: rs.Reconnects}
	if d.mysql != nil {
		st.ConnectionID = rs.ServerID
	} else {
		st.WalsenderPID = rs.ServerID
	}
	return st
}

// sourceNow fills st with the source's state as it is now (the poll behind
// /readyz may be 10s old): the slot (PostgreSQL), the stored position's
// binlog retention (MySQL).
func (d *Daemon) sourceNow(ctx context.Context, st *Status) {
	if d.mysql != nil {
		_, resume, err := d.ob.Resume()
		if err != nil {
			st.Binlog = &BinlogStatus{Error: err.Error()}
			return
		}
		st.Binlog = binlogStatus(ctx, d.cfg, resume)
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	slot, slotErr := cdc.SlotInfo(qctx, d.cfg.Source.Postgres())
	cancel()
	d.health.setSlot(slot, slotErr)
	st.Slot = toSlotStatus(d.cfg.Source.Slot, slot, slotErr)
}
