package sender

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"gopkg.in/yaml.v3"

	"github.com/deskhook/deskhook/mapping"
)

func parse(t testing.TB, doc string) Config {
	t.Helper()
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	c.SetDefaults()
	return c
}

func TestConfigDefaults(t *testing.T) {
	c := parse(t, `
endpoints:
  - url: https://hooks.example.com/faveo
  - url: https://hooks.example.com/other
  - name: crm
    url: http://crm.local:8080/in
    enabled: false
    events: [ticket_created, ticket_commented]
    format: json
    timeout: 3s
    max_in_flight: 4
    retry: {schedule: [0s, 1s, 1m]}
    filter: {departments: [2], sources: [1, 3]}
`)
	if err := c.Validate(""); err != nil {
		t.Fatal(err)
	}
	a, b, crm := c.Endpoints[0], c.Endpoints[1], c.Endpoints[2]
	if a.Name != "hooks.example.com" || b.Name != "endpoint-2" {
		t.Errorf("derived names %q %q", a.Name, b.Name)
	}
	if !a.IsEnabled() || !slices.Equal(a.Events, mapping.FaveoEvents) || a.Format != mapping.FormatForm ||
		a.Timeout != 15*time.Second || a.MaxInFlight != 16 || !slices.Equal(a.Retry.Schedule, DefaultSchedule) {
		t.Errorf("defaults %+v", a)
	}
	if c.RetryAfterCap != time.Hour {
		t.Errorf("retry_after_cap default %v", c.RetryAfterCap)
	}
	if crm.IsEnabled() || crm.Format != mapping.FormatJSON || crm.Timeout != 3*time.Second || crm.MaxInFlight != 4 ||
		!slices.Equal(crm.Retry.Schedule, []time.Duration{0, time.Second, time.Minute}) ||
		!slices.Equal(crm.Filter.Sources, []int64{1, 3}) {
		t.Errorf("explicit values %+v", crm)
	}
	var total time.Duration
	for _, d := range DefaultSchedule {
		total += d
	}
	if total < 48*time.Hour || total > 54*time.Hour {
		t.Errorf("default schedule spans %v, want about two days", total)
	}
}

