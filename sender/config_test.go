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
	if a.Name != NameFromURL(a.URL) || b.Name != NameFromURL(b.URL) || a.Name == b.Name ||
		!strings.HasPrefix(a.Name, "hooks.example.com-") {
		t.Errorf("derived names %q %q", a.Name, b.Name)
	}
	if c.FailureLogInterval != 5*time.Minute {
		t.Errorf("failure_log_interval default %v", c.FailureLogInterval)
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
		{"same unnamed receiver", `endpoints: [{url: "http://x/a"}, {url: "https://u:p@X/a#frag"}]`,
			[]string{`endpoints[1]: endpoints[0] has the same name, "x-`, `give one of them a name`}},
		{"derived name taken", `endpoints: [{url: "http://x/a"}, {name: ` + NameFromURL("http://x/a") + `, url: "http://y"}]`,
			[]string{`endpoints[1].name: "` + NameFromURL("http://x/a") + `" is already the name of endpoints[0]`}},
		{"failure log interval", `failure_log_interval: 100ms`, []string{`failure_log_interval: must be 1s to 24h0m0s (got 100ms)`}},
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

// TestNameFromURL: an unnamed endpoint's identity is its URL's host, path
// and query; not its place in the list, its scheme or its credentials.
func TestNameFromURL(t *testing.T) {
	same := [][]string{
		{"https://hooks.example.com/faveo", "http://hooks.example.com/faveo", "https://user:pw@HOOKS.example.com/faveo#x"},
		{"https://hooks.example.com", "https://hooks.example.com/"},
		{"http://[::1]:8080/a?b=1", "http://u@[::1]:8080/a?b=1"},
	}
	seen := map[string]string{}
	for _, group := range same {
		want := NameFromURL(group[0])
		if !nameRE.MatchString(want) {
			t.Errorf("NameFromURL(%q) = %q: not a valid name", group[0], want)
		}
		if other, dup := seen[want]; dup {
			t.Errorf("%q and %q are both named %q", group[0], other, want)
		}
		seen[want] = group[0]
		for _, u := range group[1:] {
			if got := NameFromURL(u); got != want {
				t.Errorf("NameFromURL(%q) = %q, want %q as for %q", u, got, want, group[0])
			}
		}
	}
	for _, u := range []string{"https://hooks.example.com/other", "https://hooks.example.com/faveo?tenant=2",
		"https://hooks.example.com:8443/faveo", "https://hooks.example.com/faveo/x"} {
		got := NameFromURL(u)
		if other, dup := seen[got]; dup {
			t.Errorf("%q and %q are both named %q", u, other, got)
		}
		seen[got] = u
	}
	for u, prefix := range map[string]string{
		"https://hooks.example.com/a":    "hooks.example.com-",
		"http://[::1]:8080/":             "ipv6-::1:8080-",
		"http://127.0.0.1:9000/hooks":    "127.0.0.1:9000-",
		"https://xn--bcher-kva.example/": "xn--bcher-kva.example-",
		"https://bücher.example/":        "bcher.example-",
	} {
		if got := NameFromURL(u); !strings.HasPrefix(got, prefix) || len(got) != len(prefix)+8 {
			t.Errorf("NameFromURL(%q) = %q, want %q and 8 hex digits", u, got, prefix)
		}
	}
	// A secret in the path or the query stays out of the name.
	if got := NameFromURL("https://hooks.slack.com/services/T000/B000/s3cr3tt0k3n?key=k3y"); strings.Contains(got, "s3cr3t") || strings.Contains(got, "k3y") {
		t.Errorf("name %q quotes the url's secrets", got)
	}
	if got := NameFromURL("not a url"); got != "" {
		t.Errorf("NameFromURL of no url = %q", got)
	}
}

// TestReorderingKeepsNames: swapping two unnamed endpoints on one host
// swaps nothing else: each keeps its name, so its queue.
func TestReorderingKeepsNames(t *testing.T) {
	a := parse(t, `endpoints: [{url: "http://h/a"}, {url: "http://h/b"}]`)
	b := parse(t, `endpoints: [{url: "http://h/b"}, {url: "http://h/a"}]`)
	if a.Endpoints[0].Name != b.Endpoints[1].Name || a.Endpoints[1].Name != b.Endpoints[0].Name {
		t.Errorf("names by url changed with the order: %q %q, then %q %q",
			a.Endpoints[0].Name, a.Endpoints[1].Name, b.Endpoints[0].Name, b.Endpoints[1].Name)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example.com/faveo":               "https://hooks.example.com/faveo",
		"https://user:pw@hooks.example.com/a?token=abc": "https://hooks.example.com/a?…",
		"https://hooks.example.com/a?":                  "https://hooks.example.com/a?…",
		"https://hooks.example.com/a#frag":              "https://hooks.example.com/a",
		"http://u:p@[bad/x":                             "http://…",
		"http://[bad/x?token=abc":                       "http://[bad/x…",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
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
