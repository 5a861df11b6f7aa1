package sender

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deskhook/deskhook/mapping"
)

// Config is the sender's part of deskhook.yaml.
type Config struct {
	Endpoints []Endpoint `yaml:"endpoints"`
	// RetryAfterCap bounds how long a Retry-After answer (on 429 and 503)
	// may hold an endpoint back (default 1h).
	RetryAfterCap time.Duration `yaml:"retry_after_cap"`
	// FailureLogInterval is how often, at most, a failing endpoint's
	// summary is logged (default 5m): its first failure is logged at once,
	// then one line per interval while it keeps failing, then its recovery.
	FailureLogInterval time.Duration `yaml:"failure_log_interval"`

	// Memory bounds what each endpoint holds of the events, in bytes
	// (window_bytes, render_bytes: memory.go).
	Memory `yaml:",inline"`
}

// Endpoint is one receiver of webhooks.
type Endpoint struct {
	// Name is the endpoint's identity: it keys its queue and dead letters
	// in the outbox, its metrics and logs. Default: NameFromURL, never the
	// endpoint's place in the list. An endpoint whose name leaves the
	// configuration (removed, renamed, an unnamed one's URL changed) keeps
	// its queue in the outbox as orphaned until it comes back or is
	// forgotten (deskhook endpoints forget).
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Enabled false pauses the endpoint: no new events are queued for it
	// and nothing is sent; its queue and dead letters are kept.
	Enabled *bool `yaml:"enabled"`
	// Events the endpoint gets (default: the five Faveo documents).
	Events []string       `yaml:"events"`
	Format mapping.Format `yaml:"format"` // faveo-form (default) or json
	// Secret is one or more Standard Webhooks secrets ("whsec_" + base64),
	// space-separated during a rotation; every one signs each request.
	Secret      Secret            `yaml:"secret"`
	Headers     map[string]string `yaml:"headers"` // values are never logged
	Timeout     time.Duration     `yaml:"timeout"`
	MaxInFlight int               `yaml:"max_in_flight"`
	Retry       Retry             `yaml:"retry"`
	Filter      Filter            `yaml:"filter"`
	// CAFile is a PEM file of certificates to trust instead of the
	// system's, for https endpoints with a private CA.
	CAFile string `yaml:"ca_file"`
}

// Retry is an endpoint's retry policy.
type Retry struct {
	// Schedule holds the delay before each attempt, the first counted from
	// when the event is stored, each later one from the failure before it;
	// each gets ±20% jitter. After the last attempt fails the event becomes
	// a dead letter.
	Schedule []time.Duration `yaml:"schedule"`
}

// Filter narrows an endpoint to tickets of some departments or sources
// (empty: all).
type Filter struct {
	Departments []int64 `yaml:"departments"`
	Sources     []int64 `yaml:"sources"`
}

// Secret holds signing secrets; it never prints itself.
type Secret string

func (Secret) String() string               { return "[redacted]" }
func (Secret) GoString() string             { return "[redacted]" }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[redacted]") }
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// DefaultSchedule is the default retry schedule: about two days.
var DefaultSchedule = []time.Duration{0, 5 * time.Second, 30 * time.Second, 2 * time.Minute,
	10 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour,
	12 * time.Hour, 24 * time.Hour}

// Defaults of an endpoint.
const (
	DefaultTimeout            = 15 * time.Second
	DefaultMaxInFlight        = 16
	DefaultRetryAfterCap      = time.Hour
	DefaultFailureLogInterval = 5 * time.Minute
)

// Bounds of the durations: past them a value is a typo (2000000h), not a
// policy, and would park an event or a worker for centuries.
const (
	MaxTimeout       = 10 * time.Minute
	MaxRetryDelay    = 7 * 24 * time.Hour
	MaxRetryAfterCap = 7 * 24 * time.Hour
	// A failing endpoint is summarised at least daily, and not more than
	// once a second.
	MinFailureLogInterval = time.Second
	MaxFailureLogInterval = 24 * time.Hour
)

// Defaults returns a Config with every default set (and no endpoints).
func Defaults() Config {
	var c Config
	c.SetDefaults()
	return c
}

// SetDefaults fills every empty field with its default, naming unnamed
// endpoints after their URL.
func (c *Config) SetDefaults() {
	if c.RetryAfterCap == 0 {
		c.RetryAfterCap = DefaultRetryAfterCap
	}
	if c.FailureLogInterval == 0 {
		c.FailureLogInterval = DefaultFailureLogInterval
	}
	c.Memory.setDefaults()
	for i := range c.Endpoints {
		c.Endpoints[i].SetDefaults()
	}
}

