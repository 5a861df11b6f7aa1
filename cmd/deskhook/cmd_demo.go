package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/mapping"
	"github.com/deskhook/deskhook/sender"
	"github.com/deskhook/deskhook/testenv"
)

func init() {
	register("demo", "try it: throwaway PostgreSQL or MariaDB, simulated helpdesk, webhooks printed as they arrive", cmdDemo)
}

func cmdDemo(ctx context.Context, e *env, args []string) error {
	fs, _ := newFlags(e, "demo", "[--source postgres|mariadb] [--keep] [--tickets N] [--rate R]",
		"Starts a throwaway PostgreSQL (or, with --source mariadb, MariaDB) with Faveo's schema,\n"+
			"runs setup, starts the daemon and a local receiver, simulates a helpdesk day (tickets,\n"+
			"replies, status, department and assignment changes) and prints each webhook as it\n"+
			"arrives, then a summary. Ctrl-C stops and cleans up. It installs nothing: it needs the\n"+
			"PostgreSQL server binaries (apt-get install postgresql), or for --source mariadb the\n"+
			"MariaDB server's (apt-get install mariadb-server), and says which are missing.", false)
	source := fs.String("source", "postgres", "the helpdesk's database: postgres or mariadb")
	keep := fs.Bool("keep", false, "keep the database, daemon and receiver running after the day, print the DSN and config; Ctrl-C cleans up")
	tickets := fs.Int("tickets", 30, "tickets to simulate")
	rate := fs.Float64("rate", 15, "helpdesk actions per second")
	verbose := fs.Bool("verbose", false, "show the daemon's logs")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *tickets < 1 || *rate <= 0 {
		return usagef("demo: --tickets and --rate must be positive")
	}
	if *source != "postgres" && *source != "mariadb" {
		return usagef("demo: --source must be postgres or mariadb (got %q)", *source)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := e.stdout
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

	helpdesk, err := startDemoDatabase(ctx, *source, say)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer helpdesk.close()
	rcv, err := testenv.StartReceiver("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: receiver: %w", err)
	}
	defer rcv.Close()
	rcv.SetKeep(false)

	// A second receiver, "the CRM", turns every tenth ticket away: the
	// console then has failures, retries and dead letters to show.
	crm, err := startDemoCRM()
	if err != nil {
		return fmt.Errorf("demo: receiver: %w", err)
	}
	defer crm.Close()

	dir, err := os.MkdirTemp("", "deskhook-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := &daemon.Config{
		Source: helpdesk.source,
		Store:  daemon.StoreConfig{Path: filepath.Join(dir, "deskhook.db")},
		Admin:  daemon.AdminConfig{Listen: "127.0.0.1:0"},
		Log:    daemon.LogConfig{Level: "warn"},
		Sender: sender.Config{Endpoints: []sender.Endpoint{
			{Name: "demo-receiver", URL: rcv.URL + "/webhooks/faveo", Events: mapping.AllEvents},
			demoCRMEndpoint(crm.URL),
		}},
		Faveo:           mapping.Config{AppKey: "base64:" + demoAppKey},
		ShutdownTimeout: 5 * time.Second,
	}
	if *verbose {
		cfg.Log.Level = "info"
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	done, err := daemon.Setup(ctx, cfg, false)
	if err != nil {
		return fmt.Errorf("demo: setup: %w", err)
	}
	for _, d := range done {
		say("setup: %s", d)
	}

	lat := newLatencies()
	rcv.OnRequest(func(r testenv.Request) { lat.arrived(r) })
	go lat.print(ctx, out)

	log := daemon.NewLogger(e.stderr, cfg.Log, daemon.NewRedactor(cfg.Secrets()))
	d, err := daemon.New(ctx, cfg, daemon.Options{Logger: log, Version: Version})
	if err != nil {
		return err
	}
	runCtx, stopDaemon := context.WithCancel(context.WithoutCancel(ctx))
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(runCtx) }()
	defer func() {
		stopDaemon()
		<-runErr
	}()
	// A MySQL source starts reading where the server is when the daemon
	// first streams: the helpdesk starts after that.
	if err := waitReady(ctx, d.AdminAddr(), runErr); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	say("daemon running (admin http://%s), receiver at %s", d.AdminAddr(), rcv.URL)
	say("console: %s  (demo-crm, a second endpoint, turns every tenth ticket away: failures and dead letters to look at)", d.ConsoleURL())
	say("  sign in with this one-time link while the demo runs (--keep keeps it open): %s", d.ConsoleLoginURL())
	say("simulating a helpdesk day: %d tickets, replies, notes, status, department, assignment, owner and due-date changes...\n", *tickets)
	say("  %-8s %-27s %-16s %s", "AT", "EVENT", "TICKET", "COMMIT→DELIVERY")

	res, err := helpdesk.load(ctx, testenv.LoadConfig{
		Tickets: *tickets, Replies: 2, Updates: 3, Writers: 2, Rate: *rate, Seed: time.Now().UnixNano(),
		UpdateKinds: []testenv.ActionKind{testenv.ActStatus, testenv.ActDepartment, testenv.ActAssignAgent,
			testenv.ActAssignTeam, testenv.ActOwner, testenv.ActDueDate, testenv.ActNote},
		OnAction: lat.committed,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("demo: simulator: %w", err)
	}
	want := res.TotalEvents()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	werr := rcv.Wait(wctx, want)
	cancel()
	time.Sleep(100 * time.Millisecond) // let the printer catch up
	lat.summary(out, want)
	if werr != nil && ctx.Err() == nil {
		return fmt.Errorf("demo: %d of %d expected webhooks arrived within 30s", rcv.Count(), want)
	}
	if *keep && ctx.Err() == nil {
		path := filepath.Join(dir, "deskhook.yaml")
		if err := writeDemoConfig(path, cfg, d.AdminAddr()); err != nil {
			return err
		}
		say("\n--keep: everything keeps running until Ctrl-C.")
		say("  database: %s", helpdesk.dsn)
		say("  config:   %s   (try: deskhook status -c %s)", path, path)
		say("  console:  %s", d.ConsoleURL())
		say("  login:    %s   (one-time; later: deskhook ui -c %s)", d.ConsoleLoginURL(), path)
		say("  write to the helpdesk with %s and watch the webhooks arrive here.", helpdesk.client)
		<-ctx.Done()
	}
	return nil
}

// demoAppKey is a fixed, public APP_KEY so the demo's encrypted_id is real.
const demoAppKey = "ZGVza2hvb2stZGVtby1rZXktMzItYnl0ZXMtbG9uZyE="

// latencies matches arrivals with the commits that caused them.
type latencies struct {
	mu      sync.Mutex
	commits map[string][]time.Time // ticket id + event → commit times, in order
	arrive  chan testenv.Request
	start   time.Time
	samples map[string][]time.Duration
	total   int
}

func newLatencies() *latencies {
	return &latencies{commits: map[string][]time.Time{}, arrive: make(chan testenv.Request, 4096),
		start: time.Now(), samples: map[string][]time.Duration{}}
}

func (l *latencies) committed(a testenv.Action) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range a.Events {
		k := strconv.FormatInt(a.TicketID, 10) + "/" + ev
		l.commits[k] = append(l.commits[k], a.CommittedAt)
	}
}