func TestConfigValidationNamesThePath(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, doc string
		want      []string
	}{
		{"scheme", `endpoints: [{url: "ftp://x"}]`, []string{`endpoints[0].url: must be http or https (got "ftp://x")`}},
		{"missing url", `endpoints: [{name: a}]`, []string{`endpoints[0].url: is required`}},
		{"no host", `endpoints: [{url: "http://"}]`, []string{`endpoints[0].url: has no host`}},
		{"credentials hidden", `endpoints: [{url: "ftp://user:pw@x/?token=abc"}]`, []string{`must be http or https (got "ftp://x/?…")`}},
		{"duplicate names", `endpoints: [{name: a, url: "http://x"}, {name: a, url: "http://y"}]`,
			[]string{`endpoints[1].name: "a" is already the name of endpoints[0]`}},
		{"bad name", `endpoints: [{name: "a b", url: "http://x"}]`, []string{`endpoints[0].name: must be`}},
		{"unknown event", `endpoints: [{url: "http://x", events: [ticket_created, ticket_exploded]}]`,
			[]string{`endpoints[0].events[1]: unknown event "ticket_exploded"`}},
		{"format", `endpoints: [{url: "http://x", format: xml}]`, []string{`endpoints[0].format: must be "faveo-form" or "json" (got "xml")`}},
		{"secret prefix", `endpoints: [{url: "http://x", secret: "c2VjcmV0c2VjcmV0c2VjcmV0"}]`,
			[]string{`endpoints[0].secret: secret #1 must start with "whsec_"`}},
		{"secret base64", `endpoints: [{url: "http://x", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_!!!"}]`,
			[]string{`endpoints[0].secret: secret #2: the part after "whsec_" is not valid base64`}},
		{"reserved header", `endpoints: [{url: "http://x", headers: {webhook-id: x}}]`,
			[]string{`endpoints[0].headers: "webhook-id" is set by deskhook`}},
		{"header name", `endpoints: [{url: "http://x", headers: {"a b": x}}]`, []string{`"a b" is not a valid header name`}},
		{"timeout", `endpoints: [{url: "http://x", timeout: -1s}]`, []string{`endpoints[0].timeout: must be positive (got -1s)`}},
		{"in flight", `endpoints: [{url: "http://x", max_in_flight: 5000}]`, []string{`endpoints[0].max_in_flight: must be 1-1024 (got 5000)`}},
		{"schedule", `endpoints: [{url: "http://x", retry: {schedule: [1s, -2s]}}]`, []string{`endpoints[0].retry.schedule[1]: must not be negative (got -2s)`}},
		{"filter", `endpoints: [{url: "http://x", filter: {departments: [0]}}]`, []string{`endpoints[0].filter.departments[0]: must be a positive department id (got 0)`}},
		{"ca file", fmt.Sprintf(`endpoints: [{url: "https://x", ca_file: %q}]`, caFile), []string{`endpoints[0].ca_file: ` + caFile + ` holds no PEM certificate`}},
		{"several at once", `endpoints: [{url: "ftp://x", format: xml}]`, []string{`endpoints[0].url:`, `endpoints[0].format:`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := parse(t, c.doc).Validate("")
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
	err := parse(t, `endpoints: [{url: "ftp://x"}]`).Validate("sender")
	if err == nil || !strings.HasPrefix(err.Error(), "sender.endpoints[0].url:") {
		t.Errorf("prefixed path: %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("whsec_c2VjcmV0c2VjcmV0c2VjcmV0")
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "secret", s, "endpoint", Endpoint{Secret: s})
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %s %q %#v", s, s, s, s), fmt.Sprintf("%+v", Endpoint{Secret: s}), logged.String()} {
		if strings.Contains(out, "c2Vj") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func FuzzConfig(f *testing.F) {
	f.Add(`endpoints: [{url: "https://x/y", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers: {a: b}}]`)
	f.Add(`endpoints: [{name: a, url: "http://x", retry: {schedule: [0s, 1h]}, filter: {sources: [1]}}]`)
	f.Add(`retry_after_cap: 5m`)
	f.Fuzz(func(t *testing.T, doc string) {
		var c Config
		if yaml.Unmarshal([]byte(doc), &c) != nil {
			return
		}
		c.SetDefaults()
		err := c.Validate("")
		if err == nil {
			for i, e := range c.Endpoints {
				if e.Name == "" || e.MaxInFlight < 1 || len(e.Retry.Schedule) == 0 {
					t.Fatalf("endpoint %d valid but incomplete: %+v", i, e)
				}
				if _, _, err := newClient(&c.Endpoints[i]); err != nil {
					t.Fatalf("valid endpoint %d has no client: %v", i, err)
				}
			}
			return
		}
		if !strings.Contains(err.Error(), ": ") {
			t.Fatalf("error without a path: %v", err)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999999", 365 * 24 * time.Hour},
	} {
		if got := parseRetryAfter(c.in, now); got != c.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestSignMatchesTheReferenceLibrary(t *testing.T) {
	secrets := []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_dGhpcyBpcyBhIHNlY29uZCBzZWNyZXQ="}
	keys, err := parseSecrets(strings.Join(secrets, " "))
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"event":"ticket_created"}`)
	got := strings.Fields(sign(keys, "evt_1", "1700000000", body))
	for i, s := range secrets {
		wh, _ := standardwebhooks.NewWebhook(s)
		want, err := wh.Sign("evt_1", ts, body)
		if err != nil || got[i] != want {
			t.Errorf("signature #%d = %s, reference %s (%v)", i+1, got[i], want, err)
		}
	}
}
