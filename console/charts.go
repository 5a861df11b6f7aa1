package console

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The overview's charts: Run samples the daemon's running totals every
// SampleEvery and keeps the last ChartSpan of samples in memory (nothing
// is stored: a restart starts the charts again). Each point is a rate
// over the minute before it, so the lines read as "per minute" whatever
// the sampling interval. The charts are SVG drawn here, on the server: they
// need no script.

// ChartSpan is how much history the charts show.
const ChartSpan = time.Hour

// rateWindow is the window each point's rate and quantiles are taken over.
const rateWindow = time.Minute

type sample struct {
	at time.Time
	c  Counters
}

type sampler struct {
	mu      sync.Mutex
	samples []sample // oldest first, at most max
	max     int
}

func newSampler(every time.Duration) *sampler {
	return &sampler{max: int(ChartSpan/every) + 1}
}

func (s *sampler) add(at time.Time, c Counters) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) >= s.max {
		n := copy(s.samples, s.samples[len(s.samples)-s.max+1:])
		s.samples = s.samples[:n]
	}
	s.samples = append(s.samples, sample{at: at, c: c})
}

func (s *sampler) snapshot() []sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sample(nil), s.samples...)
}

// point is one value of a series at a time; NaN is a gap (no data).
type point struct {
	at time.Time
	v  float64
}

// rates computes, for each sample, the rates and the latency quantiles
// over the rateWindow before it.
func rates(ss []sample) (events, attempts, p50, p95 []point) {
	j := 0
	for i := 1; i < len(ss); i++ {
		for j < i-1 && ss[i].at.Sub(ss[j+1].at) >= rateWindow {
			j++
		}
		dt := ss[i].at.Sub(ss[j].at).Minutes()
		if dt <= 0 {
			continue
		}
		a, b := ss[j].c, ss[i].c
		at := ss[i].at
		events = append(events, point{at, math.Max(0, b.EventsStored-a.EventsStored) / dt})
		attempts = append(attempts, point{at, math.Max(0, b.Attempts-a.Attempts) / dt})
		delta := bucketDelta(a.AttemptSeconds, b.AttemptSeconds)
		p50 = append(p50, point{at, 1000 * quantile(0.5, delta)})
		p95 = append(p95, point{at, 1000 * quantile(0.95, delta)})
	}
	return events, attempts, p50, p95
}

// bucketDelta is the histogram of the observations between two samples.
func bucketDelta(a, b []Bucket) []Bucket {
	if len(a) != len(b) {
		return b // the first sample had no histogram yet
	}
	out := make([]Bucket, len(b))
	for i := range b {
		out[i] = Bucket{UpperBound: b[i].UpperBound, Count: math.Max(0, b[i].Count-a[i].Count)}
	}
	return out
}

// quantile estimates the q-quantile of a cumulative histogram by linear
// interpolation within the bucket it falls in (as PromQL's
// histogram_quantile does); NaN when it is empty.
func quantile(q float64, bs []Bucket) float64 {
	if len(bs) == 0 || bs[len(bs)-1].Count == 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].Count
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				return lower // beyond the last bound: say the bound
			}
			if b.Count == below {
				return b.UpperBound
			}
			return lower + (b.UpperBound-lower)*(rank-below)/(b.Count-below)
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower
}

// chart is one small chart, ready for the template.
type chart struct {
	Title  string
	Series []chartSeries
	Max    string // the value at the top of the chart
	From   string // the time at its left edge
	Empty  bool
}

type chartSeries struct {
	Name  string
	Class string   // s1, s2: colours come from the stylesheet
	Lines []string // SVG polyline points, one per stretch without gaps
	Last  string   // the latest value, for the legend
}

// Chart geometry (the SVG's viewBox).
const chartW, chartH = 600.0, 110.0

func makeChart(title, unit string, names []string, series ...[]point) chart {
	c := chart{Title: title}
	var t0, t1 time.Time
	top := 0.0
	for _, s := range series {
		for _, p := range s {
			if t0.IsZero() || p.at.Before(t0) {
				t0 = p.at
			}
			if p.at.After(t1) {
				t1 = p.at
			}
			if !math.IsNaN(p.v) {
				top = math.Max(top, p.v)
			}
		}
	}
	if t0.IsZero() || !t1.After(t0) {
		c.Empty = true
		return c
	}
	if top == 0 {
		top = 1
	}
	top *= 1.1
	c.Max, c.From = formatValue(top, unit), t0.Local().Format("15:04:05")
	span := t1.Sub(t0).Seconds()
	for i, s := range series {
		cs := chartSeries{Name: names[i], Class: "s" + strconv.Itoa(i+1), Last: "–"}
		var line []string
		flush := func() {
			if len(line) > 0 {
				cs.Lines = append(cs.Lines, strings.Join(line, " "))
			}
			line = nil
		}
		for _, p := range s {
			if math.IsNaN(p.v) {
				flush()
				continue
			}
			x := chartW * p.at.Sub(t0).Seconds() / span
			y := chartH - chartH*p.v/top
			line = append(line, fmt.Sprintf("%.1f,%.1f", x, y))
			cs.Last = formatValue(p.v, unit)
		}
		flush()
		c.Series = append(c.Series, cs)
	}
	return c
}

func formatValue(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

// charts draws the overview's charts from the samples so far.
func (s *sampler) charts() []chart {
	events, attempts, p50, p95 := rates(s.snapshot())
	return []chart{
		makeChart("Events stored and delivery attempts per minute", "/min",
			[]string{"events", "attempts"}, events, attempts),
		makeChart("Delivery latency (request to response)", "ms",
			[]string{"p50", "p95"}, p50, p95),
	}
}