func (l *latencies) arrived(r testenv.Request) {
	select {
	case l.arrive <- r:
	default: // the printer fell behind; the summary still counts it
	}
}

// print shows each arrival: the event, the ticket and how long after its
// commit it arrived.
func (l *latencies) print(ctx context.Context, out interface{ Write([]byte) (int, error) }) {
	for {
		var r testenv.Request
		select {
		case <-ctx.Done():
			return
		case r = <-l.arrive:
		}
		form, _ := url.ParseQuery(string(r.Body))
		ev := form.Get("event")
		id, number := ticketOf(ev, form)
		var lat time.Duration
		found := false
		for i := 0; i < 50 && !found; i++ { // the simulator records the commit right after it
			l.mu.Lock()
			k := id + "/" + ev
			if q := l.commits[k]; len(q) > 0 {
				// The commit time is taken when the writer hears of its
				// commit, which can be after the webhook left: then the
				// latency is below what can be measured here.
				lat, found = max(0, r.Arrived.Sub(q[0])), true
				l.commits[k] = q[1:]
			}
			l.mu.Unlock()
			if !found {
				time.Sleep(2 * time.Millisecond)
			}
		}
		l.mu.Lock()
		l.total++
		shown := "?"
		if found {
			l.samples[ev] = append(l.samples[ev], lat)
			shown = fmt.Sprintf("%.1f ms", float64(lat.Microseconds())/1000)
		}
		l.mu.Unlock()
		fmt.Fprintf(out, "  %-8s %-27s %-16s %s\n", fmt.Sprintf("+%.1fs", r.Arrived.Sub(l.start).Seconds()), ev, number, shown)
	}
}

