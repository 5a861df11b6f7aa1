package main

import (
	"slices"
	"sort"
	"strconv"
	"testing"

	"github.com/deskhook/deskhook/testenv"
)

// checkOneBodyPerID asserts that every request with the same webhook-id
// carried the same body, whatever it was answered (a receiver may have
// acted on a request whose answer was lost), and returns the body of each
// id.
func checkOneBodyPerID(t *testing.T, reqs []testenv.Request) map[string]string {
	t.Helper()
	bodies := map[string]string{}
	mismatched := 0
	for _, r := range reqs {
		id := r.Header.Get("Webhook-Id")
		if prev, seen := bodies[id]; seen {
			if prev != string(r.Body) {
				mismatched++
				if mismatched <= 3 {
					t.Errorf("webhook-id %s sent with two bodies:\n%s\n%s", id, prev, r.Body)
				}
			}
			continue
		}
		bodies[id] = string(r.Body)
	}
	if mismatched > 0 {
		t.Errorf("%d requests repeated a webhook-id with another body", mismatched)
	}
	return bodies
}

// checkDeliveries asserts the delivery guarantees over everything the
// receiver got for a load: every expected event was delivered at least
// once and nothing else was; every request with the same webhook-id
// carried the same body; and, per ticket, the first deliveries came in the
// order of the ticket's actions.
func checkDeliveries(t *testing.T, load testenv.LoadResult, reqs []testenv.Request) {
	t.Helper()
	bodies := checkOneBodyPerID(t, reqs)

	// First successful delivery of each id, in arrival order.
	var firsts []arrival
	seen := map[string]bool{}
	all := arrivals(reqs)
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	for _, a := range all {
		if !seen[a.id] {
			seen[a.id] = true
			firsts = append(firsts, a)
		}
	}
	got := map[string][]string{} // ticket id → events in first-arrival order
	for _, a := range firsts {
		got[a.ticket] = append(got[a.ticket], a.event)
	}
	want := map[string][]string{}
	for _, tl := range load.Tickets {
		k := strconv.FormatInt(tl.TicketID, 10)
		for _, a := range tl.Actions {
			want[k] = append(want[k], a.Events...)
		}
	}
	if len(firsts) != load.TotalEvents() {
		t.Errorf("%d distinct events delivered, want %d", len(firsts), load.TotalEvents())
	}
	bad := 0
	for ticket, w := range want {
		if g := got[ticket]; !slices.Equal(g, w) {
			if bad++; bad <= 5 {
				t.Errorf("ticket %s: first deliveries %v, want %v (its actions' order)", ticket, g, w)
			}
		}
	}
	for ticket, g := range got {
		if _, ok := want[ticket]; !ok {
			t.Errorf("deliveries for ticket %q nobody wrote: %v", ticket, g)
		}
	}
	if bad > 5 {
		t.Errorf("... %d tickets out of order or incomplete", bad)
	}
	t.Logf("%d events delivered, %d duplicate requests (same id and body), %d requests in all",
		len(firsts), len(reqs)-len(bodies), len(reqs))
}
