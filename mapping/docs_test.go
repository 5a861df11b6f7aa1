package mapping_test

import (
	"encoding/base64"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/mapping"
)

// TestFaveoDocumentedExamples loads the rows behind the example payloads
// of Faveo's webhook documentation (testdata/docs, taken from its public
// page, which docs/faveo-webhooks.md names) — the same users, statuses,
// tickets and threads with the same ids, values and times — replays the
// documented actions through real replication, and checks that each
// payload has the documented structure: the same keys in the same order,
// the same nesting, every value a string, dates as Y-m-d H:i:s, and the
// same values wherever the database holds what Faveo showed.
//
// The docs show form bodies decoded, so nulls are absent there; we compare
// them with the faveo-form view of our payloads (nulls and empty objects
// dropped). Known, documented deviations are listed where they apply.
func TestFaveoDocumentedExamples(t *testing.T) {
	p := newPipeline(t)
	// Before deskhook is set up: the docs' users (admin 1, client 2) and
	// ticket 9 with its first thread 13. Statuses 1 and 9 and status type 1
	// are seeded with the docs' values.
	p.exec(`UPDATE users SET user_name = 'Mohammad_Asif', first_name = 'Mohammad', last_name = 'Asif',
			email = 'mohammad.asif@ladybirdweb.com', active = 1, is_delete = 0, country_code = '', mobile = '',
			agent_sign = '', account_type = '', account_status = '', primary_dpt = 1, agent_tzone = '81',
			daylight_save = '', limit_access = '', directory_listing = '', vacation_mode = '', company = '',
			role = 'admin', profile_pic = '', created_at = '2022-03-22 11:13:00', updated_at = '2022-03-22 11:15:19',
			email_verify = '1', mobile_verify = '0', is_2fa_enabled = 0, delete_account_requested = 0,
			processing_account_disabling = 0, notify_unrecognized_login = 0, is_login = 1, not_accept_ticket = 0,
			phone_country_code = '' WHERE id = 1;
		UPDATE users SET user_name = 'aasif335253@gmail.com', first_name = 'Sheikh', last_name = 'Aasif',
			email = 'aasif335253@gmail.com', role = 'user', email_verify = '0', mobile_verify = '0' WHERE id = 2;
		INSERT INTO tickets (id, ticket_number, user_id, dept_id, priority_id, sla, help_topic_id, status, rating,
			ratingreply, flags, ip_address, assigned_to, lock_by, source, isoverdue, reopened, isanswered, html,
			is_deleted, closed, is_transferred, duedate, created_at, updated_at, type, location_id, creator_id,
			response_due_by, is_manual_duedate, resolution_due_by)
		VALUES (9, 'HDSK-AAAA-0009', 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, NULL, 0, 1, 0, 0, 0, 0, 0, 0, 0,
			'2022-06-16 12:49:49', '2022-06-16 07:49:49', '2022-06-16 07:49:49', 0, 0, 1, '2022-06-16 12:49:49', 0,
			'2022-06-16 12:49:49');
		INSERT INTO ticket_thread (id, ticket_id, user_id, thread_type, poster, source, reply_rating, rating_count,
			is_internal, title, body, format, ip_address, created_at, updated_at)
		VALUES (13, 9, 2, NULL, 'client', NULL, 0, 0, 0, 'Unaccessable mails beyond the first page',
			'<p>Test Mail1</p>', '', '', '2022-06-16 07:49:50', '2022-06-16 07:49:50')`)
	p.setup()
	// 07:52:32 ticket 10 is created with its first thread 14.
	p.exec(`INSERT INTO tickets (id, ticket_number, user_id, dept_id, priority_id, sla, help_topic_id, status, rating,
			ratingreply, flags, ip_address, assigned_to, lock_by, source, isoverdue, reopened, isanswered, html,
			is_deleted, closed, is_transferred, created_at, updated_at, type, location_id, creator_id,
			is_manual_duedate, resolution_due_by)
		VALUES (10, 'HDSK-AAAA-0010', 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, NULL, 0, 1, 0, 0, 0, 0, 0, 0, 0,
			'2022-06-16 07:52:32', '2022-06-16 07:52:32', 0, 0, 1, 0, '2022-06-16 12:52:32');
		INSERT INTO ticket_thread (id, ticket_id, user_id, thread_type, poster, source, reply_rating, rating_count,
			is_internal, title, body, format, ip_address, created_at, updated_at)
		VALUES (14, 10, 2, NULL, 'client', NULL, 0, 0, 0, 'creating a ticket', '<p>ticket create</p>', '', '',
			'2022-06-16 07:52:32', '2022-06-16 07:52:32')`)
	// 07:56:56 ticket 9 goes On hold; 08:00:38 it moves to department 3.
	p.exec(`UPDATE tickets SET status = 9, updated_at = '2022-06-16 07:56:56' WHERE id = 9`)
	p.exec(`UPDATE tickets SET dept_id = 3, duedate = NULL, response_due_by = NULL,
		updated_at = '2022-06-16 08:00:38' WHERE id = 9`)
	// 08:05:20 ticket 10 is assigned to the admin (and moved, and put on hold).
	p.exec(`UPDATE tickets SET dept_id = 2, status = 9, assigned_to = 1, updated_at = '2022-06-16 08:05:20' WHERE id = 10`)
	// 08:13:25 the admin replies.
	reply := "<p>reply</p>\n<blockquote>On June 16, 2022 01:22 pm <strong>Sheikh Aasif</strong> wrote :\n<figure>\n" +
		"<p>ticket create</p>\n</figure>\n</blockquote>"
	p.exec(`INSERT INTO ticket_thread (id, ticket_id, user_id, thread_type, poster, source, reply_rating, rating_count,
			is_internal, title, body, format, ip_address, response_time, created_at, updated_at)
		VALUES (22, 10, 1, 'first_reply', 'support', NULL, 0, 0, 0, '', ` + quoteLiteral(reply) + `, '', '', 21,
			'2022-06-16 08:13:25', '2022-06-16 08:13:25');
		UPDATE tickets SET updated_at = '2022-06-16 08:13:25' WHERE id = 10`)

	events := p.stream(p.mapper(mapping.Config{AppKey: testAppKey}, mapping.Options{}), streamOptions{})
	var types []string
	for _, ev := range events {
		types = append(types, ev.Type)
	}
	// The department change also clears the due date (as between the docs'
	// two examples of ticket 9): ticket_due_date_updated.
	wantTypes := []string{mapping.TicketCreated, mapping.TicketStatusUpdated, mapping.TicketDepartmentUpdated,
		mapping.TicketDueDateUpdated, mapping.TicketStatusUpdated, mapping.TicketDepartmentUpdated, mapping.TicketAssigned, mapping.TicketReply}
	if !slices.Equal(types, wantTypes) {
		t.Fatalf("events %v, want %v", types, wantTypes)
	}
	documented := map[string]mapping.Event{
		mapping.TicketCreated:           events[0],
		mapping.TicketStatusUpdated:     events[1],
		mapping.TicketDepartmentUpdated: events[2],
		mapping.TicketAssigned:          events[6],
		mapping.TicketReply:             events[7],
	}
	for _, name := range mapping.FaveoEvents {
		t.Run(name, func(t *testing.T) {
			docs := parseTree(t, readDocs(t, name))
			ours := parseTree(t, documented[name].Payload)
			checkStrings(t, "", ours)
			c := &docsComparison{t: t, event: name}
			c.compare("", docs, ours.formView())
		})
	}
}

