package cdc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newRole creates a login role for this test's database (roles are per
// cluster) and drops it at cleanup; sql runs after, with %[1]s the role.
func newRole(t *testing.T, f *fixture, prefix, attrs string, sql ...string) Config {
	t.Helper()
	role := prefix + "_" + f.db.Name
	f.db.Exec(t, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'pw' %s", role, attrs))
	t.Cleanup(func() {
		f.db.Exec(t, fmt.Sprintf("REASSIGN OWNED BY %[1]s TO CURRENT_USER; DROP OWNED BY %[1]s; DROP ROLE %[1]s", role))
	})
	for _, s := range sql {
		f.db.Exec(t, fmt.Sprintf(s, role))
	}
	cfg := f.cfg
	cfg.DSN = roleDSN(t, f.db.DSN, role, "pw")
	return cfg
}

const ownTables = "ALTER TABLE tickets OWNER TO %[1]s; ALTER TABLE ticket_thread OWNER TO %[1]s; " +
	"ALTER TABLE users OWNER TO %[1]s; ALTER TABLE ticket_status OWNER TO %[1]s; " +
	"ALTER TABLE ticket_status_type OWNER TO %[1]s; ALTER TABLE department OWNER TO %[1]s; " +
	"ALTER TABLE teams OWNER TO %[1]s; ALTER TABLE ticket_collaborator OWNER TO %[1]s; " +
	"ALTER TABLE ticket_attachment OWNER TO %[1]s"

// TestSetupSaysWhatIsMissingAndChangesNothing: Setup and Teardown run as a
// role short of a privilege name every one missing, up front, and change
// nothing; with them, they work.
func TestSetupSaysWhatIsMissingAndChangesNothing(t *testing.T) {
	t.Parallel()
	t.Run("the tables' owner without REPLICATION or CREATE", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		cfg := newRole(t, f, "owner", "", ownTables)
		before := f.state(t)
		_, err := Setup(testCtx(t, time.Minute), cfg)
		for _, w := range []string{"nothing was changed", "REPLICATION (to create replication slot",
			`CREATE on database "` + f.db.Name + `" (to create publication "deskhook")`, "--print-sql"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Setup returned %v; want it to say %q", err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), "ownership") {
			t.Errorf("the owner is told it lacks ownership: %v", err)
		}
		if s := f.state(t); s != before {
			t.Fatalf("a refused Setup changed %+v to %+v", before, s)
		}
		f.db.Exec(t, fmt.Sprintf(`ALTER ROLE "owner_%s" REPLICATION; GRANT CREATE ON DATABASE %q TO "owner_%s"`,
			f.db.Name, f.db.Name, f.db.Name))
		done(t, Setup, cfg)
		if s := f.state(t); s != (dbState{publication: allTables, slot: "pgoutput logical", identity: "f"}) {
			t.Errorf("after Setup as the owner: %+v", s)
		}
	})
	t.Run("the daemon's role: REPLICATION and SELECT", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, false)
		cfg := newRole(t, f, "reader", "REPLICATION", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO %s")
		_, err := Setup(testCtx(t, time.Minute), cfg)
		for _, w := range []string{"nothing was changed", `ownership of "public"."tickets", "public"."ticket_thread", `,
			`"public"."ticket_attachment" (to publish them, to set REPLICA IDENTITY FULL)`, "CREATE on database"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Setup returned %v; want it to say %q", err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), "REPLICATION (") {
			t.Errorf("a role with REPLICATION is told it lacks it: %v", err)
		}
		if s := f.state(t); s != (dbState{identity: "d"}) {
			t.Fatalf("a refused Setup changed %+v", s)
		}
		// Set up by the superuser, everything is there: Setup as the
		// daemon's role has nothing to do, so it needs nothing more.
		done(t, Setup, f.cfg)
		if d := done(t, Setup, cfg); d != "" {
			t.Errorf("Setup as the daemon's role did %q", d)
		}
		// Teardown as the daemon's role would drop the slot and then fail
		// on the publication: it refuses up front instead.
		setUp := f.state(t)
		_, err = Teardown(testCtx(t, time.Minute), cfg)
		for _, w := range []string{"nothing was changed", `ownership of publication "deskhook" (to drop it)`,
			`ownership of "public"."tickets" (to restore its replica identity)`} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Teardown returned %v; want it to say %q", err, w)
			}
		}
		if s := f.state(t); s != setUp {
			t.Fatalf("a refused Teardown changed %+v to %+v", setUp, s)
		}
	})
	t.Run("no REPLICATION to drop the slot", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, true)
		cfg := newRole(t, f, "norepl", "", ownTables)
		setUp := f.state(t)
		_, err := Teardown(testCtx(t, time.Minute), cfg)
		if err == nil || !strings.Contains(err.Error(), "REPLICATION (to drop replication slot") ||
			!strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("Teardown returned %v", err)
		}
		if s := f.state(t); s != setUp {
			t.Fatalf("a refused Teardown changed %+v to %+v", setUp, s)
		}
	})
}

