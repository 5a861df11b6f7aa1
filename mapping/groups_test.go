package mapping

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/deskhook/deskhook/change"
)

// largeThreadsTxn: a ticket whose first thread is firstSize bytes, then n
// replies of replySize bytes each, in one transaction at pos (the first
// thread in an earlier one at pos-1).
func largeThreadsTxn(firstSize, replySize, n int) (created, replies *change.Batch) {
	body := func(id, size int) string {
		return fmt.Sprintf("<p>%d</p>", id) + strings.Repeat("x", size)
	}
	first := mkRow(threadsT, 1, 1, 5, nil, "client", 0, body(1, firstSize))
	created = txn(100, ins(ticketRow(1, 5, 1, 1, nil)), ins(first))
	var cs []change.Change
	for i := range n {
		cs = append(cs, ins(mkRow(threadsT, 2+i, 1, 1, nil, "support", 0, body(2+i, replySize))))
	}
	return created, txn(200, cs...)
}

// TestMapGroupsBoundsTheEventsHeld: a batch whose events add up to far
// more than output_bytes (each reply carries the ticket's 1 MB first
// thread) is handed over in groups of about output_bytes, each of at least
// one event, however large; together they are Map's events, byte for byte.
func TestMapGroupsBoundsTheEventsHeld(t *testing.T) {
	const outputBytes = 2 << 20
	created, replies := largeThreadsTxn(1<<20, 300<<10, 12)
	m, _ := newTestMapper(t, newMemSource(), func(c *Config) { c.OutputBytes = outputBytes })
	mustMap(t, m, created)
	var groups [][]Event
	last, err := m.MapGroups(context.Background(), replies, func(evs []Event) error {
		groups = append(groups, evs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	groups = append(groups, last)
	var all []Event
	for i, g := range groups {
		size := 0
		for _, ev := range g {
			size += len(ev.Payload)
		}
		if len(g) == 0 {
			t.Errorf("group %d is empty", i)
		}
		// A group closes once it reaches the bound: less its last event,
		// it is under it.
		if len(g) > 0 && size-len(g[len(g)-1].Payload) >= outputBytes {
			t.Errorf("group %d: %d events of %d bytes, over the %d bound before its last", i, len(g), size, outputBytes)
		}
		all = append(all, g...)
	}
	if len(groups) < 4 {
		t.Errorf("%d groups for 12 events of 1.3 MB and a bound of 2 MB", len(groups))
	}

	// The same events as Map's, from a mapper in the same state.
	m2, _ := newTestMapper(t, newMemSource(), func(c *Config) { c.OutputBytes = outputBytes })
	mustMap(t, m2, created)
	want := mustMap(t, m2, replies)
	if len(all) != len(want) || len(want) != 12 {
		t.Fatalf("%d events in groups, Map gives %d (want 12)", len(all), len(want))
	}
	for i := range want {
		if all[i].ID != want[i].ID || !bytes.Equal(all[i].Payload, want[i].Payload) {
			t.Errorf("event %d: %s differs from Map's %s", i, all[i].ID, want[i].ID)
		}
	}

	// One event larger than the bound: a group of its own.
	created, replies = largeThreadsTxn(10, 3<<20, 3)
	m3, _ := newTestMapper(t, newMemSource(), func(c *Config) { c.OutputBytes = 1 << 20 })
	mustMap(t, m3, created)
	n := 0
	last, err = m3.MapGroups(context.Background(), replies, func(evs []Event) error {
		if len(evs) != 1 {
			t.Errorf("a group of %d events over the bound, want one each", len(evs))
		}
		n++
		return nil
	})
	if err != nil || n != 2 || len(last) != 1 {
		t.Errorf("%d groups emitted, %d events returned, %v: want 2 and 1", n, len(last), err)
	}
}

// TestMapGroupsStopsAtEmitsError: the error of emit is returned as is and
// mapping the batch again gives the same ids.
func TestMapGroupsStopsAtEmitsError(t *testing.T) {
	created, replies := largeThreadsTxn(10, 200<<10, 6)
	m, _ := newTestMapper(t, newMemSource(), func(c *Config) { c.OutputBytes = 64 << 10 })
	mustMap(t, m, created)
	stop := errors.New("outbox full")
	calls := 0
	_, err := m.MapGroups(context.Background(), replies, func([]Event) error {
		if calls++; calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("MapGroups = %v, want emit's error", err)
	}
	evs := mustMap(t, m, replies)
	if len(evs) != 6 || evs[0].ID != EventID(200, 0) || evs[5].ID != EventID(200, 5) {
		t.Errorf("mapped again: %d events from %s, want the same 6 ids", len(evs), evs[0].ID)
	}
}

// TestRenderSizeIsExactForLargePayloads: FormLen is the length of
// AppendForm's body, and Render allocates exactly RenderSize for a large
// payload (no guess that grows, copying a large body).
func TestRenderSizeIsExactForLargePayloads(t *testing.T) {
	for _, payload := range [][]byte{
		docsReplyPayload,
		[]byte(`{"a":"` + strings.Repeat(`<p>x &amp; ü \"q\" \\ \n</p> `, 20000) + `","b":[1,null,true,{"c":""}]}`),
		[]byte(`[]`), []byte(`{"":""}`),
	} {
		n, err := FormLen(payload)
		if err != nil {
			t.Fatal(err)
		}
		body, err := AppendForm(nil, payload)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(body) {
			t.Errorf("FormLen = %d, body is %d bytes", n, len(body))
		}
		size, _ := RenderSize(FormatForm, payload)
		got, _, _ := Render(FormatForm, payload)
		if len(payload) > exactFormFrom && (size != len(body) || cap(got) != len(body)) {
			t.Errorf("large payload: RenderSize %d, Render's buffer %d, body %d: want all equal", size, cap(got), len(body))
		}
		if size < len(payload) && len(payload) <= exactFormFrom {
			t.Errorf("small payload: RenderSize %d under the payload's %d", size, len(payload))
		}
	}
	if n, _ := RenderSize(FormatJSON, docsReplyPayload); n != 0 {
		t.Errorf("RenderSize of JSON = %d, want 0 (the body is the payload)", n)
	}
}

// FuzzFormLen: FormLen agrees with AppendForm on whatever it accepts.
func FuzzFormLen(f *testing.F) {
	for _, s := range []string{`{"a":"b c"}`, `{"a":["x",null,{"b":true}],"n":-1.5e3}`, `{"s":"\ud83d\ude00\u00e9\n"}`,
		`[]`, `{}`, string(docsReplyPayload)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		body, err := AppendForm(nil, payload)
		n, lerr := FormLen(payload)
		if (err == nil) != (lerr == nil) {
			t.Fatalf("AppendForm error %v, FormLen error %v", err, lerr)
		}
		if err == nil && n != len(body) {
			t.Fatalf("FormLen %d, body %d bytes (valid UTF-8: %v)", n, len(body), utf8.Valid(payload))
		}
	})
}
