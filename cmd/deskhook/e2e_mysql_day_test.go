package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// dayAppKey is the APP_KEY of the scripted day's helpdesk.
const dayAppKey = "base64:q2Ko9Zf1NnQ3m7bL0a8cW4xYtR6uV2sE9dH1jK5pG3A="

// faveoDay is a scripted helpdesk day: what the helpdesk did before
// deskhook's first start (never streamed: read from the database when
// needed), then every kind of action Faveo takes, on three tickets. want
// are the events it fires, in commit order.
type faveoDay struct {
	before, actions func(t *testing.T, hd *testenv.Helpdesk)
	want            []string
}

func scriptedDay() faveoDay {
	ctx := context.Background()
	// fail turns the simulator's results into the test's: w(...) for a
	// write, ok(...) for an id.
	fail := func(t *testing.T) (func(testenv.Write, error) testenv.Write, func(int64, error)) {
		return func(w testenv.Write, err error) testenv.Write {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				return w
			}, func(_ int64, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
	}
	return faveoDay{
		before: func(t *testing.T, hd *testenv.Helpdesk) {
			must, id := fail(t)
			w := must(hd.CreateTicket(ctx, testenv.NewTicket{Subject: "Printer on fire", Body: "<p>It is on fire &amp; smoking.</p>"}))
			must(hd.AgentReply(ctx, w.TicketID, testenv.AgentAlice, "<p>before deskhook</p>"))
			id(hd.AddCollaborator(ctx, w.TicketID, testenv.ClientGrace))
			id(hd.AddAttachment(ctx, w.ThreadID, "log.txt", []byte("smoke")))
		},
		actions: func(t *testing.T, hd *testenv.Helpdesk) {
			must, id := fail(t)
			must(hd.ClientReply(ctx, 1, testenv.ClientDave, "<p>Still burning</p>"))
			two := must(hd.CreateTicket(ctx, testenv.NewTicket{Subject: "Ünïcödé & \"quotes\"", Requester: testenv.ClientErin}))
			must(hd.AgentReply(ctx, two.TicketID, testenv.AgentAlice, "<p>Have you tried water?</p>\n<p>100% sure</p>"))
			must(hd.InternalNote(ctx, two.TicketID, testenv.AgentBob, "<p>internal</p>"))
			must(hd.AssignAgent(ctx, two.TicketID, testenv.AgentCarol, testenv.AdminID))
			must(hd.ChangeStatus(ctx, 1, testenv.StatusOnHold))
			must(hd.ChangeDepartment(ctx, two.TicketID, testenv.DeptOperation))
			must(hd.ChangeOwner(ctx, two.TicketID, testenv.ClientFrank))
			must(hd.ChangeDueDate(ctx, two.TicketID, time.Date(2022, 7, 1, 17, 0, 0, 0, time.UTC)))
			must(hd.AssignTeam(ctx, two.TicketID, testenv.TeamLevel2)) // fires nothing (team_assignment off)
			id(hd.AddCollaborator(ctx, two.TicketID, testenv.ClientDave))
			must(hd.ClientReply(ctx, two.TicketID, testenv.ClientFrank, "<p>thanks</p>"))
			three := must(hd.CreateTicket(ctx, testenv.NewTicket{TwoTransactions: true, Requester: testenv.ClientGrace}))
			r := must(hd.AgentReply(ctx, three.TicketID, testenv.AgentBob, "<p>see attached</p>"))
			id(hd.AddAttachment(ctx, r.ThreadID, "fix.pdf", []byte("%PDF")))
			must(hd.AgentReply(ctx, 1, testenv.AgentBob, "<p>second reply</p>"))
			must(hd.Delete(ctx, three.TicketID))
			must(hd.ChangeStatus(ctx, 1, testenv.StatusClosed))
		},
		want: []string{"ticket_commented", "ticket_created", "ticket_reply", "ticket_assigned", "ticket_status_updated",
			"ticket_department_updated", "ticket_owner_updated", "ticket_due_date_updated", "ticket_commented",
			"ticket_created", "ticket_reply", "ticket_reply", "ticket_status_updated", "ticket_status_updated"},
	}
}

// dayClock is the simulator's clock for the day: every action a minute
// after the last, from the same start on both databases.
func dayClock() func() time.Time {
	at := time.Date(2022, 6, 16, 7, 52, 32, 0, time.UTC)
	return func() time.Time {
		now := at
		at = at.Add(time.Minute)
		return now
	}
}

// dayEndpoints gives a world two endpoints, a faveo-form and a json one,
// and the day's APP_KEY.
func dayEndpoints(e *e2e) {
	form := e.endpoint(0)
	form["name"], form["url"] = "form", e.rcv.URL+"/form"
	jsonEP := map[string]any{"name": "json", "url": e.rcv.URL + "/json", "format": "json", "events": allEvents(),
		"retry": form["retry"]}
	e.cfg["endpoints"] = append(e.cfg["endpoints"].([]any), jsonEP)
	e.cfg["faveo"] = map[string]any{"app_key": dayAppKey}
	e.writeConfig()
}

// deliveredOn returns the first successful delivery of each webhook id on
// path, in commit order (the id's order).
func deliveredOn(reqs []testenv.Request, path string) []testenv.Request {
	seen := map[string]bool{}
	var out []testenv.Request
	for _, r := range reqs {
		id := r.Header.Get("Webhook-Id")
		if c := r.Reply.StatusCode(); r.Path != path || c < 200 || c >= 300 || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Header.Get("Webhook-Id") < out[j].Header.Get("Webhook-Id") })
	return out
}

