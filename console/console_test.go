package console

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/outbox"
)

// The console's own behaviour over HTTP: sign-in, sessions, CSRF, headers,
// masking and the pages' links. The browser tests (cmd/deskhook,
// e2e_console_test.go) drive the same pages in Chromium against the real
// daemon, PostgreSQL and receivers; here the daemon's side is memBackend,
// a Backend holding its data in memory.

const testToken = "test-admin-token-0123456789abcdef"

// Secrets the pages must never show, planted where a careless page would
// print them.
const (
	secretHeader = "Bearer crm-api-key-8c1f2e"
	secretKey    = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LSsrLw=="
)

type memBackend struct {
	mu       sync.Mutex
	eps      []Endpoint
	dead     []outbox.DeadLetter
	entries  []outbox.LogEntry // newest first
	events   map[string]outbox.StoredEvent
	resent   []string // "id→endpoint"
	replayed []outbox.DeadFilter
	dropped  []outbox.DeadFilter
	queries  []outbox.LogQuery
}

func newMemBackend() *memBackend {
	payload := []byte(`{"event":"ticket_created","ticket":{"id":"4711","ticket_number":"AAAA-0000-4711","subject":"echo ` + secretHeader + `"}}`)
	now := time.Now()
	b := &memBackend{
		eps: []Endpoint{
			{Name: "crm", URL: "https://crm.example/hooks", Configured: true, Format: "json", Signed: true,
				HeaderNames: []string{"Authorization"}, UserAgent: "deskhook/test",
				LastError: "HTTP 500: server said " + secretHeader, LastErrorAt: now, Pending: 3, OldestPending: 90 * time.Second},
			{Name: "old", Orphaned: true, DeadLetters: 1},
		},
		dead: []outbox.DeadLetter{{Endpoint: "crm", ID: "evt_0000000000000010_0000", Type: "ticket_created", TicketID: 4711,
			CommitTime: now, DiedAt: now, Attempts: []outbox.Attempt{{At: now, Status: 500, Response: "key=" + secretKey}}}},
		events: map[string]outbox.StoredEvent{},
	}
	b.events["evt_0000000000000010_0000"] = outbox.StoredEvent{ID: "evt_0000000000000010_0000", Type: "ticket_created",
		TicketID: 4711, CommitTime: now, Payload: payload,
		Endpoints: []outbox.EventDelivery{{Endpoint: "crm", State: "dead", Attempts: 1, DiedAt: now}},
		Attempts:  []outbox.LogEntry{{At: now, Endpoint: "crm", EventID: "evt_0000000000000010_0000", Attempt: 1, Outcome: outbox.Dead, Status: 500}}}
	for i := range 120 {
		b.entries = append(b.entries, outbox.LogEntry{Cursor: fmt.Sprintf("c%03d", i),
			At: now.Add(-time.Duration(i) * time.Second), Endpoint: "crm", EventID: "evt_0000000000000010_0000",
			EventType: "ticket_created", TicketID: int64(4700 + i%20), Attempt: 1, Outcome: outbox.Delivered, Status: 200})
	}
	return b
}

func (b *memBackend) Overview(context.Context) (Overview, error) {
	return Overview{Ready: false, Problems: []string{"replication stream is not connected"},
		Source: []Fact{{Label: "Database", Value: "PostgreSQL, slot deskhook"}},
		Store:  []Fact{{Label: "Dead letters", Value: "1", Warn: true}}}, nil
}

func (b *memBackend) Endpoints(context.Context) ([]Endpoint, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.eps), nil
}

func (b *memBackend) SetEnabled(_ context.Context, name string, enabled bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.eps {
		if b.eps[i].Name == name {
			b.eps[i].Disabled = !enabled
			return nil
		}
	}
	return outbox.ErrNotFound
}

