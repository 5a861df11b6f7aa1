package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCheckWarnsAndFails: check looks at what run will trip on beyond the
// tables: max_slot_wal_keep_size (WARN while unbounded, with the fix),
// wal_sender_timeout against source.status_interval (WARN when status
// updates must come more often than configured, FAIL when none can come
// in time) and the store's directory; each problem on one line, with its
// fix, exit 1 only for a FAIL.
func TestCheckWarnsAndFails(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	e.setup()
	res := e.must("check")
	if !regexp.MustCompile(`(?m)^WARN  max_slot_wal_keep_size: unbounded \(-1\)`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "      fix: ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'") ||
		!regexp.MustCompile(`(?m)^ok    wal_sender_timeout: 1m0s; deskhook sends its status every 5s`).MatchString(res.stdout) ||
		!regexp.MustCompile(`(?m)^ok    store space `+regexp.QuoteMeta(e.dir)+`: `).MatchString(res.stdout) {
		t.Errorf("check on a set-up database:\n%s", res.stdout)
	}
	for _, name := range []string{"table public.ticket_collaborator", "table public.ticket_attachment",
		"columns public.tickets", "columns public.ticket_attachment"} {
		if !regexp.MustCompile(`(?m)^ok    ` + regexp.QuoteMeta(name) + `: `).MatchString(res.stdout) {
			t.Errorf("check lacks %q:\n%s", name, res.stdout)
		}
	}

	// The database's own setting: it applies to this database's sessions
	// only (the cluster is shared with other tests).
	e.db.Exec(t, fmt.Sprintf(`ALTER DATABASE %s SET wal_sender_timeout = '6s'`, e.db.Name))
	res = e.must("check")
	if !regexp.MustCompile(`(?m)^WARN  wal_sender_timeout: 6s: deskhook sends its status every 2s \(a third of it\), not every 5s`).MatchString(res.stdout) ||
		!strings.Contains(res.stdout, "      fix: set source.status_interval to 2s or less") {
		t.Errorf("check with wal_sender_timeout 6s:\n%s", res.stdout)
	}

	e.db.Exec(t, fmt.Sprintf(`ALTER DATABASE %s SET wal_sender_timeout = '200ms'`, e.db.Name))
	e.section("store")["path"] = filepath.Join(e.dir, "no-such-dir", "deskhook.db")
	e.writeConfig()
	res = e.run("check")
	if res.code != 1 {
		t.Errorf("check with two failures: want exit 1; %s", res)
	}
	fails := regexp.MustCompile(`(?m)^FAIL  .*$`).FindAllString(res.stdout, -1)
	want := []string{
		"FAIL  wal_sender_timeout: 200ms: deskhook answers at most every 100ms, too seldom for a third of it; the server would end the connection",
		"FAIL  store space " + filepath.Join(e.dir, "no-such-dir") + ": the store's directory does not exist",
	}
	if strings.Join(fails, "\n") != strings.Join(want, "\n") || !strings.Contains(res.stdout, "2 check(s) failed") {
		t.Errorf("failures:\n%s\nwant:\n%s\n%s", strings.Join(fails, "\n"), strings.Join(want, "\n"), res.stdout)
	}
	if !strings.Contains(res.stdout, "      fix: mkdir -p "+filepath.Join(e.dir, "no-such-dir")+", or set store.path") {
		t.Errorf("no fix for the store's directory:\n%s", res.stdout)
	}
}