// checkStrings asserts every scalar of the JSON payload is a string or null.
func checkStrings(t *testing.T, path string, n *tree) {
	t.Helper()
	if n.isNull || n.scalar != nil {
		return
	}
	for i, k := range n.keys {
		v := n.vals[i]
		if v.scalar != nil && !v.isString {
			t.Errorf("%s.%s is not a string", path, k)
		}
		checkStrings(t, path+"."+k, v)
	}
}

var dateTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)

type docsComparison struct {
	t     *testing.T
	event string
}

// Documented deviations, by path in the payload (docs/faveo-webhooks.md,
// "Where deskhook differs from Faveo").
var (
	// Faveo's ticket_created and ticket_reply show Eloquent models fresh
	// from an insert: only the attributes Faveo set, in the order it set
	// them. The database holds whole rows, in column order: our objects
	// have every documented key, and more, in column order.
	insertOrderObjects = map[string]bool{
		"ticket_created:ticket": true,
		"ticket_reply:thread":   true,
	}
	// Values that differ for a documented reason.
	valueDeviations = map[string]string{
		// MySQL's zero date has no PostgreSQL equivalent: the column is NULL.
		"transferred_at": "zero date",
		// Encrypted with a random IV under Faveo's key; ours under the test key.
		"encrypted_id": "different key and IV",
		// Faveo fires ticket_created before the first thread exists;
		// deskhook on its commit, and shows the rows as of that commit.
		"ticket_created:ticket.thread_count":          "as of the first thread's commit",
		"ticket_created:ticket.strictly_thread_count": "as of the first thread's commit",
		"ticket_created:ticket.poster":                "as of the first thread's commit",
		// Faveo's model holds what the form posted ("" for none), the row 0.
		"ticket_created:ticket.location_id": "model attribute vs row",
		"ticket_created:ticket.type":        "model attribute vs row",
		"ticket_created:ticket.sla":         "model attribute vs row",
		// Faveo builds statuses before the change: it shows the old status.
		"ticket_status_updated:ticket.statuses": "new status, not Faveo's old one",
		// Faveo selects only five columns for replied_by, so its verified
		// appends always read 0; deskhook shows the user's real state.
		"ticket_reply:replied_by.email_verified": "true value",
	}
)

