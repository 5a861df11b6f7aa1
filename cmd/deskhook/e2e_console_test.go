package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deskhook/deskhook/testenv"
)

// Secrets of the console test's endpoints: no page may show them.
const (
	consoleAPIKey = "crm-api-key-5b0d1e77"
	consoleSecret = "whsec_Y29uc29sZS10ZXN0LXNpZ25pbmcta2V5ISE="
)

// TestConsoleBrowser drives the operator console in Chromium against the
// real daemon (the binary), PostgreSQL and a receiver, as an operator
// would: sign in (a wrong token refused), watch an endpoint fail and
// recover, disable and enable it, open a ticket's deliveries, re-send an
// event (the receiver gets it again with the same webhook-id and body),
// replay a dead letter, sign in with `deskhook ui`'s one-time link; and a
// request without a session, from another origin or for another Host is
// refused.
func TestConsoleBrowser(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	var crmDown, flakyDown atomic.Bool
	// crm: JSON, signed, an API key header, and a schedule long enough
	// (a minute) that its failures stay visible until it recovers.
	crmSchedule := []string{"0s"}
	for range 60 {
		crmSchedule = append(crmSchedule, "1s")
	}
	e.cfg["endpoints"] = append(e.cfg["endpoints"].([]any),
		map[string]any{"name": "crm", "url": e.rcv.URL + "/crm", "events": allEvents(), "format": "json",
			"secret": consoleSecret, "headers": map[string]string{"X-Api-Key": consoleAPIKey},
			"retry": map[string]any{"schedule": crmSchedule}},
		// flaky gives up at once: its failures become dead letters.
		map[string]any{"name": "flaky", "url": e.rcv.URL + "/flaky", "events": []string{"ticket_created"},
			"retry": map[string]any{"schedule": []string{"0s", "50ms"}}},
	)
	probe := freePort(t)
	e.section("admin")["probe_listen"] = probe
	e.writeConfig()
	e.rcv.SetHook(func(r *testenv.Request) (testenv.Reply, bool) {
		switch {
		case r.Path == "/crm" && crmDown.Load():
			// A receiver that quotes what it got: the key must not reach a page.
			return testenv.Reply{Status: 503, Body: "maintenance; your key " + consoleAPIKey + " is fine"}, true
		case r.Path == "/flaky" && flakyDown.Load():
			return testenv.Reply{Status: 500, Body: "flaky is broken"}, true
		}
		return testenv.Reply{}, false
	})
	e.setup()
	e.start()
	admin := "http://" + e.admin
	token := e.adminToken()
	hd := testenv.NewHelpdesk(e.db.Pool(t))
	ctx := context.Background()
	var pages []string // the HTML of every page seen, checked for secrets at the end
	keep := func(b *tab) { pages = append(pages, b.html()) }

	b := newTab(t)
	step := func(name string, fn func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, fn) {
			t.FailNow()
		}
	}
	step("sign in", func(t *testing.T) {
		b.t = t
		b.open(admin + "/ui/endpoints")
		if loc := b.location(); !strings.HasPrefix(loc, admin+"/ui/login") {
			t.Fatalf("without a session the console sends to %s, want the login page", loc)
		}
		b.fill("#token", "wrong-token-0123456789abcdef")
		if code := b.click("main form button"); code != http.StatusUnauthorized || !strings.Contains(b.text("main"), "Wrong token") {
			t.Fatalf("a wrong token: %d\n%s", code, b.text("main"))
		}
		b.fill("#token", token)
		if code := b.click("main form button"); code != http.StatusOK {
			t.Fatalf("signing in: %d\n%s", code, b.text("body"))
		}
		if loc := b.location(); loc != admin+"/ui/endpoints" {
			t.Errorf("signed in, the console shows %s; want the page asked for first", loc)
		}
		b.open(admin + "/ui/")
		if got := b.text("main"); !strings.Contains(got, "Ready") || !strings.Contains(got, "crm") {
			t.Errorf("overview:\n%s", got)
		}
		keep(b)
	})

	var w1 testenv.Write
	step("an endpoint fails and recovers", func(t *testing.T) {
		b.t = t
		crmDown.Store(true)
		var err error
		if w1, err = hd.CreateTicket(ctx, testenv.NewTicket{Subject: "The CRM never saw this"}); err != nil {
			t.Fatal(err)
		}
		b.waitUntil(admin+"/ui/endpoints", time.Minute, func() (bool, string) {
			row := b.text("#endpoint-crm")
			return b.text("#endpoint-crm .pending") != "0" && strings.Contains(b.text("#endpoint-crm .lasterror"), "503"), row
		})
		keep(b)
		crmDown.Store(false)
		b.waitUntil(admin+"/ui/endpoints", time.Minute, func() (bool, string) {
			return b.text("#endpoint-crm .pending") == "0" && b.text("#endpoint-crm .lastsuccess") != "never", b.text("#endpoint-crm")
		})
		if got := b.text("#endpoint-crm .state-cell"); !strings.Contains(got, "enabled") {
			t.Errorf("crm after recovering: %s", got)
		}
	})

	step("disable and enable", func(t *testing.T) {
		b.t = t
		b.open(admin + "/ui/endpoints")
		if code := b.click("#endpoint-crm form[action='/ui/endpoints/disable'] button"); code != http.StatusOK {
			t.Fatalf("disable: %d", code)
		}
		if got := b.text("main"); !strings.Contains(got, "Endpoint crm disabled") || !strings.Contains(b.text("#endpoint-crm .state-cell"), "disabled") {
			t.Fatalf("after disabling:\n%s", got)
		}
		before := len(requestsTo(e.rcv, "/crm"))
		w, err := hd.ChangeStatus(ctx, w1.TicketID, testenv.StatusIDs["Resolved"])
		if err != nil {
			t.Fatal(err)
		}
		b.waitUntil(admin+"/ui/endpoints", time.Minute, func() (bool, string) {
			return b.text("#endpoint-crm .pending") == "1", b.text("#endpoint-crm")
		})
		if n := len(requestsTo(e.rcv, "/crm")); n != before {
			t.Errorf("a disabled endpoint was sent %d requests", n-before)
		}
		if code := b.click("#endpoint-crm form[action='/ui/endpoints/enable'] button"); code != http.StatusOK {
			t.Fatalf("enable: %d", code)
		}
		b.waitUntil(admin+"/ui/endpoints", time.Minute, func() (bool, string) {
			return b.text("#endpoint-crm .pending") == "0", b.text("#endpoint-crm")
		})
		waitRequest(t, e.rcv, "/crm", func(r testenv.Request) bool { return jsonTicket(r) == w.TicketID && r.Reply.StatusCode() == 200 })
	})

	step("a ticket's deliveries", func(t *testing.T) {
		b.t = t
		b.open(admin + "/ui/deliveries")
		b.fill("form.filters input[name=ticket]", strconv.FormatInt(w1.TicketID, 10))
		if code := b.click("form.filters button"); code != http.StatusOK {
			t.Fatalf("filtering: %d", code)
		}
		tickets, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("table.deliveries tbody td.ticket")).map(td => td.textContent.trim())`))
		if err != nil {
			t.Fatal(err)
		}
		if len(tickets) == 0 {
			t.Fatalf("no deliveries listed for ticket %d:\n%s", w1.TicketID, b.text("main"))
		}
		for _, tk := range tickets {
			if tk != strconv.FormatInt(w1.TicketID, 10) {
				t.Errorf("ticket %d's deliveries list ticket %s", w1.TicketID, tk)
			}
		}
		// Every attempt is there: crm's failures (503, retried) and its
		// success, rcv's success.
		rows, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](
			`Array.from(document.querySelectorAll("table.deliveries tbody tr")).map(tr => tr.innerText.replace(/\s+/g, " "))`))
		if err != nil {
			t.Fatal(err)
		}
		all := strings.Join(rows, "\n")
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`crm .*ticket_created .* retry 503`),
			regexp.MustCompile(`crm .*ticket_created .* delivered 200`),
			regexp.MustCompile(`rcv .*ticket_created .* delivered 200`),
			regexp.MustCompile(`crm .*ticket_status_updated .* delivered 200`),
		} {
			if !want.MatchString(all) {
				t.Errorf("ticket %d's deliveries lack %s:\n%s", w1.TicketID, want, all)
			}
		}
		keep(b)
	})

	step("re-send an event", func(t *testing.T) {
		b.t = t
		first := waitRequest(t, e.rcv, "/hooks", func(r testenv.Request) bool {
			return r.Form.Get("event") == "ticket_created" && r.Form.Get("ticket[id]") == strconv.FormatInt(w1.TicketID, 10)
		})
		id := first.Header.Get("Webhook-Id")
		b.open(admin + "/ui/deliveries?ticket=" + strconv.FormatInt(w1.TicketID, 10))
		if code := b.click(fmt.Sprintf(`table.deliveries a[href="/ui/events/%s"]`, id)); code != http.StatusOK {
			t.Fatalf("opening the event: %d", code)
		}
		page := b.text("main")
		for _, want := range []string{id, "faveo-form", "application/x-www-form-urlencoded", "application/json",
			"ticket[ticket_number]", "X-Api-Key", "••••••••", "webhook-signature", w1.TicketNumber} {
			if !strings.Contains(page, want) {
				t.Errorf("event page lacks %q", want)
			}
		}
		keep(b)
		b.choose("form.resend select", "rcv")
		if code := b.click("form.resend button"); code != http.StatusOK || !strings.Contains(b.text("main"), "Re-sending "+id+" to rcv") {
			t.Fatalf("re-send: %d\n%s", code, b.text("main"))
		}
		again := waitRequest(t, e.rcv, "/hooks", func(r testenv.Request) bool {
			return r.Header.Get("Webhook-Id") == id && r.Seq != first.Seq
		})
		if string(again.Body) != string(first.Body) {
			t.Errorf("re-sent body differs:\n%s\nfirst:\n%s", again.Body, first.Body)
		}
	})

	step("replay a dead letter", func(t *testing.T) {
		b.t = t
		flakyDown.Store(true)
		w, err := hd.CreateTicket(ctx, testenv.NewTicket{Subject: "flaky"})
		if err != nil {
			t.Fatal(err)
		}
		b.waitUntil(admin+"/ui/dead?endpoint=flaky", time.Minute, func() (bool, string) {
			return b.has("table.dead a[href*='op=replay']"), b.text("main")
		})
		keep(b)
		failed := requestsTo(e.rcv, "/flaky")
		id := failed[len(failed)-1].Header.Get("Webhook-Id")
		flakyDown.Store(false)
		if code := b.click(fmt.Sprintf(`table.dead a[href*="op=replay"][href*="%s"]`, id)); code != http.StatusOK {
			t.Fatalf("replay…: %d", code)
		}
		if got := b.text("main"); !strings.Contains(got, "1 dead letter(s) match") {
			t.Fatalf("confirmation page:\n%s", got)
		}
		keep(b)
		if code := b.click("form.confirm button"); code != http.StatusOK || !strings.Contains(b.text("main"), "Replayed 1 dead letter(s)") {
			t.Fatalf("replay: %d\n%s", code, b.text("main"))
		}
		waitRequest(t, e.rcv, "/flaky", func(r testenv.Request) bool {
			return r.Header.Get("Webhook-Id") == id && r.Reply.StatusCode() == 200 && r.Form.Get("ticket[id]") == strconv.FormatInt(w.TicketID, 10)
		})
	})

	step("refused", func(t *testing.T) {
		b.t = t
		// A browser without a session sees the login page.
		fresh := newTab(t)
		fresh.open(admin + "/ui/dead")
		if loc := fresh.location(); !strings.HasPrefix(loc, admin+"/ui/login") {
			t.Errorf("without a session: %s", loc)
		}
		// A page on another origin posts a form to the console in the
		// signed-in browser (same site: the cookie goes along).
		attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><form method="post" action="%s/ui/endpoints/disable">`+
				`<input type="hidden" name="endpoint" value="rcv"><button id="go">win a prize</button></form>`, admin)
		}))
		defer attacker.Close()
		b.open(attacker.URL)
		if code := b.click("#go"); code != http.StatusForbidden {
			t.Errorf("a form from %s: %d, want 403\n%s", attacker.URL, code, b.text("body"))
		}
		b.open(admin + "/ui/endpoints")
		if got := b.text("#endpoint-rcv .state-cell"); !strings.Contains(got, "enabled") {
			t.Errorf("rcv after the foreign form: %s", got)
		}
		// Plain HTTP: no token, a foreign Host, the probe listener.
		if code, _ := apiCall(t, "GET", admin+"/api/status", "", nil); code != http.StatusUnauthorized {
			t.Errorf("/api/status without the token: %d", code)
		}
		if code, _ := apiCall(t, "POST", admin+"/ui/endpoints/disable?endpoint=rcv", "", nil); code != http.StatusForbidden {
			t.Errorf("POST without a session: %d", code)
		}
		if code, _ := apiCall(t, "GET", admin+"/ui/login", "", map[string]string{"Host": "rebound.example:80"}); code != http.StatusForbidden {
			t.Errorf("a foreign Host: %d", code)
		}
		if code, _ := apiCall(t, "GET", "http://"+probe+"/ui/login", "", nil); code != http.StatusNotFound {
			t.Errorf("the probe listener serves the console: %d", code)
		}
	})

	step("deskhook ui", func(t *testing.T) {
		res := e.must("ui")
		m := regexp.MustCompile(`login link: (\S+)`).FindStringSubmatch(res.stdout)
		if m == nil || !strings.Contains(res.stdout, "console:    "+admin+"/ui/") {
			t.Fatalf("deskhook ui:\n%s", res.stdout)
		}
		ui := newTab(t)
		ui.open(m[1])
		ui.waitUntil("", time.Minute, func() (bool, string) {
			return ui.location() == admin+"/ui/" && strings.Contains(ui.text("main"), "Overview"), ui.location()
		})
		other := newTab(t)
		if code := other.open(m[1]); code != http.StatusUnauthorized || !strings.Contains(other.text("main"), "used already") {
			t.Errorf("the link used a second time: %d\n%s", code, other.text("main"))
		}
	})

	for _, p := range pages {
		for _, s := range []string{consoleAPIKey, consoleSecret, strings.TrimPrefix(consoleSecret, "whsec_"), token} {
			if strings.Contains(p, s) {
				t.Errorf("a page shows the secret %q", s)
			}
		}
	}
}

