package testenv

// Ids of the rows seed.sql inserts into every test database. Rows a test
// adds get ids after these.

// Users.
const (
	AdminID int64 = 1 // role admin, primary department Support

	AgentAlice int64 = 2 // role agent, primary department Support, leads team Level 1 Support
	AgentBob   int64 = 3 // role agent, primary department Sales, leads team Level 2 Support
	AgentCarol int64 = 4 // role agent, primary department Operation, leads team Developer

	ClientDave  int64 = 5 // email verified
	ClientErin  int64 = 6 // email not verified (email_verify '0')
	ClientFrank int64 = 7 // email not verified (a pending verification token)
	ClientGrace int64 = 8 // email and mobile verified
)

// Agents are the users with role agent; Staff adds the admin.
var (
	Agents  = []int64{AgentAlice, AgentBob, AgentCarol}
	Staff   = []int64{AdminID, AgentAlice, AgentBob, AgentCarol}
	Clients = []int64{ClientDave, ClientErin, ClientFrank, ClientGrace}
)

// Departments.
const (
	DeptSupport   int64 = 1
	DeptSales     int64 = 2
	DeptOperation int64 = 3
)

// Departments lists every seeded department.
var Departments = []int64{DeptSupport, DeptSales, DeptOperation}

// Teams.
const (
	TeamLevel1    int64 = 1 // "Level 1 Support"
	TeamLevel2    int64 = 2 // "Level 2 Support"
	TeamDeveloper int64 = 3
)

// Teams lists every seeded team.
var Teams = []int64{TeamLevel1, TeamLevel2, TeamDeveloper}

// Help topics (each routes to the department of the same position).
const (
	TopicSupport     int64 = 1 // "Support query", department Support
	TopicSales       int64 = 2 // "Sales query", department Sales
	TopicOperational int64 = 3 // "Operational query", department Operation
)

// HelpTopics lists every seeded help topic.
var HelpTopics = []int64{TopicSupport, TopicSales, TopicOperational}

// Ticket types.
const (
	TypeQuestion       int64 = 1
	TypeIncident       int64 = 2
	TypeProblem        int64 = 3
	TypeFeatureRequest int64 = 4
)

// Priorities (ticket_priority.priority_id).
const (
	PriorityLow       int64 = 1
	PriorityNormal    int64 = 2
	PriorityHigh      int64 = 3
	PriorityEmergency int64 = 4
)

// Priorities lists every seeded priority.
var Priorities = []int64{PriorityLow, PriorityNormal, PriorityHigh, PriorityEmergency}

// Sources (ticket_source.id), as Faveo numbers them.
const (
	SourceWeb      int64 = 1
	SourceEmail    int64 = 2
	SourceAgent    int64 = 3
	SourceFacebook int64 = 4
	SourceTwitter  int64 = 5
	SourceCall     int64 = 6
	SourceChat     int64 = 7
)

// Status types (ticket_status_type.id; Faveo's names, spelling included).
const (
	StatusTypeOpen       int64 = 1 // "open"
	StatusTypeClosed     int64 = 2 // "closed"
	StatusTypeArchieved  int64 = 3 // "archieved" (sic)
	StatusTypeDeleted    int64 = 4 // "deleted"
	StatusTypeApproval   int64 = 5 // "approval"
	StatusTypeSpam       int64 = 6 // "spam"
	StatusTypeUnapproved int64 = 7 // "unapproved"
	StatusTypeMerged     int64 = 8 // "merged"
)

// Statuses (ticket_status.id) and, in the comment, their purpose_of_status.
const (
	StatusOpen           int64 = 1 // open; Faveo's default for new tickets
	StatusResolved       int64 = 2 // closed
	StatusClosed         int64 = 3 // closed
	StatusDeleted        int64 = 4 // deleted
	StatusRequestToClose int64 = 5 // approval ("Request for close")
	StatusSpam           int64 = 6 // spam
	StatusUnapproved     int64 = 7 // unapproved
	StatusMerged         int64 = 8 // merged
	StatusOnHold         int64 = 9 // open, halts the SLA; an admin-made status as in Faveo's docs
)

// StatusIDs maps each seeded status's name to its id.
var StatusIDs = map[string]int64{
	"Open":              StatusOpen,
	"Resolved":          StatusResolved,
	"Closed":            StatusClosed,
	"Deleted":           StatusDeleted,
	"Request for close": StatusRequestToClose,
	"Spam":              StatusSpam,
	"Unapproved":        StatusUnapproved,
	"Merged":            StatusMerged,
	"On hold":           StatusOnHold,
}

// StatusPurpose maps each seeded status to its status type.
var StatusPurpose = map[int64]int64{
	StatusOpen:           StatusTypeOpen,
	StatusResolved:       StatusTypeClosed,
	StatusClosed:         StatusTypeClosed,
	StatusDeleted:        StatusTypeDeleted,
	StatusRequestToClose: StatusTypeApproval,
	StatusSpam:           StatusTypeSpam,
	StatusUnapproved:     StatusTypeUnapproved,
	StatusMerged:         StatusTypeMerged,
	StatusOnHold:         StatusTypeOpen,
}