// ticketOf finds the ticket in a Faveo form body: under ticket, under
// thread for ticket_department_updated (Faveo's key), under thread.ticket
// for replies and comments.
func ticketOf(event string, f url.Values) (id, number string) {
	switch event {
	case mapping.TicketReply, mapping.TicketCommented:
		return f.Get("thread[ticket_id]"), f.Get("thread[ticket][ticket_number]")
	case mapping.TicketDepartmentUpdated:
		return f.Get("thread[id]"), f.Get("thread[ticket_number]")
	}
	return f.Get("ticket[id]"), f.Get("ticket[ticket_number]")
}

func (l *latencies) summary(out interface{ Write([]byte) (int, error) }, want int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(out, "\n%d webhooks arrived (%d expected).\n", l.total, want)
	fmt.Fprintf(out, "  %-27s %6s %9s %9s %9s\n", "EVENT", "COUNT", "P50", "P99", "MAX")
	var all []time.Duration
	for _, ev := range mapping.AllEvents {
		s := l.samples[ev]
		if len(s) == 0 {
			continue
		}
		all = append(all, s...)
		fmt.Fprintf(out, "  %-27s %6d %9s %9s %9s\n", ev, len(s), pct(s, 50), pct(s, 99), pct(s, 100))
	}
	if len(all) > 0 {
		fmt.Fprintf(out, "  %-27s %6d %9s %9s %9s\n", "all", len(all), pct(all, 50), pct(all, 99), pct(all, 100))
	}
}

func pct(s []time.Duration, p int) string {
	s = slices.Clone(s)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	i = max(1, min(i, len(s)))
	return fmt.Sprintf("%.1fms", float64(s[i-1].Microseconds())/1000)
}

// writeDemoConfig writes a config file equivalent to the demo's, for other
// deskhook commands to use against the running demo.
func writeDemoConfig(path string, cfg *daemon.Config, adminAddr string) error {
	text := fmt.Sprintf(`# The config the demo runs with (its daemon is in the demo process).
source:
  type: %s
  dsn: %q
store:
  path: %q
faveo:
  app_key: %q
admin:
  listen: %q
endpoints:
`, cfg.Source.Type, cfg.Source.DSN, cfg.Store.Path, cfg.Faveo.AppKey, adminAddr)
	for _, ep := range cfg.Sender.Endpoints {
		text += fmt.Sprintf("  - name: %s\n    url: %q\n    events: [%s]\n", ep.Name, ep.URL, strings.Join(ep.Events, ", "))
		if ep.Format != "" {
			text += fmt.Sprintf("    format: %s\n", ep.Format)
		}
		if ep.Secret != "" {
			text += fmt.Sprintf("    secret: %q\n", string(ep.Secret))
		}
		for k, v := range ep.Headers {
			text += fmt.Sprintf("    headers: {%q: %q}\n", k, v)
		}
		if len(ep.Retry.Schedule) > 0 && len(ep.Retry.Schedule) < len(sender.DefaultSchedule) {
			var sched []string
			for _, d := range ep.Retry.Schedule {
				sched = append(sched, d.String())
			}
			text += fmt.Sprintf("    retry: {schedule: [%s]}\n", strings.Join(sched, ", "))
		}
	}
	return os.WriteFile(path, []byte(text), 0o600)
}

// The demo's second endpoint, "the CRM": JSON bodies, signed, with an API
// key header (the console masks both), and a short retry schedule, so that
// the tickets it turns away become dead letters within seconds.
const (
	demoCRMSecret = "whsec_ZGVza2hvb2stZGVtby1jcm0tc2VjcmV0IQ=="
	demoCRMKey    = "Bearer demo-crm-api-key-7f3a"
)

