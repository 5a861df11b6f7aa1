package testenv

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// SchemaDifference is how one table differs between the two test schemas:
// Faveo v9's on MySQL (MySQLSchemaSQL) and the older Faveo the PostgreSQL
// schema follows (SchemaSQL).
type SchemaDifference struct {
	OnlyPG, OnlyMySQL []string
	// SameOrderCommon: the columns both have come in the same order.
	SameOrderCommon bool
}

// SchemaDifferences names every difference between the two schemas' tables
// (TestMySQLAndPostgresSchemasDifferAsDocumented keeps it true). A payload
// showing a row shows these columns on one side only.
var SchemaDifferences = map[string]SchemaDifference{
	"tickets": {OnlyMySQL: []string{"resolution_time", "is_response_sla", "is_resolution_sla", "last_estd_duedate",
		"average_response_time", "parent_ticket_id", "category_id"}, SameOrderCommon: true},
	"ticket_thread":       {}, // v9 moved response_time last
	"ticket_collaborator": {SameOrderCommon: true},
	"ticket_attachment":   {OnlyPG: []string{"path", "driver"}, OnlyMySQL: []string{"content_id"}},
	"users": {OnlyPG: []string{"hash_ids", "is_login", "not_accept_ticket"},
		OnlyMySQL: []string{"ext", "phone_number", "assign_group", "internal_note", "user_language", "location",
			"google2fa_activation_date", "last_login_at", "import_identifier", "iso", "profile_pic_driver", "phone_iso",
			"deactivated_by", "created_by", "deactivated_at", "logout_time"}},
	"ticket_status":      {OnlyMySQL: []string{"secondary_status", "rating_auto_request"}, SameOrderCommon: true},
	"ticket_status_type": {SameOrderCommon: true},
	"department": {OnlyPG: []string{"type", "sla", "outgoing_email"},
		OnlyMySQL:       []string{"type_id", "outgoing_email_id", "business_hour_id", "en_auto_assign", "under_deletion"},
		SameOrderCommon: true},
	"teams": {OnlyPG: []string{"team_lead"}, OnlyMySQL: []string{"team_lead_id", "under_deletion"}, SameOrderCommon: true},
}

// schemaOnly reports whether column is one only one schema has, in a table
// whose rows payloads show (tickets, threads, users, statuses).
func schemaOnly(column string) bool {
	for _, table := range []string{"tickets", "ticket_thread", "users", "ticket_status", "ticket_status_type"} {
		d := SchemaDifferences[table]
		for _, c := range append(d.OnlyPG[:len(d.OnlyPG):len(d.OnlyPG)], d.OnlyMySQL...) {
			if c == column {
				return true
			}
		}
	}
	return false
}

// ZeroDate is how Faveo's MySQL schema fills tickets.transferred_at, which
// Faveo leaves out of its INSERT (NULL on PostgreSQL), and how deskhook
// shows it: as Faveo does.
const ZeroDate = "0000-00-00 00:00:00"

// PayloadDifferences compares the canonical JSON payloads deskhook made of
// the same helpdesk action on PostgreSQL (pg) and on MySQL (my), and
// returns every difference but the documented ones: a value both show
// differs (transferred_at excepted: NULL on PostgreSQL, ZeroDate on
// MySQL), or a key one side lacks is not a column only its schema has.
func PayloadDifferences(pg, my []byte) ([]string, error) {
	fp, err := flatten(pg)
	if err != nil {
		return nil, fmt.Errorf("the PostgreSQL payload: %w", err)
	}
	fm, err := flatten(my)
	if err != nil {
		return nil, fmt.Errorf("the MySQL payload: %w", err)
	}
	var out []string
	last := func(path string) string { return path[strings.LastIndex(path, ".")+1:] }
	for path, pv := range fp {
		mv, ok := fm[path]
		switch {
		case !ok && schemaOnly(last(path)):
		case !ok:
			out = append(out, fmt.Sprintf("%s = %s on PostgreSQL, missing on MySQL", path, pv))
		case last(path) == "transferred_at" && pv == "null" && mv == strconv.Quote(ZeroDate):
		case pv != mv:
			out = append(out, fmt.Sprintf("%s = %s on PostgreSQL, %s on MySQL", path, pv, mv))
		}
	}
	for path, mv := range fm {
		if _, ok := fp[path]; !ok && !schemaOnly(last(path)) {
			out = append(out, fmt.Sprintf("%s = %s on MySQL, missing on PostgreSQL", path, mv))
		}
	}
	sort.Strings(out)
	return out, nil
}

// flatten turns a JSON document into path → JSON value of its scalars.
func flatten(doc []byte) (map[string]string, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(path+"."+strconv.Itoa(i), c)
			}
		default:
			b, _ := json.Marshal(x)
			out[path] = string(b)
		}
	}
	walk("", v)
	return out, nil
}
