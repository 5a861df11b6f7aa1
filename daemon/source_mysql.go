package daemon

// The MySQL/MariaDB source. The server keeps no position for deskhook: the
// outbox stores the binlog reader's resume token (a GTID, or a GTID set)
// with the position, in the same commit as the transaction's events, and
// the stream reads on from it after any crash or disconnect. A store that
// has never streamed starts at the server's position now (recorded before
// the first stream, so a restart cannot skip ahead); a store that has
// streamed never restarts elsewhere by itself: a stored position the
// server's binlogs no longer hold (purged, the server rebuilt or reset) is
// binlog.ErrPositionLost, which only `deskhook setup --accept-gap` accepts.
//
// Positions are the GTID sequence numbers of the one domain (MariaDB) or
// server UUID (MySQL) the server writes. A rebuilt server starts its
// sequence again, below positions the store holds, which the outbox would
// skip as already stored: so the high bits of a position carry an epoch
// (epochShift), which --accept-gap moves on when the sequence restarted.
// Positions, and the event ids made from them, stay unique and increasing.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/outbox"
)

// epochShift: a position is epoch<<epochShift | GTID sequence number. 2^48
// transactions are 9,000 years of 1,000 per second.
const (
	epochShift = 48
	seqMask    = change.Position(1)<<epochShift - 1
)

// epochOf is the epoch base of a position (its high bits).
func epochOf(p change.Position) change.Position { return p &^ seqMask }

// binlogPos prints a MySQL position: the sequence number, with its epoch
// ("2:57") once a gap on a rebuilt server moved the epoch on.
func binlogPos(p change.Position) string {
	if e := p >> epochShift; e > 0 {
		return fmt.Sprintf("%d:%d", e, p&seqMask)
	}
	return strconv.FormatUint(uint64(p), 10)
}

// parseBinlogPos reads what binlogPos prints.
func parseBinlogPos(s string) (change.Position, error) {
	e, seq, ok := strings.Cut(s, ":")
	if !ok {
		e, seq = "0", s
	}
	en, err1 := strconv.ParseUint(e, 10, 16)
	sn, err2 := strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil || change.Position(sn) > seqMask {
		return 0, fmt.Errorf("not a binlog position (sequence, or epoch:sequence): %q", s)
	}
	return change.Position(en)<<epochShift | change.Position(sn), nil
}

// mysqlSource is the binlog reader as the daemon's changeSource: it adds
// the store's epoch to the positions it hands over and takes it off those
// acknowledged.
type mysqlSource struct {
	rd   *binlog.Reader
	base atomic.Uint64 // the epoch base of the current Run (mysqlStart sets it)
}

func newMySQLSource(cfg binlog.Config, opts binlog.ReaderOptions) *mysqlSource {
	return &mysqlSource{rd: binlog.NewReader(cfg, opts)}
}

func (s *mysqlSource) Run(ctx context.Context, resume string, h change.Handler) error {
	return s.rd.Run(ctx, resume, &epochHandler{h: h, base: change.Position(s.base.Load())})
}

func (s *mysqlSource) Ack(pos change.Position) {
	if epochOf(pos) == change.Position(s.base.Load()) {
		s.rd.Ack(pos & seqMask)
	}
}

func (s *mysqlSource) Stats() streamStats {
	st := s.rd.Stats()
	base := change.Position(s.base.Load())
	at := func(p change.Position) change.Position {
		if p == 0 {
			return 0
		}
		return base | p
	}
	pending := 0
	if st.Handed > st.Acknowledged {
		pending = int(min(st.Handed-st.Acknowledged, 1<<30))
	}
	return streamStats{Connected: st.Connected, ServerID: st.ConnectionID, Received: at(st.Handed),
		Acknowledged: at(st.Acknowledged), Confirmed: at(st.Acknowledged), LastCommitTime: st.LastCommitTime,
		Pending: pending, Reconnects: st.Reconnects}
}

// epochHandler puts the epoch into the positions of the batches it passes
// on (the reader hands a batch over for good: it may be changed).
type epochHandler struct {
	h    change.Handler
	base change.Position
}