func (b *memBackend) DeadLetters(_ context.Context, f outbox.DeadFilter) ([]outbox.DeadLetter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []outbox.DeadLetter
	for _, d := range b.dead {
		if (f.Endpoint == "" || f.Endpoint == d.Endpoint) && (f.TicketID == 0 || f.TicketID == d.TicketID) && (f.ID == "" || f.ID == d.ID) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (b *memBackend) Replay(_ context.Context, f outbox.DeadFilter) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.replayed = append(b.replayed, f)
	return 1, nil
}

func (b *memBackend) Drop(_ context.Context, f outbox.DeadFilter) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropped = append(b.dropped, f)
	return 1, nil
}

func (b *memBackend) Counters() Counters { return Counters{} }

// Log pages through entries newest first with the cursor of the last
// entry shown, as the outbox does.
func (b *memBackend) Log(_ context.Context, q outbox.LogQuery) (outbox.LogPage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queries = append(b.queries, q)
	page := outbox.LogPage{Index: "time"}
	started := q.Cursor == ""
	for _, e := range b.entries {
		if !started {
			started = e.Cursor == q.Cursor
			continue
		}
		if q.TicketID != 0 && e.TicketID != q.TicketID {
			continue
		}
		if len(page.Entries) == q.Limit {
			page.Next = page.Entries[len(page.Entries)-1].Cursor
			break
		}
		page.Entries = append(page.Entries, e)
	}
	if !started {
		return page, outbox.ErrBadCursor
	}
	return page, nil
}

func (b *memBackend) Event(_ context.Context, id string) (outbox.StoredEvent, error) {
	ev, ok := b.events[id]
	if !ok {
		return ev, outbox.ErrNotFound
	}
	return ev, nil
}

func (b *memBackend) Resend(_ context.Context, sel outbox.ResendSelection, endpoint string) (outbox.ResendResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.resent = append(b.resent, sel.ID+"→"+endpoint)
	return outbox.ResendResult{Events: 1, Queued: 1}, nil
}

// testConsole serves a console on b.
func testConsole(t *testing.T, b *memBackend) (*Console, *httptest.Server) {
	t.Helper()
	c, err := New(b, Options{Token: testToken, Secrets: func() []string { return []string{secretHeader, secretKey, testToken} }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return c, srv
}

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

func (b *browser) get(path string) (*http.Response, string) { return b.do("GET", path, nil, nil) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in through the login page and returns the session's CSRF
// token (from the page it lands on).
func (b *browser) signIn() string {
	b.t.Helper()
	_, page := b.get("/ui/login")
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("login page without a CSRF token:\n%s", page)
	}
	resp, body := b.do("POST", "/ui/login", url.Values{"csrf": {m[1]}, "token": {testToken}, "next": {"/ui/endpoints"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/endpoints" {
		b.t.Fatalf("sign in: %s %v\n%s", resp.Status, resp.Header, body)
	}
	_, page = b.get("/ui/endpoints")
	m = csrfRE.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("no CSRF token on the endpoints page:\n%s", page)
	}
	return m[1]
}

func TestSignIn(t *testing.T) {
	_, srv := testConsole(t, newMemBackend())
	br := newBrowser(t, srv.URL)

	// Without a session every page sends to the login page, keeping where
	// the user was going.
	resp, _ := br.get("/ui/deliveries?ticket=4711")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login?next=%2Fui%2Fdeliveries%3Fticket%3D4711" {
		t.Fatalf("no session: %s %q", resp.Status, resp.Header.Get("Location"))
	}

	// A wrong token is refused, and opens no session.
	_, page := br.get("/ui/login")
	csrf := csrfRE.FindStringSubmatch(page)[1]
	resp, page = br.do("POST", "/ui/login", url.Values{"csrf": {csrf}, "token": {"wrong-token-0123456789"}}, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Wrong token") {
		t.Fatalf("wrong token: %s\n%s", resp.Status, page)
	}
	if resp, _ := br.get("/ui/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after a wrong token the overview answers %s", resp.Status)
	}
	// A login form without its CSRF token (posted from elsewhere) is
	// refused even with the right token.
	resp, _ = br.do("POST", "/ui/login", url.Values{"token": {testToken}}, nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without the form's CSRF token: %s", resp.Status)
	}

	br.signIn()
	u, _ := url.Parse(srv.URL + "/ui/")
	var session *http.Cookie
	for _, c := range br.hc.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			session = c
		}
	}
	if session == nil || strings.Contains(session.Value, testToken) || len(session.Value) < 40 {
		t.Fatalf("session cookie: %+v", session)
	}
	resp, page = br.get("/ui/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "replication stream is not connected") {
		t.Fatalf("overview: %s\n%s", resp.Status, page)
	}

	// Signing out ends the session on the server: the old cookie opens
	// nothing.
	csrf = csrfRE.FindStringSubmatch(page)[1]
	if resp, _ := br.do("POST", "/ui/logout", url.Values{"csrf": {csrf}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %s", resp.Status)
	}
	old := newBrowser(t, srv.URL)
	old.hc.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: session.Value}})
	if resp, _ := old.get("/ui/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("a signed-out session still opens the overview: %s", resp.Status)
	}
}

