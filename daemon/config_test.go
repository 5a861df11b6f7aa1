package daemon

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/sender"
)

// minimal is the smallest valid config: only the two required keys.
const minimal = `
source:
  dsn: postgres://deskhook@db.internal/helpdesk
endpoints:
  - url: https://crm.example.com/hooks
`

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(doc))
	if err != nil {
		t.Fatalf("ParseConfig:\n%v\nconfig:\n%s", err, doc)
	}
	return c
}

func TestParseConfigDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	on := true
	want := &Config{
		Source: SourceConfig{Type: "postgres", Config: cdc.Config{
			DSN: "postgres://deskhook@db.internal/helpdesk", Slot: "deskhook", Publication: "deskhook", Schema: "public",
			Tables: cdc.Tables{Tickets: "tickets", Threads: "ticket_thread", Users: "users", Statuses: "ticket_status",
				StatusTypes: "ticket_status_type", Departments: "department", Teams: "teams",
				Collaborators: "ticket_collaborator", Attachments: "ticket_attachment"},
			StatusInterval: 5 * time.Second, MaxBatchChanges: 1024, MaxBatchBytes: 8 << 20, QueueBytes: 16 << 20,
			ReconnectMin: 250 * time.Millisecond, ReconnectMax: 30 * time.Second, VerifyInterval: 30 * time.Second,
		}},
		Store: StoreConfig{Path: "deskhook.db", QueueBytes: 16 << 20},
		Faveo: mapping.Config{StateSize: mapping.DefaultStateSize, StateBytes: mapping.DefaultStateBytes, OutputBytes: 4 << 20, Tables: mapping.Tables{Tickets: "tickets", Threads: "ticket_thread",
			Users: "users", Statuses: "ticket_status", StatusTypes: "ticket_status_type", Departments: "department", Teams: "teams",
			Collaborators: "ticket_collaborator", Attachments: "ticket_attachment"}},
		Sender: sender.Config{
			RetryAfterCap:      time.Hour,
			FailureLogInterval: 5 * time.Minute,
			Memory:             sender.Memory{WindowBytes: 16 << 20, RenderBytes: 16 << 20},
			Endpoints: []sender.Endpoint{{
				Name: sender.NameFromURL("https://crm.example.com/hooks"), URL: "https://crm.example.com/hooks", Enabled: &on,
				Events:  []string{"ticket_created", "ticket_reply", "ticket_status_updated", "ticket_department_updated", "ticket_assigned"},
				Format:  mapping.FormatForm,
				Timeout: 15 * time.Second, MaxInFlight: 16,
				Retry: sender.Retry{Schedule: []time.Duration{0, 5 * time.Second, 30 * time.Second, 2 * time.Minute,
					10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour,
					12 * time.Hour, 24 * time.Hour}},
			}},
		},
		Admin:           AdminConfig{Listen: "127.0.0.1:9187", MaxSlotLag: 1 << 30, MinBinlogMargin: 1},
		Log:             LogConfig{Level: "info", Format: "text"},
		DeliveryLog:     DeliveryLogConfig{Enabled: &on, Retention: 168 * time.Hour, MaxBytes: 256 << 20, PruneInterval: time.Minute},
		ShutdownTimeout: 30 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *c, *want)
	}
}

// TestParseConfigSourceTablesReachMapper: the mapper reads the tables the
// source names.
func TestParseConfigSourceTablesReachMapper(t *testing.T) {
	c := mustParse(t, minimal+"\n"+`
faveo: {app_key: "base64:ZGVza2hvb2stZGVtby1rZXktMzItYnl0ZXMtbG9uZyE="}
`[1:])
	c2 := mustParse(t, strings.Replace(minimal, "source:\n", "source:\n  tables: {tickets: faveo_tickets, threads: faveo_threads}\n", 1))
	if c2.Faveo.Tables.Tickets != "faveo_tickets" || c2.Faveo.Tables.Threads != "faveo_threads" || c2.Faveo.Tables.Users != "users" {
		t.Errorf("faveo tables = %+v", c2.Faveo.Tables)
	}
	if c.Faveo.AppKey == "" {
		t.Error("app_key not decoded")
	}
}

