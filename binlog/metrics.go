package binlog

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the reader's Prometheus metrics. The counters exist even
// without a Registerer, so code can count unconditionally.
type metrics struct {
	transactions prometheus.Counter
	changes      prometheus.Counter
	reconnects   prometheus.Counter
}

// newMetrics registers the reader's metrics on reg (nil: none).
func newMetrics(reg prometheus.Registerer, r *Reader) *metrics {
	m := &metrics{
		transactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deskhook_binlog_transactions_total",
			Help: "Committed transactions (and position-only progress batches) handed over by the binlog reader.",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deskhook_binlog_changes_total",
			Help: "Row changes handed over by the binlog reader.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deskhook_binlog_reconnects_total",
			Help: "Times the binlog connection was lost or failed and retried.",
		}),
	}
	if reg == nil {
		return m
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(m.transactions, m.changes, m.reconnects,
		gauge("deskhook_binlog_handed_position", "GTID sequence number of the last transaction handed over.",
			func() float64 { return float64(r.Stats().Handed) }),
		gauge("deskhook_binlog_connected", "1 while the binlog stream is up.",
			func() float64 {
				if r.Stats().Connected {
					return 1
				}
				return 0
			}),
		gauge("deskhook_binlog_queue_bytes", "Estimated memory of batches decoded and not yet handled.",
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
