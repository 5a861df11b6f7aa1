package change

// Tables names the helpdesk tables deskhook reads. The source reads them
// (cdc: in its schema) and the mapper recognises changes by them, so both
// share this one type, filled from deskhook.yaml's source.tables.
// Departments and teams are published and recognised, but no payload shows
// their rows. Collaborators and attachments show only as the counts in the
// ticket object (collaborator_count, attachment_count): the mapper follows
// their changes to keep those counts current.
type Tables struct {
	Tickets       string `yaml:"tickets"`
	Threads       string `yaml:"threads"`
	Users         string `yaml:"users"`
	Statuses      string `yaml:"statuses"`
	StatusTypes   string `yaml:"status_types"`
	Departments   string `yaml:"departments"`
	Teams         string `yaml:"teams"`
	Collaborators string `yaml:"collaborators"`
	Attachments   string `yaml:"attachments"`
}

// SetDefaults fills every empty name with Faveo's.
func (t *Tables) SetDefaults() {
	for _, f := range []struct {
		p *string
		v string
	}{
		{&t.Tickets, "tickets"}, {&t.Threads, "ticket_thread"}, {&t.Users, "users"},
		{&t.Statuses, "ticket_status"}, {&t.StatusTypes, "ticket_status_type"},
		{&t.Departments, "department"}, {&t.Teams, "teams"},
		{&t.Collaborators, "ticket_collaborator"}, {&t.Attachments, "ticket_attachment"},
	} {
		if *f.p == "" {
			*f.p = f.v
		}
	}
}

// List returns the table names in a fixed order (tickets first).
func (t Tables) List() []string {
	return []string{t.Tickets, t.Threads, t.Users, t.Statuses, t.StatusTypes, t.Departments, t.Teams,
		t.Collaborators, t.Attachments}
}

// Keys returns the YAML keys of List, in the same order.
func (Tables) Keys() []string {
	return []string{"tickets", "threads", "users", "statuses", "status_types", "departments", "teams",
		"collaborators", "attachments"}
}

// Name returns the table name configured under the YAML key key ("" for a
// key Tables does not have).
func (t Tables) Name(key string) string {
	for i, k := range t.Keys() {
		if k == key {
			return t.List()[i]
		}
	}
	return ""
}