func TestParseConfigExpandsVariables(t *testing.T) {
	t.Setenv("DH_PASSWORD", `p#ss:w"rd`)
	t.Setenv("DH_HOST", "db.internal")
	t.Setenv("DH_INFLIGHT", "7")
	t.Setenv("DH_TIMEOUT", "3s")
	t.Setenv("DH_ENABLED", "false")
	t.Setenv("DH_EVENT", "ticket_reply")
	t.Setenv("DH_TOKEN", "Bearer abc def")
	t.Setenv("DH_NULL", "null")
	t.Setenv("DH_PORT", "9999")
	t.Setenv("DH_LAG", "2GiB")
	t.Setenv("DH_EMPTY", "")
	c := mustParse(t, `
source:
  dsn: "host=${DH_HOST} user=deskhook password='${DH_PASSWORD}' dbname=helpdesk"
  slot: dh_${DH_PORT}
store:
  path: /var/lib/deskhook/$${not_a_var}.db
endpoints:
  - url: https://${DH_HOST}:${DH_PORT}/hooks
    secret: ${DH_EMPTY}
    max_in_flight: ${DH_INFLIGHT}
    timeout: ${DH_TIMEOUT}
    enabled: ${DH_ENABLED}
    events: [ticket_created, "${DH_EVENT}"]
    headers:
      Authorization: ${DH_TOKEN}
      X-Password: ${DH_PASSWORD}
      X-Null: ${DH_NULL}
      X-Dollars: a$b$$c
admin:
  listen: 127.0.0.1:${DH_PORT}
  max_slot_lag: ${DH_LAG}
`)
	e := c.Sender.Endpoints[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"source.dsn", c.Source.DSN, `host=db.internal user=deskhook password='p#ss:w"rd' dbname=helpdesk`},
		{"source.slot", c.Source.Slot, "dh_9999"},
		{"store.path", c.Store.Path, "/var/lib/deskhook/${not_a_var}.db"},
		{"url", e.URL, "https://db.internal:9999/hooks"},
		{"secret", string(e.Secret), ""},
		{"max_in_flight", e.MaxInFlight, 7},
		{"timeout", e.Timeout, 3 * time.Second},
		{"enabled", *e.Enabled, false},
		{"events", e.Events, []string{"ticket_created", "ticket_reply"}},
		{"headers.Authorization", e.Headers["Authorization"], "Bearer abc def"},
		{"headers.X-Password", e.Headers["X-Password"], `p#ss:w"rd`},
		{"headers.X-Null", e.Headers["X-Null"], "null"},
		{"headers.X-Dollars", e.Headers["X-Dollars"], "a$b$c"},
		{"admin.listen", c.Admin.Listen, "127.0.0.1:9999"},
		{"admin.max_slot_lag", c.Admin.MaxSlotLag, ByteSize(2 << 30)},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	if got := dsnPasswords(c.Source.DSN); !slices.Contains(got, `p#ss:w"rd`) {
		t.Errorf("dsnPasswords(%q) = %q, misses the password", c.Source.DSN, got)
	}
}

func TestParseConfigVariableErrors(t *testing.T) {
	os.Unsetenv("DH_UNSET_ONE")
	os.Unsetenv("DH_UNSET_TWO")
	_, err := ParseConfig([]byte(`
source:
  dsn: postgres://deskhook:${DH_UNSET_ONE}@db/helpdesk
endpoints:
  - url: https://crm.example.com/hooks
    headers: {Authorization: "Bearer ${DH_UNSET_TWO}"}
  - url: https://other.example.com/${oops
`))
	wantErrors(t, err,
		"source.dsn: environment variable DH_UNSET_ONE is not set (line 3)",
		"endpoints[0].headers.Authorization: environment variable DH_UNSET_TWO is not set (line 6)",
		`endpoints[1].url: malformed variable reference "${oops" (line 7)`,
	)
	// The values left unexpanded are not reported a second time.
	if strings.Contains(err.Error(), "source.dsn: not a valid") || strings.Contains(err.Error(), "endpoints[1].url: must") {
		t.Errorf("an unexpanded value was validated too:\n%v", err)
	}
}

func TestParseConfigUnknownKeys(t *testing.T) {
	_, err := ParseConfig([]byte(`
source:
  dsn: postgres://deskhook@db/helpdesk
  slto: deskhook
endpoints:
  - url: https://crm.example.com/hooks
    retry: {schedul: [1s]}
admin:
  listen: nope
loglevel: debug
`))
	wantErrors(t, err,
		"source.slto: unknown key (line 4)",
		"endpoints[0].retry.schedul: unknown key (line 7)",
		"loglevel: unknown key (line 10)",
		// reported in the same run as the unknown keys
		`admin.listen: must be host:port (port 0-65535) or "off" (got "nope")`,
	)
}

func TestParseConfigTypeErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`
source:
  dsn: postgres://deskhook@db/helpdesk
  max_batch_changes: lots
  auto_setup: maybe
endpoints:
  - url: https://crm.example.com/hooks
    timeout: banana
    retry: {schedule: [1s, soon]}
    events: ticket_created
    format: [json]
    filter: {departments: [1, two]}
admin:
  max_slot_lag: huge
shutdown_timeout: 30 seconds
store: /var/lib/deskhook.db
`))
	wantErrors(t, err,
		`source.max_batch_changes: must be a whole number (got "lots", line 4)`,
		`source.auto_setup: must be true or false (got "maybe", line 5)`,
		`endpoints[0].timeout: must be a duration such as 500ms, 15s or 2m (got "banana", line 8)`,
		`endpoints[0].retry.schedule[1]: must be a duration such as 500ms, 15s or 2m (got "soon", line 9)`,
		`endpoints[0].events: must be a list (got "ticket_created", line 10)`,
		`endpoints[0].format: must be a single value (got a list, line 11)`,
		`endpoints[0].filter.departments[1]: must be a whole number (got "two", line 12)`,
		`admin.max_slot_lag: must be a size such as 1073741824, 512MB or 1GiB (got "huge", line 14)`,
		`shutdown_timeout: must be a duration such as 500ms, 15s or 2m (got "30 seconds", line 15)`,
		`store: must be a mapping of keys (got "/var/lib/deskhook.db", line 16)`,
	)
}

