package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/outbox"
)

// eventView is the event page's data: the stored event, its body in both
// formats exactly as sent, the headers each endpoint's requests carry
// (configured values and signatures masked), where each endpoint stands
// with it, its attempts, and the endpoints it can be re-sent to.
type eventView struct {
	ID         string
	Type       string
	TicketID   int64
	CommitTime time.Time
	Bodies     []bodyView
	Requests   []requestView
	Endpoints  []outbox.EventDelivery
	Attempts   []outbox.LogEntry
	Resend     []string // configured endpoints (not orphaned)
}

// bodyView is the event's body in one format.
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

// masked stands for a value the console never shows.
const masked = "••••••••"

func (c *Console) event(r *http.Request) (view, error) {
	id := r.PathValue("id")
	ev, err := c.b.Event(r.Context(), id)
	if errors.Is(err, outbox.ErrNotFound) {
		return view{}, badNotFound("event %s is not stored (delivered everywhere and its log entries pruned, or no such event)", id)
	}
	if err != nil {
		return view{}, err
	}
	eps, err := c.b.Endpoints(r.Context())
	if err != nil {
		return view{}, err
	}
	v := eventView{ID: ev.ID, Type: ev.Type, TicketID: ev.TicketID, CommitTime: ev.CommitTime,
		Endpoints: ev.Endpoints, Attempts: ev.Attempts}
	v.Bodies = bodies(ev.Payload)
	involved := map[string]bool{}
	for _, d := range ev.Endpoints {
		involved[d.Endpoint] = true
	}
	for _, e := range eps {
		if involved[e.Name] {
			v.Requests = append(v.Requests, request(ev.ID, e))
		}
		if e.Configured && !e.Orphaned {
			v.Resend = append(v.Resend, e.Name)
		}
	}
	return view{name: "event", title: "Event " + ev.ID, data: v}, nil
}

// resend sends the event again to one endpoint: a new attempt with the
// same webhook-id and body.
func (c *Console) resend(w http.ResponseWriter, r *http.Request, s *session) error {
	id, endpoint := r.PathValue("id"), r.PostForm.Get("endpoint")
	if endpoint == "" {
		return badInputf("endpoint: which endpoint to send the event to?")
	}
	res, err := c.b.Resend(r.Context(), outbox.ResendSelection{ID: id}, endpoint)
	if errors.Is(err, outbox.ErrNotSubscribed) {
		return badInputf("endpoint %s is orphaned (not in the configuration): nothing is sent to it", endpoint)
	}
	if err != nil {
		return err
	}
	if res.Events == 0 {
		return badNotFound("event %s is not stored any more", id)
	}
	how := "queued again"
	switch {
	case res.Due > 0:
		how = "was pending: due now"
	case res.Revived > 0:
		how = "was a dead letter: queued again"
	}
	c.flash(s, "Re-sending %s to %s (%s), with the same webhook-id and body.", id, endpoint, how)
	http.Redirect(w, r, "/ui/events/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// bodies renders the payload in both formats.
func bodies(payload []byte) []bodyView {
	var out []bodyView
	for _, f := range []mapping.Format{mapping.FormatForm, mapping.FormatJSON} {
		b := bodyView{Format: string(f)}
		body, ct, err := mapping.Render(f, payload)
		if err != nil {
			b.Error = err.Error()
			out = append(out, b)
			continue
		}
		b.ContentType, b.Body = ct, string(body)
		switch f {
		case mapping.FormatJSON:
			var pretty bytes.Buffer
			if json.Indent(&pretty, body, "", "  ") == nil {
				b.Pretty = pretty.String()
			}
		case mapping.FormatForm:
			b.Fields = formFields(string(body))
		}
		out = append(out, b)
	}
	return out
}

// request is the headers of e's requests for the event id: values the
// configuration holds are masked.
func request(id string, e Endpoint) requestView {
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
		{"webhook-id", id},
		{"webhook-timestamp", "(the attempt's time, Unix seconds)"},
	}}
	if e.Signed {
		rv.Headers = append(rv.Headers, [2]string{"webhook-signature", "v1," + masked + " (HMAC-SHA256 with the endpoint's secret)"})
	}
	for _, h := range e.HeaderNames {
		rv.Headers = append(rv.Headers, [2]string{h, masked + " (configured; not shown)"})
	}
	return rv
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
