package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
)

// Slot polling: every slotPollEvery, or slotPollFailing while the last
// poll failed, so readiness comes back soon after the database does.
const (
	slotPollEvery   = 10 * time.Second
	slotPollFailing = 2 * time.Second
)

// pollSource reads the source's state for /readyz, status and metrics:
// the slot (PostgreSQL), the stored position's binlog retention (MySQL).
func (d *Daemon) pollSource(ctx context.Context) {
	if d.mysql != nil {
		d.pollRetention(ctx)
		return
	}
	d.pollSlot(ctx)
}

// pollSlot reads the slot's state for /readyz, status and metrics.
func (d *Daemon) pollSlot(ctx context.Context) {
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		s, err := cdc.SlotInfo(qctx, d.cfg.Source.Postgres())
		cancel()
		if ctx.Err() != nil {
			return
		}
		d.health.setSlot(s, err)
		next := slotPollEvery
		if err == nil {
			d.metrics.retainedWAL.Set(float64(s.RetainedBytes))
		} else {
			next = slotPollFailing
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// health is what /readyz and status report.
type health struct {
	mu        sync.Mutex
	streamErr error
	slot      cdc.Slot
	slotErr   error
	slotAt    time.Time
	// MySQL: the stored position's retention.
	retention    binlog.Retention
	retentionErr error
}

func (h *health) setStreamErr(err error) {
	h.mu.Lock()
	h.streamErr = err
	h.mu.Unlock()
}

func (h *health) setSlot(s cdc.Slot, err error) {
	h.mu.Lock()
	h.slot, h.slotErr, h.slotAt = s, err, time.Now()
	h.mu.Unlock()
}

func (h *health) setRetention(r binlog.Retention, err error) {
	h.mu.Lock()
	h.retention, h.retentionErr = r, err
	h.mu.Unlock()
}

func (h *health) retentionSnapshot() (binlog.Retention, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.retention, h.retentionErr
}

func (h *health) snapshot() (slot cdc.Slot, slotAt time.Time, streamErr, slotErr error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.slot, h.slotAt, h.streamErr, h.slotErr
}

type daemonMetrics struct {
	retainedWAL    prometheus.Gauge
	streamRestarts prometheus.Counter
	ready          prometheus.Gauge
	positionLost   prometheus.Gauge
}

func newDaemonMetrics(reg prometheus.Registerer) *daemonMetrics {
	m := &daemonMetrics{
		retainedWAL: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deskhook_slot_retained_wal_bytes",
			Help: "WAL the replication slot keeps on the server (current LSN - restart_lsn), polled every 10s.",
		}),
		streamRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deskhook_stream_restarts_total",
			Help: "Times the pipeline restarted the replication stream after an error.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deskhook_ready",
			Help: "1 when /readyz answers ready, else 0 (as of its last evaluation).",
		}),
		positionLost: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deskhook_source_position_lost",
			Help: "1 while the stream is refused because the source lost what the store needs next (a slot dropped, " +
				"invalidated or moved; a binlog position purged or a server rebuilt; another database): only " +
				"`deskhook setup --accept-gap` goes on.",
		}),
	}
	reg.MustRegister(m.retainedWAL, m.streamRestarts, m.ready, m.positionLost)
	return m
}

// stallAfter: an acknowledged position that has not moved for this long
// while transactions wait means delivery into the outbox has stalled.
const stallAfter = time.Minute