// TestParseConfigReportsEverythingAtOnce: an unset variable, an unknown
// key, a wrong type and an invalid value come out of one parse.
func TestParseConfigReportsEverythingAtOnce(t *testing.T) {
	os.Unsetenv("DH_NOT_SET")
	_, err := ParseConfig([]byte(`
source: {dsn: "${DH_NOT_SET}", slot: UPPER}
endpoints: [{url: "ftp://x", timeout: soon, colour: red}]
log: {level: loud}
`))
	wantErrors(t, err,
		"source.dsn: environment variable DH_NOT_SET is not set (line 2)",
		`source.slot: must be 1-63 lowercase letters, digits or underscores (got "UPPER")`,
		`endpoints[0].url: must be http or https (got "ftp://x")`,
		`endpoints[0].timeout: must be a duration such as 500ms, 15s or 2m (got "soon", line 3)`,
		"endpoints[0].colour: unknown key (line 3)",
		`log.level: must be debug, info, warn or error (got "loud")`)
	if n := len(joined(err)); n != 6 {
		t.Errorf("%d errors, want 6:\n%v", n, err)
	}
}

func TestParseConfigDuplicateKey(t *testing.T) {
	_, err := ParseConfig([]byte(minimal + "log: {level: info}\nlog: {level: debug}\n"))
	wantErrors(t, err, "log: set twice (lines 6 and 7)")
}

func TestParseConfigNotAMapping(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "just text\n", "- a\n- b\n", "source: [\n"} {
		_, err := ParseConfig([]byte(doc))
		if err == nil || strings.TrimSpace(err.Error()) == "" {
			t.Errorf("ParseConfig(%q) = %v, want an error", doc, err)
		}
	}
}