func (e *epochHandler) set(b *change.Batch) error {
	if b.Pos > seqMask {
		return fmt.Errorf("binlog: GTID sequence number %d is beyond the %d deskhook's positions hold", b.Pos, seqMask)
	}
	b.Pos |= e.base
	// The token stored with the transaction carries where it is in the
	// server's binlog: a server reset or rebuilt since is told by it.
	b.Resume = binlog.WithAnchor(b.Resume, b.Anchor)
	return nil
}

func (e *epochHandler) Handle(ctx context.Context, b *change.Batch) error {
	if err := e.set(b); err != nil {
		return err
	}
	return e.h.Handle(ctx, b)
}

func (e *epochHandler) HandleBatches(ctx context.Context, bs []*change.Batch) error {
	for _, b := range bs {
		if err := e.set(b); err != nil {
			return err
		}
	}
	if bh, ok := e.h.(change.BatchHandler); ok {
		return bh.HandleBatches(ctx, bs)
	}
	for _, b := range bs {
		if err := e.h.Handle(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// storeSourceError is a store filled from another source than source.dsn.
type storeSourceError struct{ store, stored, server string }

func (e *storeSourceError) Error() string {
	if e.stored == "" {
		return fmt.Sprintf("store %s was filled from a source that is not a MySQL/MariaDB binlog (it holds no "+
			"binlog position): its positions mean nothing here. Point store.path at a new file for this source", e.store)
	}
	return fmt.Sprintf("store %s was filled from %s, but source.dsn is %s: its positions mean nothing here. Point "+
		"store.path at a new file for this source, or run `deskhook setup --accept-gap` to go on in this store", e.store,
		e.stored, e.server)
}

// mysqlStart returns the token to stream from and sets the epoch: the
// stored one; for a store that has never streamed, the server's position
// now, recorded first.
func (d *Daemon) mysqlStart(ctx context.Context) (string, error) {
	pos, resume, err := d.ob.Resume()
	if err != nil {
		return "", err
	}
	mark, err := d.ob.SourceMark()
	if err != nil {
		return "", err
	}
	cfg := d.cfg.Source.MySQL()
	if pos == 0 && mark.Source == "" {
		st, err := binlog.Now(ctx, cfg)
		if err != nil {
			return "", err
		}
		if err := d.ob.RecordStart(ctx, st.Source, st.Resume); err != nil {
			return "", err
		}
		d.log.Info("binlog: a new store starts at the server's current position", "gtid", st.Resume)
		d.mysql.base.Store(0)
		return st.Resume, nil
	}
	id, err := binlog.SourceID(ctx, cfg)
	if err != nil {
		return "", err
	}
	if resume == "" || mark.Source != id {
		return "", &storeSourceError{store: d.cfg.Store.Path, stored: mark.Source, server: id}
	}
	d.mysql.base.Store(uint64(epochOf(max(pos, mark.Confirmed))))
	return resume, nil
}

// isPositionLost reports whether err means the source lost the stored
// position (a slot that does not fit the store, a purged binlog
// position): only an operator goes on.
func isPositionLost(err error) bool {
	var se *storeSourceError
	return errors.Is(err, binlog.ErrPositionLost) || errors.Is(err, cdc.ErrSlotGap) || errors.As(err, &se)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// binlogMetrics are the retention gauges of a MySQL source.
type binlogMetrics struct {
	margin prometheus.Gauge
	files  prometheus.Gauge
}

func newBinlogMetrics(reg prometheus.Registerer) *binlogMetrics {
	m := &binlogMetrics{
		margin: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deskhook_binlog_margin_files",
			Help: "Binlog files the server can purge before the stored position is lost (polled every 10s; the " +
				"position is in the active file, which is never purged, when this is deskhook_binlog_files - 1).",
		}),
		files: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deskhook_binlog_files",
			Help: "Binlog files on the server (polled every 10s).",
		}),
	}
	reg.MustRegister(m.margin, m.files)
	return m
}