// TestSessionCookie: the cookie is HttpOnly, SameSite=Strict, for /ui/
// only, and Secure over TLS.
func TestSessionCookie(t *testing.T) {
	for _, tls := range []bool{false, true} {
		c, err := New(newMemBackend(), Options{Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(c.Handler())
		if tls {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		hc := srv.Client()
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := hc.Get(srv.URL + c.LoginPath())
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var got *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie {
				got = ck
			}
		}
		if got == nil || !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != "/ui/" || got.Secure != tls {
			t.Errorf("tls=%v: session cookie %+v", tls, got)
		}
	}
}

func TestLoginLink(t *testing.T) {
	c, srv := testConsole(t, newMemBackend())
	path := c.LoginPath()
	br := newBrowser(t, srv.URL)
	resp, page := br.get(path)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `http-equiv="refresh" content="0;url=/ui/"`) {
		t.Fatalf("login link: %s\n%s", resp.Status, page)
	}
	if resp, _ := br.get("/ui/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in by the link, the overview answers %s", resp.Status)
	}
	// Single use: a second browser gets the login page.
	other := newBrowser(t, srv.URL)
	resp, page = other.get(path)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "used already or has expired") {
		t.Fatalf("second use of a login link: %s\n%s", resp.Status, page)
	}
	if resp, _ := other.get("/ui/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a used link signed a second browser in: %s", resp.Status)
	}
	// Short-lived: a code past its lifetime is refused.
	path = c.LoginPath()
	c.auth.mu.Lock()
	for k := range c.auth.codes {
		c.auth.codes[k] = time.Now().Add(-time.Second)
	}
	c.auth.mu.Unlock()
	if resp, _ := other.get(path); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("expired login link: %s", resp.Status)
	}
}