// TestParseConfigInvalidFields: each field that can be invalid yields an
// error naming its YAML path and the bad value; all of them together yield
// every error at once.
func TestParseConfigInvalidFields(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		yaml string // appended to the endpoint list item (indented by 4) or, with top, at top level
		top  bool
		want string
	}{
		{"dsn required", "source: {dsn: \"\"}", true, "source.dsn: required"},
		{"dsn unparsable", "source: {dsn: \"postgres://u:secretpw@h:notaport/db\"}", true, `source.dsn: not a valid PostgreSQL connection string: invalid port (got "postgres://u:xxxxx@h:notaport/db")`},
		{"slot", "source: {dsn: x, slot: Bad-Slot}", true, `source.slot: must be 1-63 lowercase letters, digits or underscores (got "Bad-Slot")`},
		{"publication", "source: {dsn: x, publication: " + strings.Repeat("p", 64) + "}", true, "source.publication: longer than PostgreSQL's 63-byte identifier limit"},
		{"schema", "source: {dsn: x, schema: " + strings.Repeat("s", 70) + "}", true, "source.schema: longer than"},
		{"table clash", "source: {dsn: x, tables: {threads: tickets}}", true, `source.tables.threads: same table as source.tables.tickets (got "tickets")`},
		{"status interval", "source: {dsn: x, status_interval: 1m}", true, "source.status_interval: must be more than 0 and at most 10s (got 1m0s)"},
		{"max batch changes", "source: {dsn: x, max_batch_changes: -1}", true, "source.max_batch_changes: must be between 1 and 1048576 (got -1)"},
		{"max batch bytes", "source: {dsn: x, max_batch_bytes: 100}", true, "source.max_batch_bytes: must be at least 65536 (got 100)"},
		{"queue bytes", "source: {dsn: x, queue_bytes: 100}", true, "source.queue_bytes: must be at least 65536 (got 100)"},
		{"reconnect min", "source: {dsn: x, reconnect_min: -1s}", true, "source.reconnect_min: must be more than 0 and at most 10m0s (got -1s)"},
		{"reconnect max", "source: {dsn: x, reconnect_max: 100ms}", true, "source.reconnect_max: must be at least reconnect_min 250ms (got 100ms)"},
		{"store path", `store: {path: "  "}`, true, `store.path: required (got "  ")`},
		{"app key", `faveo: {app_key: "base64:c2hvcnQ="}`, true, "faveo.app_key: must be 32 bytes for AES-256-CBC, Faveo's cipher (got 5 bytes)"},
		{"state size", "faveo: {state_size: -5}", true, "faveo.state_size: must be at least 1 (got -5)"},
		{"state bytes", "faveo: {state_bytes: 1000}", true, "faveo.state_bytes: must be at least 1048576 (got 1000)"},
		{"output bytes", "faveo: {output_bytes: 1000}", true, "faveo.output_bytes: must be at least 65536 (got 1000)"},
		{"store queue bytes", "store: {queue_bytes: 100}", true, "store.queue_bytes: must be at least 65536 (got 100)"},
		{"window bytes", "window_bytes: 100", true, "window_bytes: must be at least 65536 (got 100)"},
		{"render bytes", "render_bytes: -1", true, "render_bytes: must be at least 65536 (got -1)"},
		{"memory limit small", "memory_limit: 1MiB", true, "memory_limit: must be at least 32MiB, or auto, or off (got 1MiB)"},
		{"memory limit word", "memory_limit: lots", true, `memory_limit: must be auto, off, or a size such as 268435456, 256MB or 256MiB (got "lots", line`},
		{"memory limit zero", "memory_limit: 0", true, `memory_limit: must be auto, off, or a size such as 268435456, 256MB or 256MiB (got "0", line`},
		{"retry after cap", "retry_after_cap: -1s", true, "retry_after_cap: must not be negative (got -1s)"},
		{"admin listen", "admin: {listen: localhost}", true, `admin.listen: must be host:port (port 0-65535) or "off" (got "localhost")`},
		{"admin port", "admin: {listen: \"127.0.0.1:99999\"}", true, `admin.listen: must be host:port (port 0-65535) or "off" (got "127.0.0.1:99999")`},
		{"admin port name", "admin: {listen: \"127.0.0.1:http\"}", true, `admin.listen: must be host:port (port 0-65535) or "off" (got "127.0.0.1:http")`},
		{"max slot lag", "admin: {max_slot_lag: 99999999999TiB}", true, `admin.max_slot_lag: must be a size such as 1073741824, 512MB or 1GiB (got "99999999999TiB", line`},
		{"log level", "log: {level: verbose}", true, `log.level: must be debug, info, warn or error (got "verbose")`},
		{"log format", "log: {format: xml}", true, `log.format: must be text or json (got "xml")`},
		{"delivery log retention", "delivery_log: {retention: 500ms}", true, "delivery_log.retention: must be at least 1s (got 500ms); to record nothing, set delivery_log.enabled: false"},
		{"delivery log max bytes", "delivery_log: {max_bytes: 1KB}", true, "delivery_log.max_bytes: must be at least 64KiB (got 1000)"},
		{"delivery log max bytes unit", "delivery_log: {max_bytes: lots}", true, `delivery_log.max_bytes: must be a size such as 1073741824, 512MB or 1GiB (got "lots", line`},
		{"delivery log prune interval", "delivery_log: {prune_interval: 2h}", true, "delivery_log.prune_interval: must be between 100ms and 1h (got 2h0m0s)"},
		{"delivery log enabled", "delivery_log: {enabled: maybe}", true, "delivery_log.enabled"},
		{"shutdown timeout", "shutdown_timeout: -5s", true, "shutdown_timeout: must not be negative (got -5s)"},
		{"shutdown timeout cap", "shutdown_timeout: 2000000h", true, "shutdown_timeout: must be at most 1h0m0s (got 2000000h0m0s)"},
		{"shutdown timeout overflow", "shutdown_timeout: 9999999h", true, `shutdown_timeout: must be at most 1h0m0s (got "9999999h", line 4)`},
		{"retry after cap cap", "retry_after_cap: 2000000h", true, "retry_after_cap: must be at most 168h0m0s (got 2000000h0m0s)"},
		{"status interval overflow", "source: {dsn: x, status_interval: 9999999h}", true, `source.status_interval: must be at most 10s (got "9999999h", line 3)`},
		{"reconnect overflow", "source: {dsn: x, reconnect_max: 99999999999h}", true, `source.reconnect_max: must be at most 10m0s (got "99999999999h", line 3)`},
		{"reconnect cap", "source: {dsn: x, reconnect_max: 2000000h}", true, "source.reconnect_max: must be at most 10m0s (got 2000000h0m0s)"},
		{"probe listen", "admin: {probe_listen: nope}", true, `admin.probe_listen: must be host:port (port 0-65535), or empty for none (got "nope")`},
		{"probe listen same", "admin: {listen: \"127.0.0.1:9187\", probe_listen: \"127.0.0.1:9187\"}", true, `admin.probe_listen: must differ from admin.listen (got "127.0.0.1:9187" for both)`},
		{"admin token short", "admin: {token: tooshort}", true, "admin.token: must be at least 16 characters without spaces (got 8 characters)"},
		{"admin token space", "admin: {token: \"with a space in the token\"}", true, "admin.token: must be at least 16 characters without spaces (got 25 characters)"},
		{"admin hosts port", "admin: {hosts: [\"ops.example:9187\"]}", true, `admin.hosts[0]: must be a host name or IP address without port (got "ops.example:9187")`},
		{"admin hosts empty", "admin: {hosts: [\"\"]}", true, `admin.hosts[0]: must be a host name or IP address without port (got "")`},

		{"url scheme", "url: ftp://x", false, `endpoints[1].url: must be http or https (got "ftp://x")`},
		{"url host", "url: \"http://\"", false, `endpoints[1].url: has no host (got "http:")`},
		{"url required", "name: nourl", false, "endpoints[1].url: is required"},
		{"name", "name: -bad\n    url: http://b", false, `endpoints[1].name: must be 1-100 letters, digits or . _ : - starting with a letter or digit (got "-bad")`},
		{"event", "url: http://b\n    events: [ticket_created, ticket_exploded]", false, `endpoints[1].events[1]: unknown event "ticket_exploded"`},
		{"format", "url: http://b\n    format: xml", false, `endpoints[1].format: must be "faveo-form" or "json" (got "xml")`},
		{"secret prefix", "url: http://b\n    secret: hunter2hunter2", false, `endpoints[1].secret: secret #1 must start with "whsec_"`},
		{"secret base64", "url: http://b\n    secret: whsec_!!!", false, `endpoints[1].secret: secret #1: the part after "whsec_" is not valid base64`},
		{"secret length", "url: http://b\n    secret: \"whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODk= whsec_c2hvcnQ=\"", false, "endpoints[1].secret: secret #2 decodes to 5 bytes (want 16-128"},
		{"header name", "url: http://b\n    headers: {\"Bad Header\": x}", false, `endpoints[1].headers: "Bad Header" is not a valid header name`},
		{"header reserved", "url: http://b\n    headers: {webhook-id: x}", false, `endpoints[1].headers: "webhook-id" is set by deskhook and cannot be configured`},
		{"header value", "url: http://b\n    headers: {X-A: \"a\\nb\"}", false, "endpoints[1].headers.X-A: value must not contain CR, LF or NUL"},
		{"timeout", "url: http://b\n    timeout: -1s", false, "endpoints[1].timeout: must be positive (got -1s)"},
		{"timeout cap", "url: http://b\n    timeout: 2000000h", false, "endpoints[1].timeout: must be at most 10m0s (got 2000000h0m0s)"},
		{"timeout overflow", "url: http://b\n    timeout: 9999999h", false, `endpoints[1].timeout: must be at most 10m0s (got "9999999h", line`},
		{"retry delay cap", "url: http://b\n    retry: {schedule: [0s, 2000000h]}", false, "endpoints[1].retry.schedule[1]: must be at most 168h0m0s (got 2000000h0m0s)"},
		{"retry delay overflow", "url: http://b\n    retry: {schedule: [0s, 9999999h]}", false, `endpoints[1].retry.schedule[1]: must be at most 168h0m0s (got "9999999h", line`},
		{"http credentials", "url: http://crm:pw-in-clear@crm.example.com/hooks", false, `endpoints[1].url: holds credentials over plain http, which anyone on the network can read: use https, or a header (got "http://crm.example.com/hooks")`},
		{"http user", "url: http://crm@crm.example.com/hooks", false, `endpoints[1].url: holds credentials over plain http`},
		{"max in flight", "url: http://b\n    max_in_flight: 5000", false, "endpoints[1].max_in_flight: must be 1-1024 (got 5000)"},
		{"retry schedule", "url: http://b\n    retry: {schedule: [0s, -10s]}", false, "endpoints[1].retry.schedule[1]: must not be negative (got -10s)"},
		{"filter departments", "url: http://b\n    filter: {departments: [0]}", false, "endpoints[1].filter.departments[0]: must be a positive department id (got 0)"},
		{"filter sources", "url: http://b\n    filter: {sources: [-3]}", false, "endpoints[1].filter.sources[0]: must be a positive ticket source id (got -3)"},
		{"ca file missing", "url: https://b\n    ca_file: /nonexistent/ca.pem", false, "endpoints[1].ca_file: open /nonexistent/ca.pem: no such file or directory"},
		{"ca file not pem", "url: https://b\n    ca_file: " + notPEM, false, "endpoints[1].ca_file: " + notPEM + " holds no PEM certificate"},
	}
	doc := func(c struct {
		name, yaml string
		top        bool
		want       string
	}) string {
		if c.top {
			// Later keys of the same section override the base's in
			// flow style: give the case its own section.
			base := "endpoints:\n  - url: https://crm.example.com/hooks\n"
			if !strings.HasPrefix(c.yaml, "source:") {
				base += "source: {dsn: postgres://deskhook@db/helpdesk}\n"
			}
			return base + c.yaml + "\n"
		}
		return minimal + "  - " + c.yaml + "\n"
	}
	var all []string
	var wants []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(doc(c)))
			wantErrors(t, err, c.want)
		})
		if !c.top {
			all = append(all, "  - "+c.yaml)
			wants = append(wants, c.want)
		}
	}
	// Every endpoint problem at once, each under its own index.
	t.Run("all at once", func(t *testing.T) {
		text := minimal + strings.Join(all, "\n") + "\n"
		_, err := ParseConfig([]byte(text))
		for i, w := range wants {
			wantErrors(t, err, strings.Replace(w, "endpoints[1]", "endpoints["+strconv.Itoa(i+1)+"]", 1))
		}
	})
}

