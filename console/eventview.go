package console

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// eventView is the event page's data: the event, its bodies as each format
// sends them, the headers each endpoint's requests carry (values of
// configured headers and signatures masked), its attempts.
type eventView struct {
	ID         string
	Type       string
	TicketID   int64
	CommitTime time.Time
	Bodies     []bodyView
	Requests   []requestView
	Attempts   []attemptRow
	Dead       []outbox.DeadLetter // the event's dead letters, if any
	// Resend lists the endpoints it can be sent to again (empty: the
	// page offers no re-send).
	Resend []string
}

// bodyView is the event's body in one format, as sent.
type bodyView struct {
	Format      string
	ContentType string
	Body        string // the bytes as sent
	Pretty      string // JSON indented, for reading
	Fields      [][2]string
	Error       string // the payload cannot be rendered in this format
}

// requestView is what one endpoint's requests carry.
type requestView struct {
	Endpoint string
	Format   string
	Headers  [][2]string
}

// attemptRow is one attempt at delivering the event to an endpoint.
type attemptRow struct {
	Endpoint string
	outbox.Attempt
	Outcome string
}

// masked stands for a value the console never shows.
const masked = "••••••••"

// render fills the bodies in both formats and the requests the endpoints
// named make (in eps, by name).
func (v *eventView) render(payload []byte, eps []Endpoint, names []string) {
	for _, f := range []mapping.Format{mapping.FormatForm, mapping.FormatJSON} {
		b := bodyView{Format: string(f)}
		body, ct, err := mapping.Render(f, payload)
		if err != nil {
			b.Error = err.Error()
			v.Bodies = append(v.Bodies, b)
			continue
		}
		b.ContentType, b.Body = ct, string(body)
		switch f {
		case mapping.FormatJSON:
			var out bytes.Buffer
			if json.Indent(&out, body, "", "  ") == nil {
				b.Pretty = out.String()
			}
		case mapping.FormatForm:
			b.Fields = formFields(string(body))
		}
		v.Bodies = append(v.Bodies, b)
	}
	for _, e := range eps {
		if !slices.Contains(names, e.Name) {
			continue
		}
		format := e.Format
		if format == "" {
			format = string(mapping.FormatForm)
		}
		ct := mapping.ContentTypeForm
		if format == string(mapping.FormatJSON) {
			ct = mapping.ContentTypeJSON
		}
		rv := requestView{Endpoint: e.Name, Format: format, Headers: [][2]string{
			{"Content-Type", ct},
			{"User-Agent", e.UserAgent},
			{"webhook-id", v.ID},
			{"webhook-timestamp", "(the attempt's time, Unix seconds)"},
		}}
		if e.Signed {
			rv.Headers = append(rv.Headers, [2]string{"webhook-signature", "v1," + masked + " (HMAC-SHA256 with the endpoint's secret)"})
		}
		for _, h := range e.HeaderNames {
			rv.Headers = append(rv.Headers, [2]string{h, masked + " (configured; not shown)"})
		}
		v.Requests = append(v.Requests, rv)
	}
}

// formFields decodes a form body in its order, for reading.
func formFields(body string) [][2]string {
	var out [][2]string
	for body != "" {
		var kv string
		kv, body, _ = strings.Cut(body, "&")
		k, val, _ := strings.Cut(kv, "=")
		k, _ = url.QueryUnescape(k)
		val, _ = url.QueryUnescape(val)
		out = append(out, [2]string{k, val})
	}
	return out
}
