package sender

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/testenv"
)

func newSecret(t *testing.T) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(key)
}

func TestRequestsCarryHeadersAndVerifiableSignatures(t *testing.T) {
	oldSecret, newSecretValue, stranger := newSecret(t), newSecret(t), newSecret(t)
	for _, c := range []struct {
		name, secret string
		verifyWith   []string
		format       mapping.Format
		contentType  string
	}{
		{"one secret", oldSecret, []string{oldSecret}, mapping.FormatJSON, "application/json"},
		{"rotation", oldSecret + " " + newSecretValue, []string{oldSecret, newSecretValue}, mapping.FormatForm, "application/x-www-form-urlencoded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := testenv.NewReceiver(t)
			ep := endpointTo("hook", r, "/"+strings.ReplaceAll(c.name, " ", "-"))
			ep.Secret, ep.Format = Secret(c.secret), c.format
			ep.Headers = map[string]string{"X-Api-Key": "sesame"}
			h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
			evs := h.txn(1, 2)
			before := time.Now().Unix()
			waitDelivered(t, r, 10*time.Second, ids(evs)...)
			got := delivered(r.Requests())
			for _, ev := range evs {
				req := got[ev.ID]
				if req.Method != http.MethodPost || req.Header.Get("Content-Type") != c.contentType ||
					req.Header.Get("User-Agent") != "deskhook/test" || req.Header.Get("X-Api-Key") != "sesame" {
					t.Errorf("request headers %v", req.Header)
				}
				ts, err := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64)
				if err != nil || ts < before-1 || ts > time.Now().Unix()+1 {
					t.Errorf("webhook-timestamp %q", req.Header.Get("webhook-timestamp"))
				}
				if want, _, _ := mapping.Render(c.format, ev.Payload); string(req.Body) != string(want) {
					t.Errorf("body %s, want %s", req.Body, want)
				}
				if n := len(strings.Fields(req.Header.Get("webhook-signature"))); n != len(c.verifyWith) {
					t.Errorf("%d signatures, want %d", n, len(c.verifyWith))
				}
				for i, secret := range c.verifyWith {
					wh, err := standardwebhooks.NewWebhook(secret)
					if err != nil {
						t.Fatal(err)
					}
					if err := wh.Verify(req.Body, req.Header); err != nil {
						t.Errorf("secret #%d does not verify: %v", i+1, err)
					}
				}
				wh, _ := standardwebhooks.NewWebhook(stranger)
				if err := wh.Verify(req.Body, req.Header); err == nil {
					t.Errorf("an unrelated secret verifies the signature")
				}
			}
			h.stop()
			if logs := h.logs.String(); strings.Contains(logs, "sesame") || strings.Contains(logs, c.secret[6:20]) {
				t.Errorf("a secret or header value was logged:\n%s", logs)
			}
		})
	}
}

func TestPerTicketOrderAndAFailingTicketBlocksOnlyItself(t *testing.T) {
	r := testenv.NewReceiver(t)
	var broken atomic.Bool
	broken.Store(true)
	r.SetHook(func(req *testenv.Request) (testenv.Reply, bool) {
		if ticketOf(*req) == "1" && broken.Load() {
			return testenv.Reply{Status: 500}, true
		}
		return testenv.Reply{}, false
	})
	ep := endpointTo("hook", r, "/")
	ep.Retry.Schedule = slices.Repeat([]time.Duration{20 * time.Millisecond}, 1000)
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	var one, others []string
	for i := 0; i < 10; i++ {
		evs := h.txn(1, 2, 3, 4, 5)
		one = append(one, evs[0].ID)
		others = append(others, ids(evs[1:])...)
	}
	// Ticket 1 fails all along: every other ticket is delivered meanwhile.
	waitDelivered(t, r, 20*time.Second, others...)
	for _, req := range r.Requests() {
		if ticketOf(req) == "1" && req.Header.Get("webhook-id") != one[0] {
			t.Errorf("ticket 1's event %s was sent while its first event was failing", req.Header.Get("webhook-id"))
		}
	}
	broken.Store(false)
	waitDelivered(t, r, 20*time.Second, one...)

	perTicket := map[string][]string{}
	for _, req := range r.Requests() {
		if req.Reply.StatusCode() == 200 {
			tk := ticketOf(req)
			perTicket[tk] = append(perTicket[tk], req.Header.Get("webhook-id"))
		}
	}
	for tk, got := range perTicket {
		if !slices.IsSorted(got) || len(got) != 10 {
			t.Errorf("ticket %s: delivered %v, want its 10 events once each, in order", tk, got)
		}
	}
}