func TestParseConfigDuplicateEndpointName(t *testing.T) {
	_, err := ParseConfig([]byte(minimal + "  - {name: dup, url: http://b}\n  - {name: dup, url: http://c}\n"))
	wantErrors(t, err, `endpoints[2].name: "dup" is already the name of endpoints[1]`)
}

func TestParseConfigNoEndpoints(t *testing.T) {
	_, err := ParseConfig([]byte("source: {dsn: postgres://deskhook@db/helpdesk}\n"))
	wantErrors(t, err, "endpoints: at least one endpoint (with a url) is required")
}

// TestParseConfigErrorsKeepSecrets: no validation error quotes a secret.
func TestParseConfigErrorsKeepSecrets(t *testing.T) {
	const pw, appKey, secret, header = "s3cr3t-pw-value", "base64:dG9vc2hvcnRrZXlzZWNyZXQ=", "whsec_dG9vc2hvcnQ=", "Bearer tok-123456"
	_, err := ParseConfig([]byte(`
source: {dsn: "postgres://u:` + pw + `@h:bad/db"}
faveo: {app_key: "` + appKey + `"}
endpoints:
  - url: "https://u:` + pw + `@x/?token=` + pw + `"
    secret: ` + secret + `
    headers: {X-Auth: "` + header + `\n"}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, s := range []string{pw, "dG9vc2hvcnRrZXlzZWNyZXQ=", "dG9vc2hvcnQ=", "tok-123456"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error quotes secret %q:\n%v", s, err)
		}
	}
}

func TestSecrets(t *testing.T) {
	c := mustParse(t, `
source: {dsn: "postgres://deskhook:p%40ss%2Fword@db/helpdesk?sslpassword=keypass"}
faveo: {app_key: "base64:ZGVza2hvb2stZGVtby1rZXktMzItYnl0ZXMtbG9uZyE="}
endpoints:
  - url: https://user:urlpass@crm.example.com/hooks
    secret: "whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODk= whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1"
    headers: {Authorization: Bearer-tok, X-Short: abc}
admin: {token: admin-token-0123456789}
`)
	got := c.Secrets()
	for _, want := range []string{"admin-token-0123456789", "p@ss/word", "p%40ss%2Fword", "keypass", "ZGVza2hvb2stZGVtby1rZXktMzItYnl0ZXMtbG9uZyE=",
		"whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODk=", "MDEyMzQ1Njc4OTAxMjM0NTY3ODk=", "YWJjZGVmZ2hpamtsbW5vcHFyc3R1", "Bearer-tok", "urlpass"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() misses %q: %q", want, got)
		}
	}
	if slices.Contains(got, "abc") {
		t.Error("a 3-byte header value is scrubbed: it would mangle innocent text")
	}
	for _, dsn := range []string{
		"host=db user=u password=plainpw dbname=x",
		"host=db password = 'quoted pw' dbname=x",
		"host=db sslmode=verify-full sslrootcert=/nonexistent password=unparsed",
	} {
		ps := dsnPasswords(dsn)
		want := map[string]string{"host=db user=u password=plainpw dbname=x": "plainpw",
			"host=db password = 'quoted pw' dbname=x":                                "quoted pw",
			"host=db sslmode=verify-full sslrootcert=/nonexistent password=unparsed": "unparsed"}[dsn]
		if !slices.Contains(ps, want) {
			t.Errorf("dsnPasswords(%q) = %q, misses %q", dsn, ps, want)
		}
	}
}

// TestExampleConfig: config.example.yaml parses, documents every key, and
// shows each default as it is.
func TestExampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DESKHOOK_DB_PASSWORD", "pw")
	t.Setenv("CRM_WEBHOOK_SECRET", "whsec_MDEyMzQ1Njc4OTAxMjM0NTY3ODk=")
	c, err := ParseConfig(raw)
	if err != nil {
		t.Fatalf("config.example.yaml:\n%v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for n, p := range indexPaths(&root).path {
		if n.Kind != yaml.DocumentNode {
			documented[strings.ReplaceAll(p, "[0]", "[]")] = true
		}
	}
	for _, key := range configKeys(reflect.TypeFor[Config](), "") {
		// A MySQL source's own keys are refused in the example's
		// PostgreSQL source: they are documented commented out.
		if k, ok := strings.CutPrefix(key, "source."); ok && slices.Contains(mysqlOnlyKeys, k) {
			if !regexp.MustCompile(`(?m)^\s*#\s+` + k + `: `).Match(raw) {
				t.Errorf("config.example.yaml does not document %s (commented out)", key)
			}
			continue
		}
		if !documented[key] {
			t.Errorf("config.example.yaml does not document %s", key)
		}
	}
	// Every value in the example is the default, except the ones an
	// operator must or would set.
	def := mustParse(t, "source: {dsn: "+c.Source.DSN+"}\nendpoints: [{url: "+c.Sender.Endpoints[0].URL+"}]\n")
	def.Sender.Endpoints[0].Name = c.Sender.Endpoints[0].Name
	def.Sender.Endpoints[0].Secret = c.Sender.Endpoints[0].Secret
	def.Sender.Endpoints[0].Headers = c.Sender.Endpoints[0].Headers
	def.Sender.Endpoints[0].Filter = c.Sender.Endpoints[0].Filter // [] vs nil
	if c.Sender.Endpoints[0].Headers == nil {
		def.Sender.Endpoints[0].Headers = nil
	}
	if len(c.Admin.Hosts) == 0 {
		def.Admin.Hosts = c.Admin.Hosts // [] vs nil
	}
	if !reflect.DeepEqual(c, def) {
		t.Errorf("config.example.yaml shows values other than the defaults:\n got %+v\nwant %+v", *c, *def)
	}
}

