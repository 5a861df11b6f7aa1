package sender

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sender's series. Queue depth, oldest pending age and dead
// letters are read from the outbox at scrape time, so they are exact and
// cost nothing between scrapes.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	deliveries *prometheus.CounterVec
	attempts   *prometheus.HistogramVec
	retries    *prometheus.CounterVec
}

type endpointMetrics struct {
	m       *metrics
	name    string
	latency prometheus.Observer
	retries prometheus.Counter
	// outcomes caches the deliveries counters by event and outcome (used
	// by the endpoint's dispatcher goroutine alone): a label lookup per
	// delivery costs more than the increment.
	outcomes map[[2]string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Sender) *metrics {
	m := &metrics{reg: reg}
	if reg == nil {
		return m
	}
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deskhook_deliveries_total",
		Help: "Delivery attempts by endpoint, event and outcome (delivered, failed: will be retried, dead: dead-lettered).",
	}, []string{"endpoint", "event", "outcome"})
	m.attempts = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "deskhook_delivery_attempt_seconds",
		Help:    "Duration of delivery attempts (request sent to response read).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"endpoint"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "deskhook_delivery_transport_retries_total",
		Help: "Immediate retries of a request within one delivery attempt, after the connection was refused or reset.",
	}, []string{"endpoint"})
	for _, c := range []prometheus.Collector{m.deliveries, m.attempts, m.retries, &queueCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			s.log.Warn("sender: metric not registered", "err", err)
			continue
		}
		m.collectors = append(m.collectors, c)
	}
	return m
}

func (m *metrics) forEndpoint(name string) endpointMetrics {
	em := endpointMetrics{m: m, name: name, outcomes: map[[2]string]prometheus.Counter{}}
	if m.reg != nil {
		em.latency = m.attempts.WithLabelValues(name)
		em.retries = m.retries.WithLabelValues(name)
	}
	return em
}

func (m *metrics) forget(name string) {
	if m.reg == nil {
		return
	}
	m.deliveries.DeletePartialMatch(prometheus.Labels{"endpoint": name})
	m.attempts.DeleteLabelValues(name)
	m.retries.DeleteLabelValues(name)
}

func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}

func (em endpointMetrics) attempt(_ string, res attemptResult) {
	if em.latency != nil {
		em.latency.Observe(res.attempt.Latency.Seconds())
	}
}

func (em endpointMetrics) transportRetry() {
	if em.retries != nil {
		em.retries.Inc()
	}
}

func (em endpointMetrics) outcome(event, outcome string) {
	if em.m.reg == nil {
		return
	}
	c := em.outcomes[[2]string{event, outcome}]
	if c == nil {
		c = em.m.deliveries.WithLabelValues(em.name, event, outcome)
		em.outcomes[[2]string{event, outcome}] = c
	}
	c.Inc()
}

var (
	descDepth = prometheus.NewDesc("deskhook_queue_depth",
		"Events waiting for delivery to the endpoint.", []string{"endpoint"}, nil)
	descOldest = prometheus.NewDesc("deskhook_queue_oldest_pending_seconds",
		"Age of the oldest event waiting for the endpoint (0 when none).", []string{"endpoint"}, nil)
	descDead = prometheus.NewDesc("deskhook_dead_letters",
		"Dead letters of the endpoint.", []string{"endpoint"}, nil)
	descDisabled = prometheus.NewDesc("deskhook_endpoint_disabled",
		"1 when the endpoint is disabled (by 410 Gone or an operator).", []string{"endpoint"}, nil)
	descOrphaned = prometheus.NewDesc("deskhook_endpoint_orphaned",
		"1 when the endpoint is no longer in the configuration but its queue and dead letters are kept "+
			"(nothing is sent): put it back, or drop them with deskhook endpoints forget.", []string{"endpoint"}, nil)
)

// queueCollector reads the queues' state from the outbox at scrape time.
type queueCollector struct{ s *Sender }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDepth
	ch <- descOldest
	ch <- descDead
	ch <- descDisabled
	ch <- descOrphaned
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	eps, err := c.s.ob.Endpoints()
	if err != nil {
		c.s.log.Error("reading queue metrics from the outbox", "err", err)
		return
	}
	now := time.Now()
	for _, e := range eps {
		oldest := 0.0
		if !e.Oldest.IsZero() {
			oldest = max(now.Sub(e.Oldest).Seconds(), 0)
		}
		disabled, orphaned := 0.0, 0.0
		if e.Disabled {
			disabled = 1
		}
		if e.Orphaned() {
			orphaned = 1
		}
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(e.Depth), e.Name)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, oldest, e.Name)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(e.DeadLetters), e.Name)
		ch <- prometheus.MustNewConstMetric(descDisabled, prometheus.GaugeValue, disabled, e.Name)
		ch <- prometheus.MustNewConstMetric(descOrphaned, prometheus.GaugeValue, orphaned, e.Name)
	}
}
