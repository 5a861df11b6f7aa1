package mapping_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// mysqlPipe is the pipeline on MariaDB: the simulator writes Faveo's rows in
// Faveo's session, binlog's Reader streams them from where setup stood, and
// binlog's Lookup reads what the mapper lacks.
type mysqlPipe struct {
	db     *testenv.MySQLDB
	cfg    binlog.Config
	resume string // where setup stood
}

// newMySQLPipeline is newPipeline on MariaDB, with the same clock.
func newMySQLPipeline(t testing.TB) *pipeline {
	t.Helper()
	db := testenv.MariaDB(t)
	p := &pipeline{t: t, now: clockStart, my: &mysqlPipe{db: db}}
	p.hd = testenv.NewMySQLHelpdesk(db.Pool(t))
	p.hd.Now = func() time.Time {
		at := p.now
		p.now = p.now.Add(time.Minute)
		return at
	}
	p.my.cfg = binlog.Config{DSN: db.DeskhookDSN, Slot: db.Name}
	p.my.cfg.SetDefaults()
	return p
}

// setup takes the server's position: from here on, writes stream.
func (m *mysqlPipe) setup(p *pipeline) {
	p.t.Helper()
	st, err := binlog.Now(p.ctx(), m.cfg)
	if err != nil {
		p.t.Fatalf("binlog.Now: %v", err)
	}
	m.resume = st.Resume
}

var dollarRE = regexp.MustCompile(`\$(\d+)`)

// exec runs the statements of sql in one transaction in Faveo's session,
// its $n placeholders as MySQL's.
func (m *mysqlPipe) exec(p *pipeline, sql string, args ...any) {
	p.t.Helper()
	var ordered []any
	q := dollarRE.ReplaceAllStringFunc(sql, func(s string) string {
		n, _ := strconv.Atoi(s[1:])
		ordered = append(ordered, args[n-1])
		return "?"
	})
	tx, err := m.db.Pool(p.t).BeginTx(p.ctx(), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, stmt := range strings.Split(q, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		n := strings.Count(stmt, "?")
		if _, err := tx.ExecContext(p.ctx(), stmt, ordered[:n]...); err != nil {
			tx.Rollback()
			p.t.Fatalf("%s: %v", stmt, err)
		}
		ordered = ordered[n:]
	}
	if err := tx.Commit(); err != nil {
		p.t.Fatal(err)
	}
}

// stream reads the binlog from setup's position through m up to a marker
// (a row in teams, which the mapper ignores).
func (m *mysqlPipe) stream(p *pipeline, mp *mapping.Mapper, opts streamOptions) []mapping.Event {
	p.t.Helper()
	m.db.Exec(p.t, "INSERT INTO teams (name, status, assign_alert, admin_notes) VALUES ('marker', 1, 0, '')")
	cfg := m.cfg
	if opts.maxBatchChanges > 0 {
		cfg.MaxBatchChanges = opts.maxBatchChanges
	}
	if opts.queueBytes > 0 {
		cfg.QueueBytes = opts.queueBytes
	}
	reader := binlog.NewReader(cfg, binlog.ReaderOptions{})
	run := func(ctx context.Context, h change.Handler) error { return reader.Run(ctx, m.resume, h) }
	return p.streamThrough(mp, opts, run, nil, func(c change.Change) bool {
		return c.Table != nil && c.Table.Name == "teams" && c.New != nil && c.New.Text("name") == "marker"
	})
}

func (m *mysqlPipe) lookup(p *pipeline) mapping.Source {
	p.t.Helper()
	l, err := binlog.NewLookup(p.ctx(), m.cfg, binlog.LookupOptions{})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(l.Close)
	return l
}

// TestGoldenMySQL: the golden cases on MariaDB, with Faveo's MySQL schema,
// fire the same events as on PostgreSQL; their payloads are pinned by
// golden files of their own (testdata/golden-mysql: the rows shown are
// MySQL's, whose columns differ from the older Faveo schema the
// PostgreSQL tests use), and agree with PostgreSQL's golden payloads on
// every value both show (samePayloadValues).
func TestGoldenMySQL(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			events := runGolden(t, newMySQLPipeline(t), tc)
			checkGolden(t, filepath.Join("golden-mysql", tc.name), events)
			if _, differs := simulatorDiffers[tc.name]; differs {
				return
			}
			for i, ev := range events {
				pg, err := os.ReadFile(filepath.Join("testdata", "golden", tc.name, fmt.Sprintf("%02d_%s.json", i, ev.Type)))
				if err != nil {
					t.Fatal(err)
				}
				samePayloadValues(t, fmt.Sprintf("%s event %d", tc.name, i), pg, ev.Payload)
			}
		})
	}
}

// simulatorDiffers are the golden cases whose rows the simulator writes
// otherwise on MySQL than on PostgreSQL, so their payloads are compared
// with their own golden files only: SQL that leaves columns out fills them
// with each schema's defaults, and MySQL has no sequence to give a deleted
// ticket's successor the next id.
var simulatorDiffers = map[string]string{
	"deleted":                           "ticket ids: MySQL's simulator takes max(id)+1",
	"first_thread_of_never_seen_ticket": "a raw INSERT: the schemas' column defaults",
	"several_tickets_one_transaction":   "a raw INSERT: the schemas' column defaults",
}

// samePayloadValues fails the test on every difference between a MySQL
// payload and PostgreSQL's for the same event but the documented ones
// (testenv.PayloadDifferences: columns only one schema has, the zero
// transferred_at).
func samePayloadValues(t *testing.T, what string, pgPayload, myPayload []byte) {
	t.Helper()
	diffs, err := testenv.PayloadDifferences(pgPayload, myPayload)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for _, d := range diffs {
		t.Errorf("%s: %s", what, d)
	}
}