// pollRetention reads how far the stored position stands from the oldest
// binlog, for /readyz, status and the metrics.
func (d *Daemon) pollRetention(ctx context.Context) {
	m := newBinlogMetrics(d.reg)
	for {
		next := slotPollEvery
		_, resume, err := d.ob.Resume()
		if err == nil && resume != "" {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var r binlog.Retention
			r, err = binlog.CheckRetention(qctx, d.cfg.Source.MySQL(), resume)
			cancel()
			if ctx.Err() != nil {
				return
			}
			d.health.setRetention(r, err)
			if err == nil {
				m.margin.Set(float64(r.FilesBefore))
				m.files.Set(float64(r.Files))
			} else {
				next = slotPollFailing
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// retentionProblems are the readiness problems of the stored binlog
// position: lost, or about to be.
func retentionProblems(r binlog.Retention, err, streamErr error, margin int) []string {
	switch {
	case err != nil && errors.Is(err, binlog.ErrPositionLost) && errors.Is(streamErr, binlog.ErrPositionLost):
		return nil // the stream says it
	case err != nil:
		return []string{"binlog retention: " + err.Error()}
	case retentionAtRisk(r, margin):
		return []string{retentionRisk(r, margin)}
	}
	return nil
}

// retentionAtRisk: fewer than margin binlog files stand between the oldest
// and the one holding the stored position, which is not the active one
// (the server never purges that).
func retentionAtRisk(r binlog.Retention, margin int) bool {
	return r.Files > 0 && r.FilesBefore < margin && r.FilesBefore < r.Files-1
}

func retentionRisk(r binlog.Retention, margin int) string {
	return fmt.Sprintf("binlog retention: the stored position %s is in binlog file %d of %d; the server may purge "+
		"only %d file(s) before it is lost (admin.min_binlog_margin %d): deskhook is behind the server's binlog — "+
		"see why (the stream, the store) before the server purges it (binlog_expire_logs_seconds)",
		r.Stored, r.FilesBefore+1, r.Files, r.FilesBefore, margin)
}

// BinlogStatus is a MySQL source's stored position as the server sees it.
type BinlogStatus struct {
	Error string `json:"error,omitempty"`
	// Stored is the stored resume token (a GTID or GTID set); Oldest what
	// the oldest binlog starts after; Current where the binlog ends.
	Stored  string `json:"stored_gtid"`
	Oldest  string `json:"oldest_gtid"`
	Current string `json:"current_gtid"`
	// Files counts the binlogs; MarginFiles (and MarginBytes) those the
	// server can purge before the stored position is lost; AtRisk says
	// that is below admin.min_binlog_margin.
	Files       int   `json:"files"`
	MarginFiles int   `json:"margin_files"`
	MarginBytes int64 `json:"margin_bytes"`
	AtRisk      bool  `json:"at_risk"`
}

// binlogStatus reads the stored position's retention from the server.
func binlogStatus(ctx context.Context, cfg *Config, resume string) *BinlogStatus {
	st := &BinlogStatus{Stored: binlog.TokenGTID(resume)}
	if resume == "" {
		st.Error = "no stored position yet: the daemon starts at the server's current position"
		return st
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := binlog.CheckRetention(ctx, cfg.Source.MySQL(), resume)
	st.Oldest, st.Current, st.Files, st.MarginFiles, st.MarginBytes = r.Oldest, r.Current, r.Files, r.FilesBefore,
		r.BytesBefore
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.AtRisk = retentionAtRisk(r, cfg.Admin.MinBinlogMargin)
	return st
}

// mysqlPositions rewrites the store's positions in os as MySQL's
// (binlogPos), and adds the resume token.
func mysqlPositions(ob *outbox.Outbox, os *OutboxStatus) error {
	pos, resume, err := ob.Resume()
	if err != nil {
		return err
	}
	os.Position, os.Resume, os.ResumeToken = binlogPos(pos), binlog.TokenGTID(resume), resume
	m, err := ob.SourceMark()
	if err != nil {
		return err
	}
	os.Confirmed = ""
	if m.Confirmed > 0 {
		os.Confirmed = binlogPos(m.Confirmed)
	}
	gaps, err := ob.Gaps()
	if err != nil {
		return err
	}
	os.Gaps = os.Gaps[:0]
	for _, g := range gaps {
		os.Gaps = append(os.Gaps, GapStatus{From: binlogPos(g.From), To: binlogPos(g.To), At: g.At, Reason: g.Reason,
			Resume: g.Resume})
	}
	return nil
}