func TestMaxInFlightIsRespected(t *testing.T) {
	r := testenv.NewReceiver(t)
	var cur, peak atomic.Int32
	var mu sync.Mutex
	r.SetHook(func(*testenv.Request) (testenv.Reply, bool) {
		n := cur.Add(1)
		mu.Lock()
		if n > peak.Load() {
			peak.Store(n)
		}
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		cur.Add(-1)
		return testenv.Reply{}, false
	})
	ep := endpointTo("hook", r, "/")
	ep.MaxInFlight = 3
	h := newHarness(t, Config{Endpoints: []Endpoint{ep}}, Options{})
	var all []string
	for i := 0; i < 6; i++ {
		all = append(all, ids(h.txn(1, 2, 3, 4, 5, 6, 7, 8))...)
	}
	waitDelivered(t, r, 20*time.Second, all...)
	if p := peak.Load(); p != 3 {
		t.Errorf("peak concurrency %d, want max_in_flight 3 (reached, never exceeded)", p)
	}
}

func TestFilters(t *testing.T) {
	r := testenv.NewReceiver(t)
	byDefault := Endpoint{Name: "default", URL: r.URL + "/default", Format: mapping.FormatJSON}
	narrow := endpointTo("narrow", r, "/narrow")
	narrow.Filter = Filter{Departments: []int64{2}, Sources: []int64{3}}
	h := newHarness(t, Config{Endpoints: []Endpoint{byDefault, narrow}}, Options{})

	commented := h.txnOf(mapping.TicketCommented, 1)[0] // not one of Faveo's five: off by default
	created := h.txnOf(mapping.TicketCreated, 1)[0]
	h.mu.Lock()
	h.pos += 10
	pos := h.pos
	h.mu.Unlock()
	match := mapping.Event{ID: mapping.EventID(pos, 0), Type: mapping.TicketAssigned, Pos: pos, TicketID: 9,
		DeptID: 2, SourceID: 3, Payload: []byte(`{"event":"ticket_assigned"}`)}
	wrongSource := match
	wrongSource.Index, wrongSource.ID, wrongSource.SourceID = 1, mapping.EventID(pos, 1), 4
	if err := h.ob.Append(t.Context(), pos, true, []mapping.Event{match, wrongSource}); err != nil {
		t.Fatal(err)
	}
	waitDeliveredTo(t, r, "/default", 10*time.Second, created.ID, match.ID, wrongSource.ID)
	waitDeliveredTo(t, r, "/narrow", 10*time.Second, match.ID)
	h.stop()
	got := map[string][]string{}
	for _, req := range r.Requests() {
		got[req.Path] = append(got[req.Path], req.Header.Get("webhook-id"))
	}
	slices.Sort(got["/default"])
	if want := []string{created.ID, match.ID, wrongSource.ID}; strings.Join(got["/default"], " ") != strings.Join(want, " ") {
		t.Errorf("default endpoint got %v, want %v (not %s)", got["/default"], want, commented.ID)
	}
	if want := []string{match.ID}; strings.Join(got["/narrow"], " ") != strings.Join(want, " ") {
		t.Errorf("filtered endpoint got %v, want %v", got["/narrow"], want)
	}
}