func (c *docsComparison) compare(path string, docs, ours *tree) {
	t := c.t
	t.Helper()
	full := c.event + ":" + strings.TrimPrefix(path, ".")
	key := path[strings.LastIndex(path, ".")+1:]
	if why, ok := valueDeviations[full]; ok && docs.scalar == nil {
		t.Logf("%s: structure not compared (%s)", full, why)
		if ours == nil || ours.scalar != nil {
			t.Errorf("%s: want an object", full)
		}
		return
	}
	if ours == nil {
		if _, ok := valueDeviations[key]; ok {
			return
		}
		t.Errorf("%s: documented, missing from our payload", full)
		return
	}
	if docs.scalar != nil {
		if ours.scalar == nil {
			t.Errorf("%s: documented as a string, ours is an object", full)
			return
		}
		if dateTimeRE.MatchString(*docs.scalar) && !dateTimeRE.MatchString(*ours.scalar) {
			t.Errorf("%s: %q is not a Y-m-d H:i:s date like the documented %q", full, *ours.scalar, *docs.scalar)
		}
		_, byKey := valueDeviations[key]
		_, byPath := valueDeviations[full]
		switch {
		case key == "encrypted_id":
			raw, err := base64.StdEncoding.DecodeString(*ours.scalar)
			if err != nil || !regexp.MustCompile(`^\{"iv":"[^"]+","value":"[^"]+","mac":"[0-9a-f]{64}"\}$`).Match(raw) {
				t.Errorf("%s: %q is not Laravel's encrypted payload (%s)", full, *ours.scalar, raw)
			}
		case byKey || byPath:
		case *docs.scalar != *ours.scalar:
			t.Errorf("%s: %q, documented %q", full, *ours.scalar, *docs.scalar)
		}
		return
	}
	if ours.scalar != nil {
		t.Errorf("%s: documented as an object, ours is %q", full, *ours.scalar)
		return
	}
	var ourKeys []string
	for i, k := range docs.keys {
		j := slices.Index(ours.keys, k)
		var sub *tree
		if j >= 0 {
			sub = ours.vals[j]
			ourKeys = append(ourKeys, k)
		}
		c.compare(path+"."+k, docs.vals[i], sub)
	}
	// Same keys, same order: our object, restricted to the documented
	// keys, lists them in the documented order; and it has no others,
	// except where Faveo showed a freshly inserted model.
	var restricted []string
	for _, k := range ours.keys {
		if slices.Contains(docs.keys, k) {
			restricted = append(restricted, k)
		} else if !insertOrderObjects[full] {
			t.Errorf("%s: key %q is not in the documented payload", full, k)
		}
	}
	if !insertOrderObjects[full] && !slices.Equal(restricted, ourKeys) {
		t.Errorf("%s: keys in order %v, documented %v", full, restricted, ourKeys)
	}
}

// quoteLiteral quotes a PostgreSQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