// TestSetupSQL: --print-sql's script for a config, against the golden file
// (go test ./cdc -run TestSetupSQL -update rewrites it). The end-to-end
// tests apply it with psql.
func TestSetupSQL(t *testing.T) {
	cfg := Config{DSN: "postgres://deskhook:secret@db.example:5432/helpdesk?sslmode=require", Slot: "deskhook_1"}
	got, err := SetupSQL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "secret") {
		t.Fatal("the script holds the DSN's password")
	}
	for _, w := range []string{"ticket_collaborator", "ticket_attachment", "REPLICATION", `"helpdesk"`,
		"pg_create_logical_replication_slot('deskhook_1', 'pgoutput')"} {
		if !strings.Contains(got, w) {
			t.Errorf("the script lacks %q", w)
		}
	}
	path := filepath.Join("testdata", "setup.sql")
	if update() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("SetupSQL differs from %s (run with -update to accept):\n%s", path, got)
	}
	if _, err := SetupSQL(Config{DSN: "host=db port=x"}); err == nil || !strings.Contains(err.Error(), "invalid port") {
		t.Errorf("a bad DSN: %v", err)
	}
}

// TestSetupUndo: what Setup runs in its transaction, its undo takes back
// (Setup runs it when the slot cannot be created after it).
func TestSetupUndo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		prepare string
	}{
		{"a new publication", ""},
		{"a publication of setup's lacking tables, identity using an index", "ALTER TABLE tickets REPLICA IDENTITY USING INDEX tickets_pkey; " +
			"CREATE PUBLICATION deskhook FOR TABLE users WITH (publish = 'insert, update'); " +
			"COMMENT ON PUBLICATION deskhook IS 'deskhook setup {}'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, false)
			if tc.prepare != "" {
				f.db.Exec(t, tc.prepare)
			}
			before, comment := f.state(t), pubComment(t, f)
			ctx := testCtx(t, time.Minute)
			conn, err := connect(ctx, f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			facts, err := readFacts(ctx, conn, f.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var need needs
			steps := planPublication(f.cfg, facts, &need)
			if err := runSteps(ctx, conn, steps); err != nil {
				t.Fatal(err)
			}
			if s := f.state(t); s.publication != allTables || s.identity != "f" {
				t.Fatalf("the steps made %+v", s)
			}
			if err := undoSteps(ctx, conn, steps); err != nil {
				t.Fatal(err)
			}
			if s := f.state(t); s != before || pubComment(t, f) != comment {
				t.Errorf("after the undo: %+v %q, want %+v %q", s, pubComment(t, f), before, comment)
			}
		})
	}
}

func pubComment(t *testing.T, f *fixture) string {
	t.Helper()
	var c string
	if err := f.pool.QueryRow(testCtx(t, 10*time.Second), `SELECT coalesce((SELECT obj_description(oid, 'pg_publication') || ' ' ||
		pubinsert || pubupdate || pubdelete || pubtruncate FROM pg_publication WHERE pubname = 'deskhook'), '')`).Scan(&c); err != nil {
		t.Fatal(err)
	}
	return c
}