// waitUntil loads u (none: stays) again and again until cond holds.
func (b *tab) waitUntil(u string, timeout time.Duration, cond func() (bool, string)) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if u != "" {
			b.open(u)
		}
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: condition not met within %s; last seen:\n%s", u, timeout, state)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// requestsTo lists the receiver's requests to path.
func requestsTo(rcv *testenv.Receiver, path string) []testenv.Request {
	var out []testenv.Request
	for _, r := range rcv.Requests() {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// waitRequest waits for a request to path that match accepts.
func waitRequest(t *testing.T, rcv *testenv.Receiver, path string, match func(testenv.Request) bool) testenv.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var found testenv.Request
	err := rcv.WaitFor(ctx, func(reqs []testenv.Request) bool {
		for _, r := range reqs {
			if r.Path == path && match(r) {
				found = r
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no matching request to %s arrived: %v", path, err)
	}
	return found
}

// jsonTicket is the ticket id of a JSON body's ticket.
func jsonTicket(r testenv.Request) int64 {
	doc, _ := r.JSON.(map[string]any)
	tk, _ := doc["ticket"].(map[string]any)
	id, _ := strconv.ParseInt(fmt.Sprint(tk["id"]), 10, 64)
	return id
}

// TestUIWithoutDaemon: `deskhook ui` needs the running daemon and says so.
func TestUIWithoutDaemon(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	res := e.run("ui")
	if res.code != 1 || !strings.Contains(res.stderr, "the daemon writes it at its start") {
		t.Errorf("deskhook ui before the daemon ever ran: %s", res)
	}
	e.setup()
	d := e.start()
	d.stop()
	res = e.run("ui")
	if res.code != 1 || !strings.Contains(res.stderr, "is it running? `deskhook run`") {
		t.Errorf("deskhook ui with the daemon stopped: %s", res)
	}
}
