package cdc

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/jackc/pgx/v5/pgconn"
)

// pendingTxn is a transaction handed over (its Last chunk queued) and not
// yet acknowledged.
type pendingTxn struct {
	pos    change.Position
	end    uint64 // end of its commit record: what confirming it means
	commit time.Time
}

// progress is the reader's shared bookkeeping: what was received, handed
// over and acknowledged, and from that, what may be confirmed to the
// server. The connection goroutine, Ack callers and Stats use it.
type progress struct {
	mu sync.Mutex
	// acked is the highest position acknowledged downstream.
	acked change.Position
	// flush is the highest LSN confirmable from acknowledgements (or the
	// slot's confirmed position, which we never go below).
	flush uint64
	// outstanding are handed-over transactions not yet acknowledged, in
	// commit order: outstanding[head:].
	outstanding []pendingTxn
	head        int
	// open: a transaction has begun on the wire and not been handed over
	// in full (including a decoded chunk still waiting for queue room).
	open       bool
	openCommit time.Time
	serverEnd  uint64 // WAL end from the server's last keepalive
	received   uint64
	sent       uint64 // flush position last sent
	lastCommit time.Time
	connected  bool
	pid        uint32
	reconnects uint64
	acks       chan struct{} // signalled on every Ack that advances
}

func newProgress() *progress { return &progress{acks: make(chan struct{}, 1)} }

// ack records that every transaction with position <= pos is durable
// downstream.
func (p *progress) ack(pos change.Position) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos <= p.acked {
		return
	}
	p.acked = pos
	popped := false
	for p.head < len(p.outstanding) && p.outstanding[p.head].pos <= pos {
		// Confirming the end of the commit record tells the server not
		// to send this transaction again (it resends commits at or after
		// the confirmed position).
		p.flush = max(p.flush, p.outstanding[p.head].end)
		p.outstanding[p.head] = pendingTxn{}
		p.head++
		popped = true
	}
	if p.head == len(p.outstanding) {
		p.outstanding, p.head = p.outstanding[:0], 0
	} else if p.head > 4096 && p.head*2 > len(p.outstanding) {
		p.outstanding, p.head = append(p.outstanding[:0], p.outstanding[p.head:]...), 0
	}
	if !popped {
		// A position we did not hand over in this run (the consumer's
		// stored position from an earlier one): its commit LSN is safe to
		// confirm; the server may send that one transaction again and the
		// reader drops it (pos <= acked).
		p.flush = max(p.flush, uint64(pos))
	}
	select { // wake a waiting finish
	case p.acks <- struct{}{}:
	default:
	}
}

// handed records a transaction whose Last chunk was queued. The consumer
// may have acknowledged it already (it runs concurrently).
func (p *progress) handed(t pendingTxn) {
	p.mu.Lock()
	if t.pos <= p.acked {
		p.flush = max(p.flush, t.end)
	} else {
		p.outstanding = append(p.outstanding, t)
	}
	p.mu.Unlock()
}

func (p *progress) setOpen(open bool, commit time.Time) {
	p.mu.Lock()
	p.open, p.openCommit = open, commit
	if open {
		p.lastCommit = commit
	}
	p.mu.Unlock()
}

func (p *progress) sawWAL(received, serverEnd uint64) {
	p.mu.Lock()
	p.received = max(p.received, received)
	p.serverEnd = max(p.serverEnd, serverEnd)
	p.mu.Unlock()
}

// baseline raises the confirmable position to the slot's confirmed
// position: reporting less could move the slot backwards on some servers.
func (p *progress) baseline(slotConfirmed uint64) {
	p.mu.Lock()
	p.flush = max(p.flush, slotConfirmed)
	p.received = max(p.received, slotConfirmed)
	p.mu.Unlock()
}

func (p *progress) idleLocked() bool { return !p.open && p.head == len(p.outstanding) }

// positions returns what to report: write = received, flush = apply =
// acknowledged; when nothing is pending, the server's WAL end (so an idle
// slot retains no WAL). It records flush as sent.
func (p *progress) positions() (write, flush uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	flush = p.flush
	if p.idleLocked() {
		flush = max(flush, p.serverEnd)
	}
	write = max(p.received, flush)
	p.sent = max(p.sent, flush)
	return write, flush
}

func (p *progress) ackedPos() change.Position {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

func (p *progress) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.outstanding) - p.head
}

// lagSeconds is how far behind the commit the reader is: the age of the
// oldest transaction received and not yet acknowledged, 0 when caught up.
func (p *progress) lagSeconds(now time.Time) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.head < len(p.outstanding):
		return max(0, now.Sub(p.outstanding[p.head].commit).Seconds())
	case p.open:
		return max(0, now.Sub(p.openCommit).Seconds())
	}
	return 0
}

func (p *progress) setConnected(ok bool, pid uint32) {
	p.mu.Lock()
	p.connected, p.pid = ok, pid
	p.mu.Unlock()
}

// Stats is a snapshot of the reader's state, for /readyz, status and metrics.
type Stats struct {
	Connected bool
	// BackendPID is the walsender's process id while connected.
	BackendPID uint32
	// Received is the highest WAL position received from the server.
	Received change.Position
	// Acknowledged is the highest position passed to Ack.
	Acknowledged change.Position
	// Confirmed is the flush position last sent to the server.
	Confirmed change.Position
	// ServerWALEnd is the server's WAL end from its last keepalive.
	ServerWALEnd change.Position
	// LastCommitTime is the commit time of the last transaction received.
	LastCommitTime time.Time
	// Pending counts transactions handed over and not yet acknowledged.
	Pending int
	// Reconnects counts connections after the first in this Reader.
	Reconnects uint64
}

func (p *progress) stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Connected: p.connected, BackendPID: p.pid,
		Received: change.Position(p.received), Acknowledged: p.acked,
		Confirmed: change.Position(p.sent), ServerWALEnd: change.Position(p.serverEnd),
		LastCommitTime: p.lastCommit, Pending: len(p.outstanding) - p.head,
		Reconnects: p.reconnects,
	}
}

// sendStatus sends a standby status update. It is encoded here rather than
// with pglogrepl.SendStandbyStatusUpdate, which would replace a zero flush
// position with the write position and so confirm what is not acknowledged.
func sendStatus(conn *pgconn.PgConn, write, flush uint64, now time.Time, reply bool) error {
	buf := make([]byte, 0, 1+4+34)
	buf = append(buf, 'd')
	buf = binary.BigEndian.AppendUint32(buf, 4+34)
	buf = append(buf, 'r')
	buf = binary.BigEndian.AppendUint64(buf, write)
	buf = binary.BigEndian.AppendUint64(buf, flush) // flush
	buf = binary.BigEndian.AppendUint64(buf, flush) // apply
	buf = binary.BigEndian.AppendUint64(buf, uint64(now.UnixMicro()-946684800_000000))
	if reply {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	return conn.Frontend().SendUnbufferedEncodedCopyData(buf)
}