// configKeys lists the YAML paths of every key of t (lists as "[]").
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		ft := f.Type
		if opts == "inline" {
			keys = append(keys, configKeys(ft, prefix)...)
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		keys = append(keys, p)
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, configKeys(ft.Elem(), p+"[]")...)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]():
			keys = append(keys, configKeys(ft, p)...)
		}
	}
	return keys
}

func FuzzParseConfig(f *testing.F) {
	f.Add(minimal)
	if raw, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(string(raw))
	}
	f.Add("source: {dsn: ${HOME}}\nendpoints: [{url: \"http://x/$$\", retry: {schedule: [0s, 10ms]}}]\n")
	f.Add("source: {dsn: x, slto: 1}\nendpoints: [{url: ftp://x, timeout: banana}]\nadmin: {max_slot_lag: 1GiB}\n")
	f.Add("source: {type: mysql, dsn: \"u:p@tcp(h:1)/d\", server_id: 9, time_zone: \"+02:00\", schema: x}\nendpoints: [{url: http://x}]\n")
	f.Add("source: {type: mysql, dsn: \"u:p@unix(/s)/d?tls=true\", heartbeat: 1s, min_retention: -1h}\nendpoints: [{url: http://x}]\nadmin: {min_binlog_margin: -3}\n")
	f.Add("a: &a [*a]\n")
	f.Add("admin: {max_slot_lag: 99999999999999999999}\n")
	f.Add("endpoints: [{url: http://x, headers: {A: {b: c}}}]\n")
	f.Add("source: {dsn: x}\nendpoints: [{url: \"http://u:p@[::1]:1/\", timeout: 9999999h, retry: {schedule: [1.5h30m]}}]\nshutdown_timeout: +2000000h\n")
	f.Add("source: {dsn: x}\nendpoints: [{url: http://x}]\nadmin: {listen: \"[::]:0\", probe_listen: \":1\", token: ${NOPE_UNSET}, hosts: [\"::1\", \"a.b.\"]}\n")
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := ParseConfig([]byte(doc))
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("empty error for %q", doc)
			}
			for _, e := range joined(err) {
				if strings.TrimSpace(e.Error()) == "" {
					t.Fatalf("an empty error among %q for %q", err, doc)
				}
			}
			return
		}
		if c == nil {
			t.Fatalf("nil config and nil error for %q", doc)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config: %v", err)
		}
		_ = c.Secrets()
	})
}

