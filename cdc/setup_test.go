package cdc

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// dbState is what Setup and Teardown change, as the catalog shows it.
type dbState struct {
	publication string // its tables, sorted; "" when absent
	slot        string // "plugin type"; "" when absent
	identity    string // tickets' relreplident
}

func (f *fixture) state(t *testing.T) dbState {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	var s dbState
	if err := f.pool.QueryRow(ctx, `SELECT
		coalesce((SELECT string_agg(tablename, ' ' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = $1),
		         CASE WHEN EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) THEN '(empty)' ELSE '' END),
		coalesce((SELECT coalesce(plugin, '-') || ' ' || slot_type FROM pg_replication_slots WHERE slot_name = $2), ''),
		(SELECT relreplident::text FROM pg_class WHERE oid = 'tickets'::regclass)`,
		f.cfg.Publication, f.cfg.Slot).Scan(&s.publication, &s.slot, &s.identity); err != nil {
		t.Fatal(err)
	}
	return s
}

const allTables = "department teams ticket_attachment ticket_collaborator ticket_status ticket_status_type ticket_thread tickets users"

// done runs Setup or Teardown and returns what it reports doing, one
// string.
func done(t *testing.T, op func(context.Context, Config) ([]string, error), cfg Config) string {
	t.Helper()
	d, err := op(testCtx(t, time.Minute), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(d, "; ")
}

// TestSetupTeardownIdempotent: Setup makes the publication, FULL replica
// identity on tickets and the slot, once; Teardown removes exactly that and
// restores the replica identity, once.
func TestSetupTeardownIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	before := f.state(t)
	if before != (dbState{identity: "d"}) {
		t.Fatalf("fresh database: %+v", before)
	}
	setUp := dbState{publication: allTables, slot: "pgoutput logical", identity: "f"}

	d := done(t, Setup, f.cfg)
	for _, w := range []string{"created publication deskhook for 9 tables", "set REPLICA IDENTITY FULL on public.tickets (was DEFAULT)",
		"created replication slot " + f.cfg.Slot + " (pgoutput)"} {
		if !strings.Contains(d, w) {
			t.Errorf("first Setup did %q; want %q", d, w)
		}
	}
	if s := f.state(t); s != setUp {
		t.Errorf("after Setup: %+v, want %+v", s, setUp)
	}
	if d := done(t, Setup, f.cfg); d != "" {
		t.Errorf("second Setup did %q", d)
	}
	if s := f.state(t); s != setUp {
		t.Errorf("after the second Setup: %+v", s)
	}
	for _, c := range Check(testCtx(t, time.Minute), f.cfg) {
		if !c.OK {
			t.Errorf("check after Setup: %+v", c)
		}
	}

	d = done(t, Teardown, f.cfg)
	if want := "restored REPLICA IDENTITY DEFAULT on \"public\".\"tickets\"; dropped publication deskhook; dropped replication slot " + f.cfg.Slot; d != want {
		t.Errorf("Teardown did %q, want %q", d, want)
	}
	if s := f.state(t); s != before {
		t.Errorf("after Teardown: %+v, want %+v", s, before)
	}
	if d := done(t, Teardown, f.cfg); d != "" {
		t.Errorf("second Teardown did %q", d)
	}

	// Setup repairs what is missing, and only that.
	done(t, Setup, f.cfg)
	f.db.Exec(t, "ALTER PUBLICATION deskhook DROP TABLE teams, users")
	f.db.Exec(t, "SELECT pg_drop_replication_slot($1)", f.cfg.Slot)
	d = done(t, Setup, f.cfg)
	if !strings.Contains(d, `added "public"."users", "public"."teams" to publication deskhook`) ||
		!strings.Contains(d, "created replication slot") || strings.Contains(d, "IDENTITY") {
		t.Errorf("repairing Setup did %q", d)
	}
	if s := f.state(t); s != setUp {
		t.Errorf("after the repair: %+v", s)
	}
	// Teardown still knows the replica identity was DEFAULT.
	done(t, Teardown, f.cfg)
	if s := f.state(t); s != before {
		t.Errorf("after the last Teardown: %+v", s)
	}
}

