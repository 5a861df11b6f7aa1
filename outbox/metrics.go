package outbox

import (
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the outbox's own series; per-endpoint queue series are the
// sender's (it reads them with Endpoints).
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	commits    prometheus.Counter
	commitDur  prometheus.Histogram
	events     prometheus.Counter
	results    prometheus.Counter
	stopped    prometheus.Gauge
	logPruned  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, o *Outbox) *metrics {
	m := &metrics{reg: reg}
	if reg == nil {
		return m
	}
	m.commits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "deskhook_outbox_commits_total", Help: "Group commits of the outbox file (bbolt's two fdatasyncs each).",
	})
	m.commitDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "deskhook_outbox_commit_seconds",
		Help:    "Time to write and fsync one group commit.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.events = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "deskhook_outbox_events_stored_total", Help: "Events written to the outbox.",
	})
	m.results = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "deskhook_outbox_results_recorded_total", Help: "Delivery results written to the outbox.",
	})
	m.stopped = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "deskhook_outbox_intake_stopped", Help: "1 when a write error stopped the outbox's intake.",
	})
	size := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deskhook_outbox_file_bytes", Help: "Size of the outbox file.",
	}, func() float64 {
		fi, err := os.Stat(o.path)
		if err != nil {
			return 0
		}
		return float64(fi.Size())
	})
	position := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deskhook_outbox_stored_position", Help: "The source position up to which everything is stored.",
	}, func() float64 { return float64(o.Position()) })
	m.logPruned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "deskhook_outbox_log_pruned_total", Help: "Delivery log entries deleted by retention.",
	})
	logEntries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deskhook_outbox_log_entries", Help: "Entries (delivery attempts) in the delivery log.",
	}, func() float64 { return float64(o.logCount.Load()) })
	logBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "deskhook_outbox_log_bytes",
		Help: "Size of the delivery log as delivery_log.max_bytes counts it: entries, index keys, and the bodies of the events they point at.",
	}, func() float64 { return float64(o.logBytes.Load()) })
	for _, c := range []prometheus.Collector{m.commits, m.commitDur, m.events, m.results, m.stopped, size, position,
		m.logPruned, logEntries, logBytes} {
		if err := reg.Register(c); err == nil {
			m.collectors = append(m.collectors, c)
		} else {
			o.log.Warn("outbox: metric not registered", "err", err)
		}
	}
	return m
}

func (m *metrics) committed(d time.Duration, events, results int) {
	if m.reg == nil {
		return
	}
	m.commits.Inc()
	m.commitDur.Observe(d.Seconds())
	m.events.Add(float64(events))
	m.results.Add(float64(results))
}

func (m *metrics) pruned(n int) {
	if m.reg != nil && n > 0 {
		m.logPruned.Add(float64(n))
	}
}

func (m *metrics) intakeStopped() {
	if m.reg != nil {
		m.stopped.Set(1)
	}
}

func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}