// wantErrors fails unless err's text contains each of want.
func wantErrors(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q; got:\n%v", w, err)
		}
	}
}

// TestMySQLSourceConfig: a mysql source takes the shared keys and its own,
// with binlog's defaults; a key of the other type is refused with its path
// and line, for either type; the DSN's password is scrubbed.
func TestMySQLSourceConfig(t *testing.T) {
	t.Setenv("DB_PW", "s3cret:pw@x")
	c := mustParse(t, `
source:
  type: mysql
  dsn: "deskhook:${DB_PW}@tcp(db.internal:3306)/helpdesk"
  slot: helpdesk1
  time_zone: Europe/Berlin
  tables: {attachments: faveo_attachment}
  verify_interval: 1m
endpoints: [{url: "https://crm.example.com/hooks"}]
`)
	want := binlog.Config{DSN: "deskhook:s3cret:pw@x@tcp(db.internal:3306)/helpdesk", Slot: "helpdesk1",
		TimeZone: "Europe/Berlin", Tables: change.Tables{Attachments: "faveo_attachment"}}
	want.SetDefaults()
	if got := c.Source.MySQL(); !reflect.DeepEqual(got, want) {
		t.Errorf("the binlog config:\n got %+v\nwant %+v", got, want)
	}
	if !c.Source.IsMySQL() || c.Source.VerifyInterval != time.Minute || c.Faveo.Tables.Attachments != "faveo_attachment" ||
		c.Source.ServerID != binlog.DefaultServerID("helpdesk1") {
		t.Errorf("source %+v, mapper's tables %+v", c.Source, c.Faveo.Tables)
	}
	if s := c.Secrets(); !slices.Contains(s, "s3cret:pw@x") {
		t.Errorf("secrets %q miss the DSN's password", s)
	}

	for _, tc := range []struct{ doc, want string }{
		{"source:\n  type: mysql\n  dsn: \"u:p@tcp(h:3306)/d\"\n  publication: x\n  status_interval: 2s\n",
			"source.publication: applies to a PostgreSQL (source.type: postgres) source only; this source is MySQL/MariaDB (source.type: mysql) (line 4)"},
		{"source:\n  type: mysql\n  dsn: \"u:p@tcp(h:3306)/d\"\n  publication: x\n  status_interval: 2s\n",
			"source.status_interval: applies to a PostgreSQL"},
		{"source:\n  dsn: postgres://h/d\n  server_id: 7\n",
			"source.server_id: applies to a MySQL/MariaDB (source.type: mysql) source only; this source is PostgreSQL (source.type: postgres) (line 3)"},
		{"source:\n  type: oracle\n  dsn: x\n", `source.type: must be postgres or mysql (mariadb is read as mysql) (got "oracle")`},
		{"source:\n  type: MariaDB\n  dsn: \"u:p@tcp(h:3306)/d\"\n  publication: x\n",
			"source.publication: applies to a PostgreSQL (source.type: postgres) source only; this source is MySQL/MariaDB"},
		{"source:\n  type: mysql\n  dsn: \"postgres://h/d\"\n", "source.dsn: "},
		{"source:\n  type: mysql\n  dsn: \"u:p@tcp(h:3306)/\"\n", "source.dsn: names no database"},
		{"source:\n  type: mysql\n  dsn: \"u:p@tcp(h:3306)/d\"\n  heartbeat: 1ms\n", "source.heartbeat: must be between"},
		{"source:\n  type: mysql\n  dsn: \"u:p@tcp(h:3306)/d\"\n  reconnect_max: 1h\n", "source.reconnect_max: must be at most 10m0s (got 1h0m0s)"},
	} {
		_, err := ParseConfig([]byte(tc.doc + "endpoints: [{url: \"https://crm.example.com/hooks\"}]\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config\n%s: %v\nwant an error with %q", tc.doc, err, tc.want)
		}
	}
}