// TestSetupTeardownRespectOthers: what Setup did not make, Teardown leaves.
func TestSetupTeardownRespectOthers(t *testing.T) {
	t.Parallel()
	t.Run("tickets already FULL", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.db.Exec(t, "ALTER TABLE tickets REPLICA IDENTITY FULL")
		if d := done(t, Setup, f.cfg); strings.Contains(d, "IDENTITY") {
			t.Errorf("Setup did %q", d)
		}
		done(t, Teardown, f.cfg)
		if s := f.state(t); s != (dbState{identity: "f"}) {
			t.Errorf("after Teardown: %+v", s)
		}
	})
	t.Run("tickets identity using an index", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.db.Exec(t, "ALTER TABLE tickets REPLICA IDENTITY USING INDEX tickets_pkey")
		if d := done(t, Setup, f.cfg); !strings.Contains(d, "(was USING INDEX)") {
			t.Errorf("Setup did %q", d)
		}
		if d := done(t, Teardown, f.cfg); !strings.Contains(d, `restored REPLICA IDENTITY USING INDEX "tickets_pkey"`) {
			t.Errorf("Teardown did %q", d)
		}
		if s := f.state(t); s != (dbState{identity: "i"}) {
			t.Errorf("after Teardown: %+v", s)
		}
	})
	t.Run("someone else's publication", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.db.Exec(t, "CREATE PUBLICATION deskhook FOR TABLE users")
		_, err := Setup(testCtx(t, time.Minute), f.cfg)
		if err == nil || !strings.Contains(err.Error(), `publication "deskhook" exists and was not made by deskhook setup`) {
			t.Errorf("Setup returned %v", err)
		}
		if d := done(t, Teardown, f.cfg); d != "left publication deskhook in place: deskhook setup did not make it" {
			t.Errorf("Teardown did %q", d)
		}
		if s := f.state(t); s != (dbState{publication: "users", identity: "d"}) {
			t.Errorf("after Teardown: %+v", s)
		}
	})
	t.Run("slot in use", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, true)
		pid, _ := holdSlot(t, f)
		_, err := Teardown(testCtx(t, time.Minute), f.cfg)
		if want := fmt.Sprintf("replication slot %q is in use by process %d", f.cfg.Slot, pid); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Teardown returned %v, want %q", err, want)
		}
		if s := f.state(t); s.slot == "" || s.publication == "" {
			t.Errorf("Teardown of a slot in use changed %+v", s)
		}
	})
	t.Run("a table missing", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		cfg := f.cfg
		cfg.Tables.Teams = "groups"
		_, err := Setup(testCtx(t, time.Minute), cfg)
		if err == nil || !strings.Contains(err.Error(), "table(s) public.groups not found") {
			t.Errorf("Setup returned %v", err)
		}
		if s := f.state(t); s != (dbState{identity: "d"}) {
			t.Errorf("a failed Setup changed %+v", s)
		}
	})
	t.Run("a physical slot of the same name", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		f.db.Exec(t, "SELECT pg_create_physical_replication_slot($1)", f.cfg.Slot)
		_, err := Setup(testCtx(t, time.Minute), f.cfg)
		if !errors.Is(err, ErrSlotInvalid) || !strings.Contains(err.Error(), "pick another source.slot") {
			t.Errorf("Setup returned %v", err)
		}
	})
}

// roleDSN is dsn with another user and password.
func roleDSN(t *testing.T, dsn, role, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return dsn + fmt.Sprintf(" user=%s password=%s", role, password)
	}
	u.User = url.UserPassword(role, password)
	return u.String()
}