func demoCRMEndpoint(base string) sender.Endpoint {
	return sender.Endpoint{
		Name: "demo-crm", URL: base + "/api/tickets", Format: mapping.FormatJSON,
		Events:  []string{mapping.TicketCreated, mapping.TicketStatusUpdated},
		Secret:  demoCRMSecret,
		Headers: map[string]string{"Authorization": demoCRMKey},
		Retry:   sender.Retry{Schedule: []time.Duration{0, 500 * time.Millisecond, time.Second}},
	}
}

// startDemoCRM starts the CRM's receiver: it answers 422 for every tenth
// ticket (4, 14, 24, ...), 200 otherwise.
func startDemoCRM() (*testenv.Receiver, error) {
	crm, err := testenv.StartReceiver("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	crm.SetKeep(false)
	crm.SetHook(func(req *testenv.Request) (testenv.Reply, bool) {
		doc, _ := req.JSON.(map[string]any)
		ticket, _ := doc["ticket"].(map[string]any)
		id, _ := strconv.ParseInt(fmt.Sprint(ticket["id"]), 10, 64)
		if id%10 == 4 {
			return testenv.Reply{Status: http.StatusUnprocessableEntity,
				Body: `{"message":"ticket rejected: no CRM account for the requester"}`}, true
		}
		return testenv.Reply{}, false
	})
	return crm, nil
}

// demoDatabase is the demo's throwaway helpdesk database.
type demoDatabase struct {
	source daemon.SourceConfig
	dsn    string // as its administrator, for --keep
	client string // the command-line client to write with
	load   func(context.Context, testenv.LoadConfig) (testenv.LoadResult, error)
	close  func()
}

// startDemoDatabase starts a throwaway PostgreSQL or MariaDB holding Faveo's
// schema. It installs nothing: a missing server is an error naming the
// package.
func startDemoDatabase(ctx context.Context, source string, say func(string, ...any)) (*demoDatabase, error) {
	if source == "mariadb" {
		say("starting a throwaway MariaDB (row-based binlog with full row images and column names) with Faveo's schema...")
		srv, err := testenv.StartMariaDB(ctx)
		if err != nil {
			return nil, err
		}
		db, err := srv.CreateDatabase(ctx, "helpdesk")
		if err != nil {
			srv.Close()
			return nil, err
		}
		sqlDB, err := testenv.OpenFaveoMySQL(db.DSN)
		if err != nil {
			srv.Close()
			return nil, err
		}
		src := daemon.SourceConfig{Type: daemon.SourceMySQL, Config: cdc.Config{DSN: db.DeskhookDSN}}
		return &demoDatabase{source: src, dsn: db.DSN, client: "the mariadb client",
			load: func(ctx context.Context, c testenv.LoadConfig) (testenv.LoadResult, error) {
				return testenv.LoadMySQL(ctx, sqlDB, c)
			},
			close: func() { sqlDB.Close(); srv.Close() }}, nil
	}
	say("starting a throwaway PostgreSQL (wal_level=logical) with Faveo's schema...")
	srv, err := testenv.StartServer(ctx)
	if err != nil {
		return nil, err
	}
	db, err := srv.CreateDatabase(ctx, "helpdesk")
	if err != nil {
		srv.Close()
		return nil, err
	}
	pool, err := pgxpool.New(ctx, db.DSN)
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &demoDatabase{source: daemon.SourceConfig{Config: cdc.Config{DSN: db.DSN}}, dsn: db.DSN, client: "psql",
		load: func(ctx context.Context, c testenv.LoadConfig) (testenv.LoadResult, error) {
			return testenv.Load(ctx, pool, c)
		},
		close: func() { pool.Close(); srv.Close() }}, nil
}

// waitReady waits until the daemon's /readyz answers 200 (or the daemon
// stops: its error).
func waitReady(ctx context.Context, adminAddr string, runErr chan error) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	last := "no answer"
	for {
		if resp, err := hc.Get("http://" + adminAddr + "/readyz"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = strings.TrimSpace(string(body))
		}
		select {
		case err := <-runErr:
			runErr <- err
			return fmt.Errorf("the daemon stopped: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon is not ready after 2 minutes: %s", last)
		}
	}
}