// waitOn waits until n events were delivered on path.
func waitOn(t *testing.T, e *e2e, path string, n int) []testenv.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.rcv.WaitFor(ctx, func(reqs []testenv.Request) bool { return len(deliveredOn(reqs, path)) >= n }); err != nil {
		t.Fatalf("%d deliveries on %s, want %d: %v", len(deliveredOn(e.rcv.Requests(), path)), path, n, err)
	}
	time.Sleep(300 * time.Millisecond) // anything more would arrive now
	return deliveredOn(e.rcv.Requests(), path)
}

// TestMySQLFaveoDaySameAsPostgres is issue 14's first "done when" on the
// real binary: a scripted Faveo day on MariaDB gives the same events, in
// the same order, as on PostgreSQL; every payload agrees with
// PostgreSQL's on every value both show (the zero transferred_at Faveo's
// MySQL schema stores excepted, shown as Faveo shows it; columns only one
// schema has, testenv.SchemaDifferences); every faveo-form body is what
// PHP's http_build_query makes of the JSON body and what a PHP receiver's
// $_POST reads back, and every encrypted_id decrypts with Laravel's code
// to its ticket's id.
func TestMySQLFaveoDaySameAsPostgres(t *testing.T) {
	t.Parallel()
	day := scriptedDay()
	pg, my := newE2E(t), newMySQLE2E(t)
	dayEndpoints(pg)
	dayEndpoints(my)
	pgHD, myHD := testenv.NewHelpdesk(pg.db.Pool(t)), testenv.NewMySQLHelpdesk(my.pool())
	pgHD.Now, myHD.Now = dayClock(), dayClock()
	day.before(t, pgHD)
	day.before(t, myHD)
	pg.setup()
	dp, dm := pg.start(), my.start()
	day.actions(t, pgHD)
	day.actions(t, myHD)

	n := len(day.want)
	bodies := map[string][]testenv.Request{}
	for name, e := range map[string]*e2e{"pg": pg, "my": my} {
		for _, path := range []string{"/form", "/json"} {
			got := waitOn(t, e, path, n)
			var types []string
			for _, r := range got {
				types = append(types, eventOf(t, r))
			}
			if !slices.Equal(types, day.want) {
				t.Fatalf("%s %s: events %v, want %v", name, path, types, day.want)
			}
			bodies[name+path] = got
		}
	}
	dp.stop()
	dm.stop()

	var forms, jsons bytes.Buffer
	for i := range n {
		pgJSON, myJSON := bodies["pg/json"][i].Body, bodies["my/json"][i].Body
		diffs, err := testenv.PayloadDifferences(pgJSON, myJSON)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range diffs {
			t.Errorf("event %d (%s): %s", i, day.want[i], d)
		}
		if !bytes.Contains(myJSON, []byte(`"transferred_at":"`+testenv.ZeroDate+`"`)) {
			t.Errorf("event %d: the MySQL payload does not show the zero transferred_at as Faveo does: %s", i, myJSON)
		}
		forms.Write(bodies["my/form"][i].Body)
		forms.WriteByte('\n')
		jsons.Write(myJSON)
		jsons.WriteByte('\n')
	}
	checkFormsInPHP(t, forms.String(), jsons.String())
}

// eventOf is a delivery's event type.
func eventOf(t *testing.T, r testenv.Request) string {
	t.Helper()
	if r.Form != nil {
		return r.Form.Get("event")
	}
	var p struct{ Event string }
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("a json body that does not decode: %v\n%s", err, r.Body)
	}
	return p.Event
}

// checkFormsInPHP checks, line by line, faveo-form bodies against the json
// bodies of the same events with PHP: the form is byte for byte
// http_build_query of the JSON (as Faveo builds it); parse_str of the form
// ($_POST) is the JSON tree without what a form cannot carry (nulls, empty
// arrays); every encrypted_id decrypts with Laravel's code to its ticket's
// id.
func checkFormsInPHP(t *testing.T, forms, jsons string) {
	t.Helper()
	code := testenv.PHPLaravelDecrypt + `
function form_view($a) {
  $out = [];
  foreach ($a as $k => $v) {
    if (is_array($v)) { $v = form_view($v); if ($v === []) continue; }
    if ($v === null) continue;
    $out[$k] = $v;
  }
  return $out;
}
function ids($a, &$out) {
  foreach ($a as $k => $v) {
    if (is_array($v)) { ids($v, $out); }
    if ($k === 'encrypted_id') { $out[] = [$v, $a['id']]; }
  }
}
list($forms, $jsons) = explode("\n\n", file_get_contents("php://stdin"));
$forms = explode("\n", trim($forms)); $jsons = explode("\n", trim($jsons));
foreach ($forms as $i => $form) {
  $tree = json_decode($jsons[$i], true);
  if (http_build_query($tree) !== $form) echo "$i: http_build_query differs: ", http_build_query($tree), "\n";
  parse_str($form, $post);
  if ($post !== form_view($tree)) echo "$i: \$_POST differs: ", json_encode($post), "\n";
  $found = [];
  ids($post, $found);
  if (count($found) === 0) echo "$i: no encrypted_id\n";
  foreach ($found as [$enc, $id]) {
    try { $plain = laravel_decrypt('` + dayAppKey + `', $enc); } catch (Exception $e) { $plain = "error: ".$e->getMessage(); }
    if ($plain !== $id) echo "$i: encrypted_id decrypts to $plain, the id is $id\n";
  }
}
echo "checked ", count($forms), "\n";`
	out := strings.TrimSpace(string(testenv.RunPHP(t, code, []byte(forms+"\n"+jsons))))
	want := fmt.Sprintf("checked %d", strings.Count(forms, "\n"))
	if out != want {
		t.Errorf("PHP:\n%s", out)
	}
}