// checkResult finds the named check.
func checkResult(t *testing.T, res []CheckResult, name string) CheckResult {
	t.Helper()
	for _, r := range res {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no check %q in %+v", name, res)
	return CheckResult{}
}

// fixSQL is the SQL in a check's fix: the whole fix, the statement after
// "or: ", or the one in parentheses.
var fixSQL = regexp.MustCompile(`(?:^|or: |\()((?:ALTER|GRANT|CREATE|SELECT) [^;]*;)`)

// TestCheckFailuresAndFixes: each broken prerequisite fails its check with
// a detail and a fix; applying the fix makes every check pass.
func TestCheckFailuresAndFixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// breakIt breaks a set-up database and returns the Config to check.
		breakIt      func(t *testing.T, f *fixture) Config
		check        string // the failing check, %s: the slot
		detail, fix  string // substrings
		fixByConfig  bool   // the fix is a configuration change, not SQL
		alsoFailures []string
	}{
		{name: "role without REPLICATION",
			breakIt: func(t *testing.T, f *fixture) Config {
				role := "r_" + f.db.Name
				f.db.Exec(t, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD 'pw'`, role))
				t.Cleanup(func() {
					f.db.Exec(t, fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", role, role))
				})
				f.db.Exec(t, fmt.Sprintf("GRANT SELECT ON tickets, ticket_thread, users, ticket_status, ticket_status_type, department TO %s", role))
				cfg := f.cfg
				cfg.DSN = roleDSN(t, f.db.DSN, role, "pw")
				return cfg
			},
			check: "role privilege", detail: "has neither REPLICATION nor superuser", fix: "ALTER ROLE \"r_",
			// SELECT is checked on every table deskhook reads, the
			// collaborator and attachment tables too.
			alsoFailures: []string{"table public.teams", "table public.ticket_collaborator", "table public.ticket_attachment"}},
		{name: "missing table",
			breakIt: func(t *testing.T, f *fixture) Config {
				cfg := f.cfg
				cfg.Tables.Teams = "groups"
				return cfg
			},
			check: "table public.groups", detail: "not found", fix: "source.tables.teams", fixByConfig: true,
			alsoFailures: []string{"publication deskhook"}},
		{name: "default replica identity",
			breakIt: func(t *testing.T, f *fixture) Config {
				f.db.Exec(t, "ALTER TABLE tickets REPLICA IDENTITY DEFAULT")
				return f.cfg
			},
			check: "replica identity public.tickets", detail: "DEFAULT: updates would lack the old row",
			fix: `ALTER TABLE "public"."tickets" REPLICA IDENTITY FULL;`},
		{name: "publication lacks a table",
			breakIt: func(t *testing.T, f *fixture) Config {
				f.db.Exec(t, "ALTER PUBLICATION deskhook DROP TABLE ticket_thread")
				return f.cfg
			},
			check: "publication deskhook", detail: `lacks "public"."ticket_thread"`,
			fix: `ALTER PUBLICATION "deskhook" ADD TABLE "public"."ticket_thread";`},
		{name: "missing publication",
			breakIt: func(t *testing.T, f *fixture) Config {
				f.db.Exec(t, "DROP PUBLICATION deskhook")
				return f.cfg
			},
			check: "publication deskhook", detail: "does not exist", fix: `CREATE PUBLICATION "deskhook" FOR TABLE "public"."tickets", `},
		{name: "missing slot",
			breakIt: func(t *testing.T, f *fixture) Config {
				f.db.Exec(t, "SELECT pg_drop_replication_slot($1)", f.cfg.Slot)
				return f.cfg
			},
			check: "slot %s", detail: "does not exist", fix: "SELECT pg_create_logical_replication_slot('%s', 'pgoutput');"},
		{name: "slot active elsewhere",
			breakIt: func(t *testing.T, f *fixture) Config {
				holdSlot(t, f)
				return f.cfg
			},
			check: "slot %s in use", detail: "read by process", fix: "SELECT pg_terminate_backend("},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, true)
			cfg := tc.breakIt(t, f)
			res := Check(testCtx(t, time.Minute), cfg)
			var failed []string
			for _, r := range res {
				if !r.OK {
					failed = append(failed, r.Name)
				}
			}
			want := append([]string{strings.ReplaceAll(tc.check, "%s", f.cfg.Slot)}, tc.alsoFailures...)
			slices.Sort(want)
			slices.Sort(failed)
			if !slices.Equal(failed, want) {
				t.Errorf("failed checks %q, want %q\n%+v", failed, want, res)
			}
			r := checkResult(t, res, strings.ReplaceAll(tc.check, "%s", f.cfg.Slot))
			if !strings.Contains(r.Detail, tc.detail) || !strings.Contains(r.Fix, strings.ReplaceAll(tc.fix, "%s", f.cfg.Slot)) {
				t.Errorf("check %q: detail %q, fix %q; want them to contain %q and %q", r.Name, r.Detail, r.Fix, tc.detail, tc.fix)
			}
			if tc.fixByConfig {
				return
			}
			// Apply every fix (as the superuser) and check again.
			for _, r := range res {
				if r.OK {
					continue
				}
				m := fixSQL.FindStringSubmatch(r.Fix)
				if m == nil {
					t.Fatalf("no SQL in the fix of %q: %q", r.Name, r.Fix)
				}
				f.db.Exec(t, m[1])
			}
			waitFor(t, 10*time.Second, "every check to pass after the fixes", func() bool {
				for _, r := range Check(testCtx(t, time.Minute), cfg) {
					if !r.OK {
						return false
					}
				}
				return true
			})
		})
	}
}

// TestWALLevelReplica: on a server with wal_level = replica, Check says so
// with the fix, Setup and Run refuse with ErrWALLevel; after the fix (and
// a restart) Setup works.
func TestWALLevelReplica(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false, testenv.WithSettings(map[string]string{"wal_level": "replica"}), testenv.NoFsync())
	r := checkResult(t, Check(testCtx(t, time.Minute), f.cfg), "wal_level")
	if r.OK || r.Detail != "wal_level is replica; logical replication needs logical" ||
		r.Fix != "ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL" {
		t.Errorf("wal_level check: %+v", r)
	}
	if _, err := Setup(testCtx(t, time.Minute), f.cfg); !errors.Is(err, ErrWALLevel) || !strings.Contains(err.Error(), "ALTER SYSTEM SET wal_level = logical") {
		t.Errorf("Setup returned %v", err)
	}
	if err := runUntilError(t, f.cfg, nil, nil); !errors.Is(err, ErrWALLevel) {
		t.Errorf("Run returned %v", err)
	}

	f.db.Exec(t, "ALTER SYSTEM SET wal_level = logical")
	if err := f.db.Server.Restart(testCtx(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if r := checkResult(t, Check(testCtx(t, time.Minute), f.cfg), "wal_level"); !r.OK {
		t.Errorf("after the fix: %+v", r)
	}
	if _, err := Setup(testCtx(t, time.Minute), f.cfg); err != nil {
		t.Errorf("Setup after the fix: %v", err)
	}
}

// TestCheckConnectionFailure: an unreachable server is one failed check
// that says what to look at, without the password.
func TestCheckConnectionFailure(t *testing.T) {
	t.Parallel()
	cfg := Defaults()
	cfg.DSN = "postgres://deskhook:s3cret@127.0.0.1:1/helpdesk?connect_timeout=5"
	res := Check(testCtx(t, time.Minute), cfg)
	if len(res) != 1 || res[0].Name != "connection" || res[0].OK || !strings.Contains(res[0].Fix, "source.dsn") {
		t.Fatalf("Check = %+v", res)
	}
	if strings.Contains(fmt.Sprint(res), "s3cret") {
		t.Errorf("the password appears in %+v", res)
	}
}

// TestSlotLostWAL: a slot that lost its WAL (max_slot_wal_keep_size
// exceeded while nobody read it) fails its WAL check with the fix, and
// stops Run with ErrSlotLost; the fix (teardown, setup) works.
func TestSlotLostWAL(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true, testenv.WithSettings(map[string]string{"max_slot_wal_keep_size": "1MB"}), testenv.NoFsync())
	walCheck := "slot " + f.cfg.Slot + " WAL"
	if r := checkResult(t, Check(testCtx(t, time.Minute), f.cfg), walCheck); !r.OK || !strings.Contains(r.Detail, "wal_status reserved, retains") {
		t.Errorf("fresh slot: %+v", r)
	}
	for range 3 {
		f.db.Exec(t, "INSERT INTO audit_log (message) SELECT repeat('x', 100) FROM generate_series(1, 50000)")
		f.db.Exec(t, "SELECT pg_switch_wal()")
	}
	f.db.Exec(t, "CHECKPOINT")
	r := checkResult(t, Check(testCtx(t, time.Minute), f.cfg), walCheck)
	if r.OK || !strings.Contains(r.Detail, "wal_status lost") || !strings.Contains(r.Fix, "deskhook setup --accept-gap") {
		t.Errorf("lost slot: %+v", r)
	}
	if err := runUntilError(t, f.cfg, nil, nil); !errors.Is(err, ErrSlotLost) || !strings.Contains(err.Error(), f.cfg.Slot) {
		t.Errorf("Run returned %v", err)
	}
	done(t, Teardown, f.cfg)
	done(t, Setup, f.cfg)
	for _, r := range Check(testCtx(t, time.Minute), f.cfg) {
		if !r.OK {
			t.Errorf("after the fix: %+v", r)
		}
	}
}
