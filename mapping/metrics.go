package mapping

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	mapped   map[string]prometheus.Counter // children of mappedVe, one per event type
	mappedVe *prometheus.CounterVec        // events by type
	badRows  *prometheus.CounterVec        // by table
	lookups  *prometheus.CounterVec        // rows read from the source, by table
	tickets  prometheus.Gauge              // tickets held in the state
	bytes    prometheus.Gauge              // the state's counted memory
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		mappedVe: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deskhook_events_mapped_total",
			Help: "Events the mapper produced, by event type.",
		}, []string{"event"}),
		badRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deskhook_mapping_bad_rows_total",
			Help: "Row changes the mapper could not use (logged and skipped), by table.",
		}, []string{"table"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deskhook_mapping_source_lookups_total",
			Help: "Reads from the source for rows or ticket facts the stream had not shown, by table.",
		}, []string{"table"}),
		tickets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deskhook_mapping_state_tickets",
			Help: "Tickets held in the mapper's state.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "deskhook_mapping_state_bytes",
			Help: "Memory held by the mapper's state of tickets and users (bounded by three quarters and a quarter of the state's byte budget).",
		}),
		mapped: map[string]prometheus.Counter{},
	}
	for _, ev := range AllEvents {
		m.mapped[ev] = m.mappedVe.WithLabelValues(ev)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.mappedVe, m.badRows, m.lookups, m.tickets, m.bytes} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
