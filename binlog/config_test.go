package binlog

import (
	"strings"

	"github.com/go-sql-driver/mysql"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	var c Config
	c.DSN = "deskhook:secret@tcp(db:3306)/helpdesk"
	c.SetDefaults()
	if err := c.Validate("source"); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.ServerID != DefaultServerID("deskhook") || c.ServerID < 1<<31 || c.Heartbeat != DefaultHeartbeat ||
		c.Tables.Tickets != "tickets" || c.MinRetention != DefaultMinRetention {
		t.Errorf("defaults: %+v", c)
	}
	if DefaultServerID("deskhook") == DefaultServerID("deskhook2") {
		t.Error("two slot names give one server_id")
	}

	bad := c
	bad.DSN = "deskhook:secret@tcp(db:3306)/"
	bad.TimeZone = "Mars/Olympus"
	bad.Heartbeat = time.Millisecond
	bad.Tables.Users = "tickets"
	bad.MaxBatchChanges = 0
	bad.ReconnectMax = time.Millisecond
	err := bad.Validate("source")
	for _, want := range []string{`source.dsn: names no database`, `source.time_zone: unknown time zone`,
		`(got "Mars/Olympus")`, "source.heartbeat: must be between 100ms and 1h (got 1ms)",
		`source.tables.users: same table as source.tables.tickets (got "tickets")`, "source.max_batch_changes",
		"source.reconnect_max"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("Validate shows the password: %v", err)
	}
	for _, dsn := range []string{"", "not a dsn@@", "u:p@udp(x)/db"} {
		b := c
		b.DSN = dsn
		if err := b.Validate("source"); err == nil || !strings.Contains(err.Error(), "source.dsn") {
			t.Errorf("DSN %q: %v", dsn, err)
		}
	}
	for _, z := range []string{"UTC", "+05:30", "-08:00", "Europe/Berlin"} {
		if _, err := zoneByName(z); err != nil {
			t.Errorf("zone %q: %v", z, err)
		}
	}
	for _, z := range []string{"SYSTEM", "+5", "+25:00", "CEST"} {
		if _, err := zoneByName(z); err == nil {
			t.Errorf("zone %q accepted", z)
		}
	}
	if _, err := serverZone("SYSTEM", "CET"); err == nil || !strings.Contains(err.Error(), "source.time_zone") {
		t.Errorf("SYSTEM/CET: %v; want a request to set source.time_zone", err)
	}
	if loc, err := serverZone("SYSTEM", "UTC"); err != nil || loc.String() != "UTC" {
		t.Errorf("SYSTEM/UTC: %v %v", loc, err)
	}
}

func FuzzRedactDSN(f *testing.F) {
	f.Add("user", "secret", "tcp(db:3306)/helpdesk?tls=true")
	f.Add("u", "p@ss:w/rd", "unix(/run/mysqld.sock)/h")
	f.Add("", "", "/")
	f.Fuzz(func(t *testing.T, user, pass, rest string) {
		if len(pass) < 4 || strings.ContainsAny(user, ":@/") {
			return
		}
		dsn := user + ":" + pass + "@" + rest
		if mc, err := mysql.ParseDSN(dsn); err == nil && DSNPassword(dsn) != mc.Passwd {
			t.Fatalf("DSNPassword(%q) = %q, the driver reads %q", dsn, DSNPassword(dsn), mc.Passwd)
		}
		got := RedactDSN(dsn)
		if mc, err := mysql.ParseDSN(got); err == nil {
			if mc.Passwd != "" && mc.Passwd != redacted {
				t.Fatalf("RedactDSN(%q) = %q keeps the password %q", dsn, got, mc.Passwd)
			}
		} else if strings.Contains(got, ":"+pass+"@") {
			t.Fatalf("RedactDSN(%q) = %q shows the password", dsn, got)
		}
	})
}
