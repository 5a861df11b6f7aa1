package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestDemoMariaDB runs `deskhook demo --source mariadb` as a newcomer
// would: every webhook of the simulated day arrives; with --keep, status
// and check work against the demo's config (a mysql source) until Ctrl-C.
// On a machine without the MariaDB server the demo installs nothing: it
// says which package to install.
func TestDemoMariaDB(t *testing.T) {
	t.Parallel()
	res := deskhook(t, nil, "demo", "--source", "mariadb", "--tickets", "4", "--rate", "40")
	if res.code != 0 {
		t.Fatalf("demo --source mariadb: %s", res)
	}
	m := regexp.MustCompile(`(\d+) webhooks arrived \((\d+) expected\)`).FindStringSubmatch(res.stdout)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("demo summary: %v\n%s", m, res.stdout)
	}
	for _, want := range []string{"throwaway MariaDB", "setup: nothing to create on the MySQL/MariaDB server",
		"ticket_created", "AAAA-0000-0001", " ms\n"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, res.stdout)
		}
	}

	keptDemo(t, []string{"--source", "mariadb", "--tickets", "2", "--rate", "40"}, func(cfgPath, _ string) {
		st := deskhook(t, nil, "status", "-c", cfgPath)
		if st.code != 0 || !strings.Contains(st.stdout, "running, ready") ||
			!regexp.MustCompile(`binlog\s+stored GTID 0-1-\d+`).MatchString(st.stdout) {
			t.Errorf("status against the kept demo: %s", st)
		}
		if res := deskhook(t, nil, "check", "-c", cfgPath); res.code != 0 || !strings.Contains(res.stdout, "ok    stored binlog position") {
			t.Errorf("check against the kept demo: %s", res)
		}
	})

	// No MariaDB server on this machine (as far as the demo can see).
	res = deskhook(t, []string{"DESKHOOK_MARIADB_BINDIR=" + t.TempDir()}, "demo", "--source", "mariadb", "--tickets", "1")
	if res.code != 1 || !strings.Contains(res.stderr, "apt-get install mariadb-server") || strings.Contains(res.stdout, "webhooks arrived") {
		t.Errorf("demo without the MariaDB server: want exit 1 naming the package; %s", res)
	}
}