// SetDefaults fills an endpoint's empty fields, its name from its URL.
func (e *Endpoint) SetDefaults() {
	if e.Name == "" {
		e.Name = NameFromURL(e.URL)
	}
	if e.Enabled == nil {
		on := true
		e.Enabled = &on
	}
	if len(e.Events) == 0 {
		e.Events = slices.Clone(mapping.FaveoEvents)
	}
	if e.Format == "" {
		e.Format = mapping.FormatForm
	}
	if e.Timeout == 0 {
		e.Timeout = DefaultTimeout
	}
	if e.MaxInFlight == 0 {
		e.MaxInFlight = DefaultMaxInFlight
	}
	if len(e.Retry.Schedule) == 0 {
		e.Retry.Schedule = slices.Clone(DefaultSchedule)
	}
}

// IsEnabled reports whether the endpoint is switched on in the config.
func (e *Endpoint) IsEnabled() bool { return e.Enabled == nil || *e.Enabled }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$`)

// NameFromURL is the name of an endpoint configured without one: its URL's
// host[:port] and 8 hex digits of a SHA-256 of the URL's host, path and
// query, e.g. "crm.example.com-1f0c3a9e" ("" for a URL without a host).
//
// The name is the endpoint's identity, so it depends on the URL alone,
// never on the endpoint's place in the list: reordering the file moves no
// queue. The scheme and the credentials are left out (moving to https or
// rotating a password keeps the queue); the host, the path and the query
// are in (another path is another receiver). The hash keeps the readable
// part short and keeps secrets some receivers put in the path or the query
// out of the name, which is logged and a metric label. It also never
// equals a name earlier versions derived (the bare host, or endpoint-N by
// position), so an upgrade cannot hand an old queue to another receiver:
// such a queue shows as orphaned until an endpoint is given its name.
func NameFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	host := strings.ToLower(u.Host)
	key := host + strings.TrimSuffix(u.EscapedPath(), "/")
	if u.RawQuery != "" {
		key += "?" + u.RawQuery
	}
	sum := sha256.Sum256([]byte(key))
	label := strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && (r == '.' || r == '-' || r == ':' || r == '_' ||
			'a' <= r && r <= 'z' || '0' <= r && r <= '9') {
			return r
		}
		return -1
	}, host)
	if strings.HasPrefix(host, "[") { // an IPv6 address: "ipv6-::1:8080"
		label = "ipv6-" + label
	}
	label = strings.TrimLeft(label, ".-:_")
	if len(label) > 80 {
		label = label[:80]
	}
	if label == "" {
		label = "endpoint"
	}
	return label + "-" + hex.EncodeToString(sum[:4])
}

// Validate reports every problem of c at once, each naming its YAML path
// under path and the bad value (never a secret or a header value). Call
// SetDefaults first.
func (c Config) Validate(path string) error {
	at := func(key string) string {
		if path == "" {
			return key
		}
		return path + "." + key
	}
	var errs []error
	if c.RetryAfterCap < 0 {
		errs = append(errs, fmt.Errorf("%s: must not be negative (got %s)", at("retry_after_cap"), c.RetryAfterCap))
	}
	if c.RetryAfterCap > MaxRetryAfterCap {
		errs = append(errs, fmt.Errorf("%s: must be at most %s (got %s)", at("retry_after_cap"), MaxRetryAfterCap, c.RetryAfterCap))
	}
	if c.FailureLogInterval < MinFailureLogInterval || c.FailureLogInterval > MaxFailureLogInterval {
		errs = append(errs, fmt.Errorf("%s: must be %s to %s (got %s)", at("failure_log_interval"),
			MinFailureLogInterval, MaxFailureLogInterval, c.FailureLogInterval))
	}
	errs = append(errs, c.Memory.validate(at))
	seen := map[string]int{}
	for i, e := range c.Endpoints {
		p := at(fmt.Sprintf("endpoints[%d]", i))
		if j, dup := seen[e.Name]; dup && e.Name != "" {
			if e.Name == NameFromURL(e.URL) {
				// Two queues cannot share one name: the second unnamed
				// endpoint would deliver the first one's events.
				errs = append(errs, fmt.Errorf("%s: endpoints[%d] has the same name, %q (an endpoint without a name is named after its url's host, path and query): give one of them a name",
					p, j, e.Name))
			} else {
				errs = append(errs, fmt.Errorf("%s.name: %q is already the name of endpoints[%d]", p, e.Name, j))
			}
		}
		seen[e.Name] = i
		errs = append(errs, e.Validate(p))
	}
	return errors.Join(errs...)
}

// reserved headers are set by the sender itself.
var reserved = []string{"Content-Type", "Content-Length", "User-Agent", "Host", "Webhook-Id",
	"Webhook-Timestamp", "Webhook-Signature", "Transfer-Encoding", "Connection"}

var tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// Validate reports every problem of one endpoint, under path.
func (e Endpoint) Validate(path string) error {
	at := func(key string) string { return path + "." + key }
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", at(key), fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(e.Name) && (e.Name != "" || NameFromURL(e.URL) != "") {
		bad("name", "must be 1-100 letters, digits or . _ : - starting with a letter or digit (got %q)", e.Name)
	}
	if e.URL == "" {
		bad("url", "is required")
	} else if u, err := url.Parse(e.URL); err != nil {
		bad("url", "cannot be parsed (got %q)", RedactURL(e.URL))
	} else if u.Scheme != "http" && u.Scheme != "https" {
		bad("url", "must be http or https (got %q)", RedactURL(e.URL))
	} else if u.Host == "" {
		bad("url", "has no host (got %q)", RedactURL(e.URL))
	} else if u.Scheme == "http" && u.User != nil && !isLoopback(u.Hostname()) {
		bad("url", "holds credentials over plain http, which anyone on the network can read: use https, or a header (got %q)", RedactURL(e.URL))
	}
	if len(e.Events) == 0 {
		bad("events", "must name at least one event")
	}
	for i, ev := range e.Events {
		if !slices.Contains(mapping.AllEvents, ev) {
			bad(fmt.Sprintf("events[%d]", i), "unknown event %q (known: %s)", ev, strings.Join(mapping.AllEvents, ", "))
		}
	}
	if !e.Format.Valid() {
		bad("format", "must be %q or %q (got %q)", mapping.FormatForm, mapping.FormatJSON, e.Format)
	}
	if _, err := parseSecrets(string(e.Secret)); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", at("secret"), err))
	}
	for name, value := range e.Headers {
		switch {
		case !tokenRE.MatchString(name):
			bad("headers", "%q is not a valid header name", name)
		case slices.Contains(reserved, http.CanonicalHeaderKey(name)):
			bad("headers", "%q is set by deskhook and cannot be configured", name)
		case strings.ContainsAny(value, "\r\n\x00"):
			bad("headers."+name, "value must not contain CR, LF or NUL")
		}
	}
	if e.Timeout <= 0 {
		bad("timeout", "must be positive (got %s)", e.Timeout)
	}
	if e.Timeout > MaxTimeout {
		bad("timeout", "must be at most %s (got %s)", MaxTimeout, e.Timeout)
	}
	if e.MaxInFlight < 1 || e.MaxInFlight > 1024 {
		bad("max_in_flight", "must be 1-1024 (got %d)", e.MaxInFlight)
	}
	if len(e.Retry.Schedule) == 0 {
		bad("retry.schedule", "must have at least one entry")
	}
	for i, d := range e.Retry.Schedule {
		if d < 0 {
			bad(fmt.Sprintf("retry.schedule[%d]", i), "must not be negative (got %s)", d)
		}
		if d > MaxRetryDelay {
			bad(fmt.Sprintf("retry.schedule[%d]", i), "must be at most %s (got %s)", MaxRetryDelay, d)
		}
	}
	for i, id := range e.Filter.Departments {
		if id <= 0 {
			bad(fmt.Sprintf("filter.departments[%d]", i), "must be a positive department id (got %d)", id)
		}
	}
	for i, id := range e.Filter.Sources {
		if id <= 0 {
			bad(fmt.Sprintf("filter.sources[%d]", i), "must be a positive ticket source id (got %d)", id)
		}
	}
	if e.CAFile != "" {
		if _, err := loadCA(e.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at("ca_file"), err))
		}
	}
	return errors.Join(errs...)
}

// isLoopback reports whether host (a URL's, without port) stays on this
// machine: credentials sent there cross no network.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseSecrets decodes space-separated "whsec_" secrets. Errors name the
// secret's place, never its value.
func parseSecrets(s string) ([][]byte, error) {
	var keys [][]byte
	for i, part := range strings.Fields(s) {
		raw, ok := strings.CutPrefix(part, "whsec_")
		if !ok {
			return nil, fmt.Errorf("secret #%d must start with \"whsec_\"", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			return nil, fmt.Errorf("secret #%d: the part after \"whsec_\" is not valid base64", i+1)
		}
		if len(key) < 16 || len(key) > 128 {
			return nil, fmt.Errorf("secret #%d decodes to %d bytes (want 16-128; 24-64 random bytes is usual)", i+1, len(key))
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// RedactURL is an endpoint URL fit for logs, status and error messages:
// without its user info and its query, which may hold credentials, and
// without its fragment. An unparsable URL is cut before its first '@' or
// '?' (a password sits before an '@').
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?@"); i >= 0 {
			if j := strings.Index(raw[:i], "://"); j >= 0 && raw[i] == '@' {
				return raw[:j+3] + "…"
			}
			return raw[:i] + "…"
		}
		return raw
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "…", false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
