package cdc

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

// kinds lists problems as "table kind", sorted.
func kinds(ps []Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Table+" "+p.Kind)
	}
	slices.Sort(out)
	return out
}

func verify(t *testing.T, cfg Config) []Problem {
	t.Helper()
	ps, err := Verify(testCtx(t, time.Minute), cfg)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return ps
}

// failedChecks lists the names of the checks that failed, and those that
// warned.
func failedChecks(res []CheckResult) (failed, warned []string) {
	for _, r := range res {
		switch {
		case !r.OK:
			failed = append(failed, r.Name)
		case r.Warn:
			warned = append(warned, r.Name)
		}
	}
	return failed, warned
}

// TestVerifySchemaDrift: each way the schema drifts from what deskhook
// reads is one problem, named with its table, kind and fix, in Verify and
// in Check alike; mending it makes Verify clean again.
func TestVerifySchemaDrift(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		breakSQL  string
		want      []string // "table kind"
		check     string   // the failing check
		detail    string   // in the problem's detail
		fix       string   // in the problem's fix
		mendSQL   string
		extraRole bool // run as a role with SELECT on all but the attachments table
	}{
		{name: "table rebuilt in one transaction",
			breakSQL: `BEGIN; CREATE TABLE t2 (LIKE ticket_thread INCLUDING ALL); INSERT INTO t2 SELECT * FROM ticket_thread;
				DROP TABLE ticket_thread; ALTER TABLE t2 RENAME TO ticket_thread; COMMIT`,
			want:   []string{"public.ticket_thread not_published"},
			check:  "publication deskhook",
			detail: "not in publication deskhook", fix: `ALTER PUBLICATION "deskhook" ADD TABLE "public"."ticket_thread";`,
			mendSQL: `ALTER PUBLICATION deskhook ADD TABLE ticket_thread`},
		{name: "column renamed",
			breakSQL: `ALTER TABLE tickets RENAME COLUMN status TO status_id`,
			want:     []string{"public.tickets missing_column:status"},
			check:    "column public.tickets.status",
			detail:   "lacks column status, which deskhook reads for ticket_status_updated",
			fix:      `RENAME COLUMN <its new name> TO "status";`,
			mendSQL:  `ALTER TABLE tickets RENAME COLUMN status_id TO status`},
		{name: "column of another type",
			breakSQL: `ALTER TABLE ticket_thread ALTER COLUMN poster DROP DEFAULT, ALTER COLUMN poster TYPE integer USING 0`,
			want:     []string{"public.ticket_thread column_type:poster"},
			check:    "column public.ticket_thread.poster",
			detail:   "column poster is of type int4; deskhook reads it as text",
			fix:      `ALTER TABLE "public"."ticket_thread" ALTER COLUMN "poster" TYPE text USING "poster"::text;`,
			mendSQL:  `ALTER TABLE ticket_thread ALTER COLUMN poster TYPE varchar(255)`},
		{name: "replica identity",
			breakSQL: `ALTER TABLE tickets REPLICA IDENTITY DEFAULT`,
			want:     []string{"public.tickets replica_identity"},
			check:    "replica identity public.tickets",
			detail:   "REPLICA IDENTITY DEFAULT", fix: `ALTER TABLE "public"."tickets" REPLICA IDENTITY FULL;`,
			mendSQL: `ALTER TABLE tickets REPLICA IDENTITY FULL`},
		{name: "no SELECT on the attachments", extraRole: true,
			want:   []string{"public.ticket_attachment no_select"},
			check:  "table public.ticket_attachment",
			detail: "cannot SELECT from it", fix: `GRANT SELECT ON "public"."ticket_attachment" TO`,
			mendSQL: `GRANT SELECT ON ticket_attachment TO %s`},
		{name: "publication dropped",
			breakSQL: `DROP PUBLICATION deskhook`,
			want:     []string{" publication_missing"},
			check:    "publication deskhook",
			detail:   "publication deskhook does not exist", fix: "run deskhook setup",
			mendSQL: `CREATE PUBLICATION deskhook FOR TABLE tickets, ticket_thread, users, ticket_status, ticket_status_type,
				department, teams, ticket_collaborator, ticket_attachment`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, true, testenv.NoFsync())
			cfg := f.cfg
			role := ""
			if tc.extraRole {
				role = "v_" + f.db.Name
				f.db.Exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN REPLICATION PASSWORD 'pw'`, role))
				t.Cleanup(func() { f.db.Exec(t, fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", role, role)) })
				f.db.Exec(t, fmt.Sprintf(`GRANT SELECT ON tickets, ticket_thread, users, ticket_status, ticket_status_type,
					department, teams, ticket_collaborator TO %s`, role))
				cfg.DSN = roleDSN(t, f.db.DSN, role, "pw")
			}
			if ps := verify(t, f.cfg); len(ps) != 0 {
				t.Fatalf("problems before breaking anything: %v", ps)
			}
			if tc.breakSQL != "" {
				f.db.Exec(t, tc.breakSQL)
			}
			ps := verify(t, cfg)
			if got := kinds(ps); !slices.Equal(got, tc.want) {
				t.Fatalf("problems %q, want %q\n%v", got, tc.want, ps)
			}
			if !strings.Contains(ps[0].Detail, tc.detail) || !strings.Contains(ps[0].Fix, tc.fix) {
				t.Errorf("problem %+v: want %q in its detail and %q in its fix", ps[0], tc.detail, tc.fix)
			}
			// Check fails the same thing, once, with the same fix.
			res := Check(testCtx(t, time.Minute), cfg)
			failed, _ := failedChecks(res)
			if !slices.Equal(failed, []string{tc.check}) {
				t.Errorf("failed checks %q, want [%q]\n%+v", failed, tc.check, res)
			} else if r := checkResult(t, res, tc.check); !strings.Contains(r.Detail+" "+r.Fix, tc.detail) &&
				!strings.Contains(r.Fix, tc.fix) {
				t.Errorf("check %+v does not say %q", r, tc.detail)
			}
			mend := tc.mendSQL
			if role != "" {
				mend = fmt.Sprintf(mend, role)
			}
			f.db.Exec(t, mend)
			if ps := verify(t, cfg); len(ps) != 0 {
				t.Errorf("problems after the fix: %v", ps)
			}
		})
	}
}

// TestVerifyTypeFamilies: a column read as text may be any string type,
// a domain over one or an enum; an integer may be any width; is_internal
// may be a boolean; send_email may be JSON.
func TestVerifyTypeFamilies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.NoFsync())
	f.db.Exec(t, `CREATE DOMAIN short_text AS varchar(40);
		CREATE TYPE poster_kind AS ENUM ('client', 'support', 'agent');
		ALTER TABLE ticket_thread ALTER COLUMN thread_type TYPE short_text,
			ALTER COLUMN poster DROP DEFAULT, ALTER COLUMN poster TYPE poster_kind USING 'client',
			ALTER COLUMN is_internal DROP DEFAULT, ALTER COLUMN is_internal TYPE boolean USING is_internal <> 0,
			ALTER COLUMN user_id TYPE integer;
		ALTER TABLE ticket_status ALTER COLUMN send_email TYPE jsonb USING send_email::jsonb;
		ALTER TABLE tickets ALTER COLUMN duedate TYPE timestamptz`)
	if ps := verify(t, f.cfg); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
	f.db.Exec(t, `ALTER TABLE tickets ALTER COLUMN duedate TYPE text`)
	if got := kinds(verify(t, f.cfg)); !slices.Equal(got, []string{"public.tickets column_type:duedate"}) {
		t.Errorf("duedate as text: %q", got)
	}
}

// TestVerifyCoversEveryNeed: every table and column the mapping declares
// is verified: dropping any one of them is a problem naming it.
func TestVerifyCoversEveryNeed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.NoFsync())
	keys := f.cfg.Tables.Keys()
	for _, n := range mapping.Needs() {
		if !slices.Contains(keys, n.Key) {
			t.Errorf("mapping needs a table under source.tables.%s, which is no key of source.tables", n.Key)
		}
		table := f.cfg.Tables.Name(n.Key)
		for _, c := range n.Columns {
			f.db.Exec(t, fmt.Sprintf(`ALTER TABLE %s RENAME COLUMN %s TO gone`, table, c.Name))
			want := []string{"public." + table + " missing_column:" + c.Name}
			if got := kinds(verify(t, f.cfg)); !slices.Equal(got, want) {
				t.Errorf("%s.%s renamed: %q, want %q", table, c.Name, got, want)
			}
			f.db.Exec(t, fmt.Sprintf(`ALTER TABLE %s RENAME COLUMN gone TO %s`, table, c.Name))
		}
	}
	if len(mapping.Needs()) != len(keys) {
		t.Errorf("mapping declares %d tables, source.tables has %d keys", len(mapping.Needs()), len(keys))
	}
}

// TestCheckServerSettings: max_slot_wal_keep_size warns when unbounded;
// wal_sender_timeout warns when disabled or below three status intervals,
// fails when even the fastest status would come too late.
func TestCheckServerSettings(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.NoFsync())
	res := Check(testCtx(t, time.Minute), f.cfg)
	if r := checkResult(t, res, "max_slot_wal_keep_size"); !r.Warn || !strings.Contains(r.Detail, "unbounded") ||
		!strings.Contains(r.Fix, "ALTER SYSTEM SET max_slot_wal_keep_size") {
		t.Errorf("unbounded: %+v", r)
	}
	if r := checkResult(t, res, "wal_sender_timeout"); !r.OK || r.Warn {
		t.Errorf("60s against 500ms: %+v", r)
	}
	f.db.Exec(t, `ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'`)
	f.db.Exec(t, `SELECT pg_reload_conf()`)
	waitFor(t, 10*time.Second, "the bound to show", func() bool {
		r := checkResult(t, Check(testCtx(t, time.Minute), f.cfg), "max_slot_wal_keep_size")
		return r.OK && !r.Warn && strings.HasPrefix(r.Detail, "10.0 GiB")
	})

	role := "s_" + f.db.Name
	f.db.Exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN REPLICATION PASSWORD 'pw'`, role))
	t.Cleanup(func() { f.db.Exec(t, fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", role, role)) })
	cfg := f.cfg
	cfg.DSN = roleDSN(t, f.db.DSN, role, "pw")
	for _, tc := range []struct {
		timeout  string
		interval time.Duration
		fail     bool
		warn     string
	}{
		{"0", time.Second, false, "0 (disabled)"},
		{"200ms", 50 * time.Millisecond, true, ""},
		{"6s", 5 * time.Second, false, "not every 5s as source.status_interval says"},
		{"30s", 5 * time.Second, false, ""},
	} {
		f.db.Exec(t, fmt.Sprintf(`ALTER ROLE %s SET wal_sender_timeout = '%s'`, role, tc.timeout))
		c := cfg
		c.StatusInterval = tc.interval
		r := checkResult(t, Check(testCtx(t, time.Minute), c), "wal_sender_timeout")
		switch {
		case tc.fail && r.OK, !tc.fail && !r.OK, (tc.warn != "") != r.Warn, !strings.Contains(r.Detail, tc.warn):
			t.Errorf("wal_sender_timeout %s, status_interval %s: %+v", tc.timeout, tc.interval, r)
		}
	}
}

// TestTruncateLoggedAndCounted: a TRUNCATE of a published table is handed
// over as a Truncate change, logged at WARN with the table and counted;
// the reader tells the caller of each Relation message of a watched
// table.
func TestTruncateLoggedAndCounted(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.NoFsync())
	var logs testenv.Output
	reg := prometheus.NewRegistry()
	var relMu sync.Mutex
	var relations []string
	rec := newRecorder(true)
	run := startReader(t, f.cfg, rec, ReaderOptions{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg,
		OnRelation: func(table string) { relMu.Lock(); relations = append(relations, table); relMu.Unlock() },
	})
	run.waitConnected(t)
	f.db.Exec(t, `TRUNCATE ticket_thread, ticket_attachment`)
	waitFor(t, 30*time.Second, "the truncate", func() bool { return rec.txns() >= 1 })
	var truncated []string
	for _, b := range rec.snapshot() {
		for _, c := range b.Changes {
			if c.Op == change.Truncate {
				truncated = append(truncated, c.Table.Name)
			}
		}
	}
	slices.Sort(truncated)
	if !slices.Equal(truncated, []string{"ticket_attachment", "ticket_thread"}) {
		t.Errorf("truncated %q", truncated)
	}
	for _, table := range []string{"public.ticket_thread", "public.ticket_attachment"} {
		if n := testutil.ToFloat64(run.reader.metrics.truncates.WithLabelValues(table)); n != 1 {
			t.Errorf("deskhook_cdc_truncates_total{table=%q} = %v", table, n)
		}
		if !strings.Contains(logs.String(), `level=WARN msg="TRUNCATE of a published table`) ||
			!strings.Contains(logs.String(), "table="+table) {
			t.Errorf("no WARN for %s:\n%s", table, logs.String())
		}
	}
	relMu.Lock()
	got := slices.Clone(relations)
	relMu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, []string{"public.ticket_attachment", "public.ticket_thread"}) {
		t.Errorf("OnRelation heard %q", got)
	}
}
