package mapping_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
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
	ctx, cancel := context.WithCancel(p.ctx())
	defer cancel()
	var (
		mu     sync.Mutex
		events []mapping.Event
		done   = make(chan struct{})
		once   sync.Once
	)
	handler := change.HandlerFunc(func(ctx context.Context, b *change.Batch) error {
		evs, err := mp.Map(ctx, b)
		if err != nil {
			return err
		}
		if opts.onBatch != nil {
			opts.onBatch(b, evs)
		} else {
			mu.Lock()
			events = append(events, evs...)
			mu.Unlock()
		}
		for _, c := range b.Changes {
			if c.Table != nil && c.Table.Name == "teams" && c.New != nil && c.New.Text("name") == "marker" {
				once.Do(func() { close(done) })
			}
		}
		return nil
	})
	runErr := make(chan error, 1)
	go func() { runErr <- reader.Run(ctx, m.resume, handler) }()
	select {
	case <-done:
		cancel()
		if err := <-runErr; err != nil {
			p.t.Fatalf("binlog reader: %v", err)
		}
	case err := <-runErr:
		p.t.Fatalf("binlog reader stopped before the marker arrived: %v", err)
	case <-time.After(4 * time.Minute):
		p.t.Fatal("timed out waiting for the binlog stream")
	}
	mu.Lock()
	defer mu.Unlock()
	return events
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
			p := newMySQLPipeline(t)
			if tc.before != nil {
				tc.before(p)
			}
			p.setup()
			tc.actions(p)
			cfg := mapping.Config{AppKey: testAppKey}
			if tc.config != nil {
				tc.config(&cfg)
			}
			events := p.stream(p.mapper(cfg, mapping.Options{}), streamOptions{})
			var got []string
			for _, ev := range events {
				got = append(got, ev.Type)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
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

// schemaOnly are the columns only one of the two test schemas has (testenv's
// TestMySQLAndPostgresSchemasDifferAsDocumented names them, per table): a
// payload showing a row shows them on one side only.
var schemaOnly = map[string]bool{
	// tickets, only MySQL
	"resolution_time": true, "is_response_sla": true, "is_resolution_sla": true, "last_estd_duedate": true,
	"average_response_time": true, "parent_ticket_id": true, "category_id": true,
	// users, only PostgreSQL
	"hash_ids": true, "is_login": true, "not_accept_ticket": true,
	// users, only MySQL
	"ext": true, "phone_number": true, "assign_group": true, "internal_note": true, "user_language": true,
	"location": true, "google2fa_activation_date": true, "last_login_at": true, "import_identifier": true, "iso": true,
	"profile_pic_driver": true, "phone_iso": true, "deactivated_by": true, "created_by": true, "deactivated_at": true,
	"logout_time": true,
	// ticket_status, only MySQL
	"secondary_status": true, "rating_auto_request": true,
}

// samePayloadValues compares a MySQL payload with PostgreSQL's for the same
// event: every value both show is the same, but for the zero date Faveo's
// MySQL schema stores in tickets.transferred_at (NULL on PostgreSQL), which
// deskhook shows as Faveo does; a key one side lacks is a column only its
// schema has.
func samePayloadValues(t *testing.T, what string, pgPayload, myPayload []byte) {
	t.Helper()
	pg, my := flatten(t, pgPayload), flatten(t, myPayload)
	for path, pv := range pg {
		mv, ok := my[path]
		last := path[strings.LastIndex(path, ".")+1:]
		switch {
		case !ok && schemaOnly[last]:
		case !ok:
			t.Errorf("%s: %s = %s on PostgreSQL, missing on MySQL", what, path, pv)
		case last == "transferred_at" && pv == "null" && mv == `"0000-00-00 00:00:00"`:
		case pv != mv:
			t.Errorf("%s: %s = %s on PostgreSQL, %s on MySQL", what, path, pv, mv)
		}
	}
	for path, mv := range my {
		if _, ok := pg[path]; !ok && !schemaOnly[path[strings.LastIndex(path, ".")+1:]] {
			t.Errorf("%s: %s = %s on MySQL, missing on PostgreSQL", what, path, mv)
		}
	}
}

// flatten turns a JSON object into path → JSON value of its scalars.
func flatten(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(path+"."+strconv.Itoa(i), c)
			}
		default:
			b, _ := json.Marshal(x)
			out[path] = string(b)
		}
	}
	walk("", v)
	return out
}