// TestSourceKeysClassified: every key of the source section is either
// shared or one type's own, and binlog's keys are all a mysql source's.
func TestSourceKeysClassified(t *testing.T) {
	keys := configKeys(reflect.TypeFor[SourceConfig](), "")
	var own []string
	for _, k := range keys {
		if !strings.Contains(k, ".") {
			own = append(own, k)
		}
	}
	pg := configKeys(reflect.TypeFor[cdc.Config](), "")
	for _, k := range own {
		inPG, pgOnly, myOnly := slices.Contains(pg, k), slices.Contains(pgOnlyKeys, k), slices.Contains(mysqlOnlyKeys, k)
		switch {
		case k == "type":
		case pgOnly && !inPG, myOnly && inPG, pgOnly && myOnly, !inPG && !myOnly:
			t.Errorf("source.%s: in cdc.Config %v, PostgreSQL only %v, MySQL only %v", k, inPG, pgOnly, myOnly)
		}
	}
	for _, k := range configKeys(reflect.TypeFor[binlog.Config](), "") {
		if k := strings.Split(k, ".")[0]; slices.Contains(pgOnlyKeys, k) || !slices.Contains(own, k) {
			t.Errorf("binlog's key %s is not a mysql source's", k)
		}
	}
}

// TestSourceTypeNames: the names people give their database select the
// source they mean.
func TestSourceTypeNames(t *testing.T) {
	for name, mysql := range map[string]bool{"mysql": true, "MariaDB": true, "mariadb": true, "postgres": false, "PostgreSQL": false} {
		dsn := "postgres://h/d"
		if mysql {
			dsn = "u:p@tcp(h:3306)/d"
		}
		c, err := ParseConfig([]byte("source:\n  type: " + name + "\n  dsn: \"" + dsn + "\"\nendpoints: [{url: \"https://crm.example.com/hooks\"}]\n"))
		if err != nil {
			t.Errorf("type %s: %v", name, err)
			continue
		}
		c.SetDefaults()
		if err := c.Validate(); err != nil || c.Source.IsMySQL() != mysql {
			t.Errorf("type %s: mysql %v (want %v), %v", name, c.Source.IsMySQL(), mysql, err)
		}
	}
}
