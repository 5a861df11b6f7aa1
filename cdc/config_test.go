package cdc

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	if err := yaml.Unmarshal([]byte("dsn: postgres://deskhook@db/helpdesk\ntables: {users: people}\n"), &c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate("source"); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	want := Tables{Tickets: "tickets", Threads: "ticket_thread", Users: "people", Statuses: "ticket_status",
		StatusTypes: "ticket_status_type", Departments: "department", Teams: "teams",
		Collaborators: "ticket_collaborator", Attachments: "ticket_attachment"}
	if c.Tables != want || c.Slot != "deskhook" || c.Publication != "deskhook" || c.Schema != "public" || c.AutoSetup {
		t.Errorf("defaults = %+v", c)
	}
	if c.StatusInterval != 5*time.Second || c.MaxBatchChanges != 1024 || c.QueueBytes != 16<<20 ||
		c.VerifyInterval != 30*time.Second {
		t.Errorf("tuning defaults = %s %d %d %s", c.StatusInterval, c.MaxBatchChanges, c.QueueBytes, c.VerifyInterval)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, one per expected error
	}{
		{"dsn missing", "slot: s", []string{`source.dsn: required`}},
		{"dsn garbage, password redacted", `dsn: "postgres://u:hunter22@host:notaport/db"`,
			[]string{`source.dsn: not a valid PostgreSQL connection string: invalid port (got "postgres://u:xxxxx@host:notaport/db")`}},
		{"dsn unterminated quote, reason given", `dsn: "host=db password='hunter22"`,
			[]string{`source.dsn: not a valid PostgreSQL connection string: failed to parse as keyword/value ` +
				`(unterminated quoted string in connection info string) (got "host=db password=xxxxx")`}},
		{"slot name", "dsn: host=db\nslot: Desk-Hook", []string{`source.slot: must be 1-63 lowercase letters, digits or underscores (got "Desk-Hook")`}},
		{"long publication", "dsn: host=db\npublication: " + strings.Repeat("p", 64), []string{`source.publication: longer than`}},
		{"duplicate tables", "dsn: host=db\ntables: {users: tickets}", []string{`source.tables.users: same table as source.tables.tickets (got "tickets")`}},
		{"status interval", "dsn: host=db\nstatus_interval: 30s", []string{`source.status_interval: must be more than 0 and at most 10s (got 30s)`}},
		{"verify interval too short", "dsn: host=db\nverify_interval: 10ms", []string{`source.verify_interval: must be between 1s and 1h0m0s (got 10ms)`}},
		{"verify interval too long", "dsn: host=db\nverify_interval: 2h", []string{`source.verify_interval: must be between 1s and 1h0m0s (got 2h0m0s)`}},
		{"duplicate attachment table", "dsn: host=db\ntables: {attachments: ticket_thread}",
			[]string{`source.tables.attachments: same table as source.tables.threads (got "ticket_thread")`}},
		{"every problem at once", "slot: X\nmax_batch_changes: -1\nqueue_bytes: 10\nreconnect_min: 2s\nreconnect_max: 1s",
			[]string{"source.dsn", "source.slot", "source.max_batch_changes", "source.queue_bytes", "source.reconnect_max"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(tc.yaml), &c); err != nil {
				t.Fatal(err)
			}
			c.SetDefaults()
			err := c.Validate("source")
			if err == nil {
				t.Fatal("accepted")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("password in error: %v", err)
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	tests := map[string]string{
		"postgres://deskhook:s3cret@db:5432/helpdesk?sslmode=require": "postgres://deskhook:xxxxx@db:5432/helpdesk?sslmode=require",
		"postgresql://deskhook@db/helpdesk?password=s3cret":           "postgresql://deskhook@db/helpdesk?password=xxxxx",
		"postgres://u:p%40ss@db/x?sslpassword=k3y":                    "postgres://u:xxxxx@db/x?sslpassword=xxxxx",
		"postgres://u:pa@ss@db/x":                                     "postgres://u:xxxxx@db/x",
		"host=db user=deskhook password=s3cret dbname=helpdesk":       "host=db user=deskhook password=xxxxx dbname=helpdesk",
		"host=db password = 's3 cr\\'et' dbname=x":                    "host=db password = xxxxx dbname=x",
		"host=db sslpassword=k3y":                                     "host=db sslpassword=xxxxx",
		"postgres://u:s3cret@[::1:bad/db":                             "postgres://u:xxxxx@[::1:bad/db",
		"host=db user=deskhook":                                       "host=db user=deskhook",
	}
	for in, want := range tests {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

// FuzzRedactDSN: whatever surrounds it, a password placed in a DSN never
// survives redaction.
func FuzzRedactDSN(f *testing.F) {
	f.Add("host=db user=u", "s3cretpw", uint8(0))
	f.Add("db:5432/helpdesk?sslmode=require", "passWord1", uint8(1))
	f.Add("db/x", "hunter22", uint8(2))
	f.Fuzz(func(t *testing.T, rest, pw string, form uint8) {
		// Passwords of letters and digits: others must be quoted or
		// percent-encoded, and could blend with what surrounds them.
		if len(pw) < 6 || strings.ContainsFunc(pw, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) || strings.Contains(rest, pw) {
			return
		}
		var dsn string
		switch form % 3 {
		case 0:
			dsn = rest + " password=" + pw
		case 1:
			dsn = "postgres://u:" + pw + "@" + rest
		case 2:
			dsn = "postgres://u@" + rest + "?password=" + pw
		}
		if got := RedactDSN(dsn); strings.Contains(got, pw) {
			t.Fatalf("RedactDSN(%q) = %q keeps the password", dsn, got)
		}
	})
}

// FuzzConfig: any YAML yields either a decode error or a config whose
// validation does not panic and names the source path in every problem.
func FuzzConfig(f *testing.F) {
	f.Add("dsn: host=db\nslot: deskhook\n")
	f.Add("dsn: postgres://u:p@h/db\ntables: {tickets: t, users: t}\nstatus_interval: 0s\n")
	f.Add("queue_bytes: -5\nreconnect_max: 1ns\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var c Config
		if yaml.Unmarshal([]byte(doc), &c) != nil {
			return
		}
		c.SetDefaults()
		if err := c.Validate("source"); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "source.") {
					t.Fatalf("error line without its path: %q", line)
				}
			}
		}
	})
}