// TestCSRF: every POST needs the session and its CSRF token, and no
// cross-site origin.
func TestCSRF(t *testing.T) {
	b := newMemBackend()
	_, srv := testConsole(t, b)
	br := newBrowser(t, srv.URL)
	csrf := br.signIn()
	disable := func(form url.Values, hdr map[string]string) int {
		resp, _ := br.do("POST", "/ui/endpoints/disable", form, hdr)
		return resp.StatusCode
	}
	cases := []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"no token", url.Values{"endpoint": {"crm"}}, nil},
		{"wrong token", url.Values{"endpoint": {"crm"}, "csrf": {csrf + "x"}}, nil},
		{"another session's token", url.Values{"endpoint": {"crm"}, "csrf": {newBrowser(t, srv.URL).signIn()}}, nil},
		{"cross-site", url.Values{"endpoint": {"crm"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{"same-site, other origin", url.Values{"endpoint": {"crm"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-site"}},
	}
	for _, tc := range cases {
		if code := disable(tc.form, tc.hdr); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, code)
		}
	}
	if eps, _ := b.Endpoints(context.Background()); eps[0].Disabled {
		t.Fatal("a refused POST disabled the endpoint")
	}
	// Without a session at all.
	if resp, _ := newBrowser(t, srv.URL).do("POST", "/ui/endpoints/disable", url.Values{"endpoint": {"crm"}, "csrf": {csrf}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without a session: %s", resp.Status)
	}
	if code := disable(url.Values{"endpoint": {"crm"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther {
		t.Fatalf("the console's own form: %d", code)
	}
	if eps, _ := b.Endpoints(context.Background()); !eps[0].Disabled {
		t.Fatal("the endpoint was not disabled")
	}
	_, page := br.get("/ui/endpoints")
	if !strings.Contains(page, "Endpoint crm disabled") || !strings.Contains(page, `action="/ui/endpoints/enable"`) {
		t.Errorf("after disabling, the page shows no message or no enable button:\n%s", page)
	}
}

// TestHeaders: every answer carries the security headers; pages are not
// cached.
func TestHeaders(t *testing.T) {
	c, srv := testConsole(t, newMemBackend())
	br := newBrowser(t, srv.URL)
	br.signIn()
	for _, p := range []string{"/ui/", "/ui/endpoints", "/ui/deliveries", "/ui/dead", "/ui/events/evt_0000000000000010_0000",
		"/ui/login", "/ui/assets/console.css", "/ui/nowhere", c.LoginPath()} {
		resp, _ := br.get(p)
		h := resp.Header
		if h.Get("Content-Security-Policy") != csp || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("Referrer-Policy") != "same-origin" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, h)
		}
		if p != "/ui/assets/console.css" && h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", p, h.Get("Cache-Control"))
		}
	}
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
		"form-action 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	resp, css := br.get("/ui/assets/console.css")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || len(css) < 1000 {
		t.Errorf("stylesheet: %s %q (%d bytes)", resp.Status, resp.Header.Get("Content-Type"), len(css))
	}
}

// TestNoSecrets: a secret the backend hands over (an error quoting a
// header, a response echoing the signing key, a payload holding one) never
// reaches a page, in any escaping; header values are masked.
func TestNoSecrets(t *testing.T) {
	_, srv := testConsole(t, newMemBackend())
	br := newBrowser(t, srv.URL)
	br.signIn()
	forms := []string{secretHeader, secretKey, testToken, url.QueryEscape(secretHeader), url.QueryEscape(secretKey),
		strings.ReplaceAll(secretKey, "+", "&#43;"), "crm-api-key-8c1f2e", "c2VjcmV0LXNpZ25pbmcta2V5LSsrLw"}
	for _, p := range []string{"/ui/", "/ui/endpoints", "/ui/dead", "/ui/deliveries", "/ui/events/evt_0000000000000010_0000",
		"/ui/dead/confirm?op=replay&endpoint=crm"} {
		resp, page := br.get(p)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s\n%s", p, resp.Status, page)
		}
		for _, f := range forms {
			if strings.Contains(page, f) {
				t.Errorf("%s shows the secret %q", p, f)
			}
		}
	}
	_, page := br.get("/ui/events/evt_0000000000000010_0000")
	for _, want := range []string{"[redacted]", "Authorization", "webhook-signature", masked, "deskhook/test",
		"ticket[ticket_number]", "AAAA-0000-4711", "application/json", "application/x-www-form-urlencoded"} {
		if !strings.Contains(page, want) {
			t.Errorf("event page lacks %q", want)
		}
	}
}

// TestDeliveriesPaging: the deliveries page asks the log for one page
// with the filters, and links the next with the log's cursor.
func TestDeliveriesPaging(t *testing.T) {
	b := newMemBackend()
	_, srv := testConsole(t, b)
	br := newBrowser(t, srv.URL)
	br.signIn()
	_, page := br.get("/ui/deliveries")
	next := regexp.MustCompile(`href="(/ui/deliveries\?cursor=[^"]+)" rel="next"`).FindStringSubmatch(page)
	if next == nil || strings.Count(page, `<a href="/ui/events/`) != deliveriesPerPage {
		t.Fatalf("first page: want %d entries and an Older link:\n%s", deliveriesPerPage, page)
	}
	_, page = br.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	if !strings.Contains(page, "« Newest") || strings.Count(page, `<a href="/ui/events/`) != deliveriesPerPage {
		t.Fatalf("second page:\n%s", page)
	}
	_, page = br.get("/ui/deliveries?ticket=4711&outcome=failed&type=ticket_created")
	b.mu.Lock()
	q := b.queries[len(b.queries)-1]
	b.mu.Unlock()
	if q.TicketID != 4711 || q.EventType != "ticket_created" || !slices.Equal(q.Outcomes, []outbox.Outcome{outbox.Retry, outbox.Dead}) || q.Limit != deliveriesPerPage {
		t.Errorf("filters reached the log as %+v", q)
	}
	if !strings.Contains(page, `value="4711"`) {
		t.Error("the ticket filter is not kept in the form")
	}
	if resp, page := br.get("/ui/deliveries?ticket=abc"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "ticket: not a ticket id") {
		t.Errorf("bad ticket filter: %s\n%s", resp.Status, page)
	}
	if resp, _ := br.get("/ui/deliveries?cursor=forged"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged cursor: %s", resp.Status)
	}
}

// TestDeadLetterConfirmation: replay and drop go through a confirmation
// page; "everything" must be confirmed in so many words.
func TestDeadLetterConfirmation(t *testing.T) {
	b := newMemBackend()
	_, srv := testConsole(t, b)
	br := newBrowser(t, srv.URL)
	br.signIn()
	_, page := br.get("/ui/dead/confirm?op=drop&endpoint=crm&ticket=4711")
	if !strings.Contains(page, "1 dead letter(s) match") || !strings.Contains(page, `action="/ui/dead/drop"`) {
		t.Fatalf("confirmation page:\n%s", page)
	}
	csrf := csrfRE.FindStringSubmatch(page)[1]
	// Not confirmed: nothing happens.
	resp, _ := br.do("POST", "/ui/dead/drop", url.Values{"csrf": {csrf}, "endpoint": {"crm"}}, nil)
	if resp.StatusCode != http.StatusBadRequest || len(b.dropped) != 0 {
		t.Fatalf("unconfirmed drop: %s, dropped %v", resp.Status, b.dropped)
	}
	// Everything, without all=true: refused.
	resp, _ = br.do("POST", "/ui/dead/replay", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, nil)
	if resp.StatusCode != http.StatusBadRequest || len(b.replayed) != 0 {
		t.Fatalf("replay of everything without all=true: %s", resp.Status)
	}
	_, page = br.get("/ui/dead/confirm?op=replay")
	if !strings.Contains(page, "every dead letter") || !strings.Contains(page, `name="all" value="true"`) {
		t.Errorf("confirming everything does not say so:\n%s", page)
	}
	// Without the confirmation page's time: refused (it bounds the action
	// to the letters the page counted).
	resp, _ = br.do("POST", "/ui/dead/drop", url.Values{"csrf": {csrf}, "confirm": {"yes"}, "endpoint": {"crm"}, "ticket": {"4711"}}, nil)
	if resp.StatusCode != http.StatusBadRequest || len(b.dropped) != 0 {
		t.Fatalf("drop without the page's time: %s, dropped %v", resp.Status, b.dropped)
	}
	_, page = br.get("/ui/dead/confirm?op=drop&endpoint=crm&ticket=4711")
	shown := regexp.MustCompile(`name="shown_at" value="([^"]+)"`).FindStringSubmatch(page)
	if shown == nil {
		t.Fatalf("the confirmation page carries no shown_at:\n%s", page)
	}
	resp, _ = br.do("POST", "/ui/dead/drop", url.Values{"csrf": {csrf}, "confirm": {"yes"}, "endpoint": {"crm"}, "ticket": {"4711"},
		"shown_at": {shown[1]}}, nil)
	if resp.StatusCode != http.StatusSeeOther || len(b.dropped) != 1 || b.dropped[0].Endpoint != "crm" || b.dropped[0].TicketID != 4711 ||
		b.dropped[0].DiedBy.Format(time.RFC3339Nano) != shown[1] {
		t.Fatalf("confirmed drop: %s, dropped %+v (page shown at %s)", resp.Status, b.dropped, shown[1])
	}
	_, page = br.get("/ui/dead")
	if !strings.Contains(page, "Dropped 1 dead letter(s)") {
		t.Error("no message after the drop")
	}
}

func TestResend(t *testing.T) {
	b := newMemBackend()
	_, srv := testConsole(t, b)
	br := newBrowser(t, srv.URL)
	br.signIn()
	_, page := br.get("/ui/events/evt_0000000000000010_0000")
	csrf := csrfRE.FindStringSubmatch(page)[1]
	if !strings.Contains(page, `<option value="crm">crm</option>`) || strings.Contains(page, `<option value="old">`) {
		t.Errorf("re-send offers the wrong endpoints:\n%s", page)
	}
	resp, _ := br.do("POST", "/ui/events/evt_0000000000000010_0000/resend", url.Values{"csrf": {csrf}, "endpoint": {"crm"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || !slices.Equal(b.resent, []string{"evt_0000000000000010_0000→crm"}) {
		t.Fatalf("re-send: %s %v", resp.Status, b.resent)
	}
	if resp, _ := br.get("/ui/events/evt_0000000000000099_0000"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown event: %s", resp.Status)
	}
}

func TestQuantile(t *testing.T) {
	bs := []Bucket{{0.001, 10}, {0.002, 50}, {0.004, 90}, {0.008, 100}, {posInf, 100}}
	for _, tc := range []struct{ q, want float64 }{{0.5, 0.002}, {0.1, 0.001}, {0.3, 0.0015}, {0.95, 0.006}} {
		if got := quantile(tc.q, bs); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(0.99, []Bucket{{0.001, 0}, {posInf, 5}}); got != 0.001 {
		t.Errorf("beyond the last bound: %v, want the bound", got)
	}
}

// TestCharts: rates over the minute before each sample, in events per
// minute, drawn as SVG lines.
func TestCharts(t *testing.T) {
	s := newSampler(5 * time.Second)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 30 {
		s.add(t0.Add(time.Duration(i)*5*time.Second), Counters{EventsStored: float64(10 * i), Attempts: float64(20 * i),
			AttemptSeconds: []Bucket{{0.001, float64(20 * i)}, {posInf, float64(20 * i)}}})
	}
	events, attempts, p50, _ := rates(s.snapshot())
	last := len(events) - 1
	// 10 events every 5 seconds: 120 a minute; attempts twice that.
	if events[last].v != 120 || attempts[last].v != 240 {
		t.Errorf("rates: events %v, attempts %v; want 120 and 240 a minute", events[last].v, attempts[last].v)
	}
	if p50[last].v != 0.5 {
		t.Errorf("p50 %v ms, want 0.5 (the middle of the first bucket)", p50[last].v)
	}
	ch := s.charts()
	if ch[0].Empty || len(ch[0].Series[0].Lines) != 1 || ch[0].Series[0].Last != "120 /min" {
		t.Errorf("chart: %+v", ch[0])
	}
	// The sampler keeps ChartSpan.
	for i := range 2000 {
		s.add(t0.Add(time.Duration(i)*5*time.Second), Counters{})
	}
	if n := len(s.snapshot()); n != int(ChartSpan/(5*time.Second))+1 {
		t.Errorf("kept %d samples", n)
	}
}

var posInf = math.Inf(1)
