package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// overviewView is the overview page's data.
type overviewView struct {
	Overview
	Charts    []chart
	Endpoints []Endpoint
}

func (c *Console) overview(r *http.Request) (view, error) {
	ov, err := c.b.Overview(r.Context())
	if err != nil {
		return view{}, err
	}
	eps, err := c.b.Endpoints(r.Context())
	if err != nil {
		return view{}, err
	}
	return view{name: "overview", title: "Overview", data: overviewView{Overview: ov, Charts: c.samp.charts(), Endpoints: eps}}, nil
}

func (c *Console) endpoints(r *http.Request) (view, error) {
	eps, err := c.b.Endpoints(r.Context())
	if err != nil {
		return view{}, err
	}
	return view{name: "endpoints", title: "Endpoints", data: eps}, nil
}

// endpointAction enables or disables an endpoint.
func (c *Console) endpointAction(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PostForm.Get("endpoint")
	if name == "" {
		return badInputf("no endpoint given")
	}
	var enable bool
	switch r.PathValue("op") {
	case "enable":
		enable = true
	case "disable":
	default:
		return badInputf("unknown operation %q", r.PathValue("op"))
	}
	if err := c.b.SetEnabled(r.Context(), name, enable); err != nil {
		return err
	}
	if enable {
		c.flash(s, "Endpoint %s enabled: its queue is delivered again.", name)
	} else {
		c.flash(s, "Endpoint %s disabled: its events keep queueing until it is enabled.", name)
	}
	http.Redirect(w, r, "/ui/endpoints", http.StatusSeeOther)
	return nil
}

// maxDeadShown bounds the dead letters one page lists.
const maxDeadShown = 200

// deadFilterForm is a dead-letter selection as the forms carry it.
type deadFilterForm struct {
	Endpoint, ID, Ticket, From, To string
}

func (f deadFilterForm) parse() (outbox.DeadFilter, error) {
	df := outbox.DeadFilter{Endpoint: strings.TrimSpace(f.Endpoint), ID: strings.TrimSpace(f.ID)}
	if t := strings.TrimSpace(f.Ticket); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return df, badInputf("ticket: not a ticket id (got %q)", t)
		}
		df.TicketID = n
	}
	var err error
	if df.From, err = parseTime("from", strings.TrimSpace(f.From)); err != nil {
		return df, err
	}
	if df.To, err = parseTime("to", strings.TrimSpace(f.To)); err != nil {
		return df, err
	}
	return df, nil
}

func deadFormOf(v url.Values) deadFilterForm {
	return deadFilterForm{Endpoint: v.Get("endpoint"), ID: v.Get("id"), Ticket: v.Get("ticket"), From: v.Get("from"), To: v.Get("to")}
}

func selectsAll(f outbox.DeadFilter) bool {
	f.Limit, f.DiedBy = 0, time.Time{}
	return f == (outbox.DeadFilter{})
}

type deadView struct {
	Filter    deadFilterForm
	Letters   []outbox.DeadLetter
	More      bool // more match than are shown
	Endpoints []Endpoint
}

func (c *Console) deadLetters(r *http.Request) (view, error) {
	form := deadFormOf(r.URL.Query())
	f, err := form.parse()
	if err != nil {
		return view{}, err
	}
	f.Limit = maxDeadShown + 1
	dl, err := c.b.DeadLetters(r.Context(), f)
	if err != nil {
		return view{}, err
	}
	eps, err := c.b.Endpoints(r.Context())
	if err != nil {
		return view{}, err
	}
	v := deadView{Filter: form, Letters: dl, Endpoints: eps}
	if len(dl) > maxDeadShown {
		v.Letters, v.More = dl[:maxDeadShown], true
	}
	return view{name: "dead", title: "Dead letters", data: v}, nil
}

// maxConfirmCount bounds how many dead letters the confirmation counts.
const maxConfirmCount = 10000

type confirmView struct {
	Op       string // replay or drop
	Filter   deadFilterForm
	All      bool // the selection is every dead letter
	Count    int
	More     bool // more than Count
	Examples []outbox.DeadLetter
	ShownAt  string // when the count was taken: the action touches nothing that died later
}

// deadConfirm is the confirmation step before a replay or a drop: it says
// what the selection holds and posts it.
func (c *Console) deadConfirm(r *http.Request) (view, error) {
	op := r.URL.Query().Get("op")
	if op != "replay" && op != "drop" {
		return view{}, badInputf("op: replay or drop (got %q)", op)
	}
	form := deadFormOf(r.URL.Query())
	f, err := form.parse()
	if err != nil {
		return view{}, err
	}
	f.Limit = maxConfirmCount + 1
	shown := time.Now().UTC()
	dl, err := c.b.DeadLetters(r.Context(), f)
	if err != nil {
		return view{}, err
	}
	v := confirmView{Op: op, Filter: form, All: selectsAll(f), Count: len(dl), ShownAt: shown.Format(time.RFC3339Nano)}
	if v.Count > maxConfirmCount {
		v.Count, v.More = maxConfirmCount, true
	}
	v.Examples = dl[:min(len(dl), 10)]
	return view{name: "confirm", title: "Confirm " + op, data: v}, nil
}

// deadAction replays or drops the confirmed selection.
func (c *Console) deadAction(w http.ResponseWriter, r *http.Request, s *session) error {
	form := deadFormOf(r.PostForm)
	f, err := form.parse()
	if err != nil {
		return err
	}
	if r.PostForm.Get("confirm") != "yes" {
		return badInputf("not confirmed")
	}
	if selectsAll(f) && r.PostForm.Get("all") != "true" {
		return badInputf("no selection: choose an endpoint, an event, a ticket or a time range, or confirm every dead letter")
	}
	// Only what the confirmation page counted: letters that died after it
	// was shown were never seen by the operator.
	if f.DiedBy, err = time.Parse(time.RFC3339Nano, r.PostForm.Get("shown_at")); err != nil {
		return badInputf("the confirmation page's time is missing: confirm again")
	}
	var n int
	switch r.PathValue("op") {
	case "replay":
		n, err = c.b.Replay(r.Context(), f)
		if err == nil {
			c.flash(s, "Replayed %d dead letter(s): they are back in their endpoints' queues, with their original ids.", n)
		}
	case "drop":
		n, err = c.b.Drop(r.Context(), f)
		if err == nil {
			c.flash(s, "Dropped %d dead letter(s).", n)
		}
	default:
		return badInputf("unknown operation %q", r.PathValue("op"))
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/ui/dead", http.StatusSeeOther)
	return nil
}
