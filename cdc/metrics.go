package cdc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the reader's Prometheus metrics. The counters exist even
// without a Registerer, so code can count unconditionally.
type metrics struct {
	transactions prometheus.Counter
	changes      prometheus.Counter
	reconnects   prometheus.Counter
	truncates    *prometheus.CounterVec // by schema.table
}

// newMetrics registers the reader's metrics on reg (nil: none). The slot's
// retained WAL is not here: it needs a query, so the command polls SlotInfo.
func newMetrics(reg prometheus.Registerer, r *Reader) *metrics {
	m := &metrics{
		transactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deskhook_cdc_transactions_total",
			Help: "Committed transactions handed over by the replication reader.",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deskhook_cdc_changes_total",
			Help: "Row changes handed over by the replication reader.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deskhook_cdc_reconnects_total",
			Help: "Times the replication connection was lost or failed and retried.",
		}),
		truncates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deskhook_cdc_truncates_total",
			Help: "TRUNCATEs of published tables received (no events are made from them), by table.",
		}, []string{"table"}),
	}
	if reg == nil {
		return m
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.transactions, m.changes, m.reconnects, m.truncates,
		gauge("deskhook_cdc_replication_lag_seconds",
			"Age of the oldest transaction received and not yet acknowledged downstream (0 when caught up).",
			func() float64 { return r.prog.lagSeconds(time.Now()) }),
		gauge("deskhook_cdc_received_lsn", "Highest WAL position received from the server.",
			func() float64 { return float64(r.Stats().Received) }),
		gauge("deskhook_cdc_confirmed_lsn", "WAL position last confirmed to the server (standby status flush).",
			func() float64 { return float64(r.Stats().Confirmed) }),
		gauge("deskhook_cdc_server_wal_end_lsn", "The server's WAL end from its last keepalive.",
			func() float64 { return float64(r.Stats().ServerWALEnd) }),
		gauge("deskhook_cdc_connected", "1 while the replication stream is up.",
			func() float64 {
				if r.Stats().Connected {
					return 1
				}
				return 0
			}),
		gauge("deskhook_cdc_queue_bytes", "Estimated memory of batches decoded and not yet handled (queued, or in the handler's hands).",
			func() float64 {
				if q := r.queue.Load(); q != nil {
					_, b := q.Size()
					return float64(b)
				}
				return 0
			}),
	)
	return m
}
