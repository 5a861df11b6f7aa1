package daemon

// Schema drift while the daemon runs. A migration that rebuilds a table
// (CREATE TABLE t2 (LIKE t); DROP TABLE t; ALTER TABLE t2 RENAME TO t)
// silently drops it from the publication, and a renamed column silently
// changes what the mapping can see: neither stops the stream. So the
// daemon verifies the source (cdc.Verify or binlog.Verify, against
// mapping.Needs) at start, after every stream restart, whenever the stream
// describes a watched table anew (a Relation message; a table map or DDL
// in the binlog), and every source.verify_interval. Each problem is logged
// once at ERROR with its fix (again only if it changes), its end at INFO;
// while any remains /readyz is 503 with the reasons and
// deskhook_source_problems{table,problem} is 1.

import (
	"context"
	"database/sql/driver"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/mapping"
)

// verifyMinGap spaces verifications that the stream asks for (a new
// connection describes every table, one Relation message each).
const verifyMinGap = time.Second

// sourceCheck is the daemon's view of the source's schema.
type sourceCheck struct {
	interval time.Duration
	// whole labels the problems of the source as a whole (Table ""): the
	// publication, the MySQL server.
	whole   string
	log     *slog.Logger
	gauge   *prometheus.GaugeVec
	kickCh  chan struct{}
	verify  func(context.Context) ([]mapping.Problem, error)
	timeout time.Duration

	mu       sync.Mutex
	done     bool              // a verification has finished (whatever its outcome)
	problems []mapping.Problem // as of the last verification that could look (each logged when it appeared or changed)
	lookErr  string            // the last failure to look ("": none since it last worked)
	// readErr is the last error reading rows from the source while
	// mapping (nil once a batch maps again).
	readErr error
}

func newSourceCheck(cfg SourceConfig, log *slog.Logger, reg prometheus.Registerer) *sourceCheck {
	s := &sourceCheck{
		interval: cfg.VerifyInterval, log: log, kickCh: make(chan struct{}, 1), timeout: 30 * time.Second,
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deskhook_source_problems",
			Help: "1 for each problem of the source's schema (a table missing, unreadable or not published, a column " +
				"the mapping reads missing or of another type, the replica identity), by table and problem.",
		}, []string{"table", "problem"}),
	}
	reg.MustRegister(s.gauge)
	if cfg.IsMySQL() {
		m := cfg.MySQL()
		s.whole = "server"
		s.verify = func(ctx context.Context) ([]mapping.Problem, error) { return binlog.Verify(ctx, m) }
	} else {
		p := cfg.Postgres()
		s.whole = "publication " + p.Publication
		s.verify = func(ctx context.Context) ([]mapping.Problem, error) { return cdc.Verify(ctx, p) }
	}
	return s
}

// kick asks for a verification soon; it never blocks.
func (s *sourceCheck) kick() {
	select {
	case s.kickCh <- struct{}{}:
	default:
	}
}

// relation is the reader's OnRelation hook.
func (s *sourceCheck) relation(string) { s.kick() }

// run verifies on each kick (the stream kicks at start, after any setup,
// and after every restart) and every verify_interval, until ctx ends.
func (s *sourceCheck) run(ctx context.Context) {
	t := time.NewTimer(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kickCh:
		}
		s.once(ctx)
		// Kicks that came while it ran are served after the gap.
		select {
		case <-ctx.Done():
			return
		case <-time.After(verifyMinGap):
		}
		t.Reset(s.interval)
	}
}

// once verifies the source and reports what changed.
func (s *sourceCheck) once(ctx context.Context) {
	vctx, cancel := context.WithTimeout(ctx, s.timeout)
	problems, err := s.verify(vctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	if err != nil {
		// Not drift: the stream's own state says whether the database is
		// reachable. The last known problems stand. Said once, until it
		// works again (a database that is down fails every verification,
		// each with its own message).
		if s.lookErr == "" {
			level := slog.LevelWarn
			if isConnectError(err) {
				level = slog.LevelDebug // the stream says it, once
			}
			s.log.Log(ctx, level, "cannot verify the source's schema; keeping the last verification's result", "err", err)
		}
		s.lookErr = err.Error()
		return
	}
	if s.lookErr != "" {
		s.lookErr = ""
		s.log.Info("source schema verification works again")
	}
	key := func(p mapping.Problem) string { return p.Table + "\x00" + p.Kind }
	before := make(map[string]mapping.Problem, len(s.problems))
	for _, p := range s.problems {
		before[key(p)] = p
	}
	now := make(map[string]bool, len(problems))
	s.gauge.Reset()
	for _, p := range problems {
		now[key(p)] = true
		s.gauge.WithLabelValues(s.label(p), p.Kind).Set(1)
		if old, ok := before[key(p)]; ok && old == p {
			continue // unchanged: said already
		}
		s.log.Error("source schema problem: "+p.Detail, "table", s.label(p), "problem", p.Kind, "fix", p.Fix)
	}
	for _, p := range s.problems {
		if !now[key(p)] {
			s.log.Info("source schema problem resolved", "table", s.label(p), "problem", p.Kind)
		}
	}
	s.problems = problems
}

// label is a problem's table label: the publication's name (the server,
// for MySQL) for problems of the source as a whole.
func (s *sourceCheck) label(p mapping.Problem) string {
	if p.Table == "" {
		return s.whole
	}
	return p.Table
}

// isConnectError reports whether err is a failure to reach the source at
// all, which the stream reports itself, once.
func isConnectError(err error) bool {
	var ne *net.OpError
	return cdc.IsConnectError(err) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn)
}

// setReadErr records the outcome of reading the source while mapping: an
// error makes the daemon unready at once; the first success after one
// clears it and asks for a verification (the fix may have been a grant).
func (s *sourceCheck) setReadErr(err error) {
	s.mu.Lock()
	was := s.readErr
	s.readErr = err
	s.mu.Unlock()
	if was != nil && err == nil {
		s.kick()
	}
}

// readiness lists the source's problems as /readyz reports them.
func (s *sourceCheck) readiness() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if !s.done {
		out = append(out, "source schema not verified yet")
	}
	if s.readErr != nil {
		out = append(out, "reading the source while mapping failed (the stream retries): "+s.readErr.Error())
	}
	for _, p := range s.problems {
		out = append(out, "source: "+p.String())
	}
	return out
}

// sourceReadFailed records a mapping error (the source could not be read:
// a permission missing, a table gone) for /readyz, unless the daemon is
// stopping.
func (d *Daemon) sourceReadFailed(ctx context.Context, err error) {
	if ctx.Err() == nil {
		d.source.setReadErr(err)
	}
}
