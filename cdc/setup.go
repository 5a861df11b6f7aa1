package cdc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/deskhook/deskhook/change"
)

// connect opens an ordinary (non-replication) connection.
func connect(ctx context.Context, cfg Config) (*pgx.Conn, error) {
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, invalidDSN(cfg.DSN, err)
	}
	if pc.RuntimeParams["application_name"] == "" {
		pc.RuntimeParams["application_name"] = "deskhook"
	}
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, describeConnect(err)
	}
	return conn, nil
}

// setupComment marks a publication as made by Setup; the JSON after it
// records what Teardown must undo beyond dropping it.
const setupComment = "deskhook setup "

type setupRecord struct {
	// RestoreIdentity is set when Setup changed a table's replica
	// identity to FULL: what it was before.
	RestoreIdentity *identityRecord `json:"restore_replica_identity,omitempty"`
}

type identityRecord struct {
	Table string `json:"table"`           // quoted schema.table
	Was   string `json:"was"`             // pg_class.relreplident: d, n or i
	Index string `json:"index,omitempty"` // the identity index's name, when Was is i
}

func parseSetupComment(c string) (setupRecord, bool) {
	var rec setupRecord
	if !strings.HasPrefix(c, setupComment) {
		return rec, false
	}
	_ = json.Unmarshal([]byte(strings.TrimPrefix(c, setupComment)), &rec)
	return rec, true
}

func (r setupRecord) comment() string {
	b, _ := json.Marshal(r)
	return setupComment + string(b)
}

func identityName(relreplident string) string {
	switch relreplident {
	case "d":
		return "DEFAULT"
	case "n":
		return "NOTHING"
	case "f":
		return "FULL"
	case "i":
		return "USING INDEX"
	}
	return relreplident
}

// publicationTables compares the publication with the configured tables:
// the quoted names of those it lacks, and the schema.table names it has
// beyond them.
func publicationTables(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, cfg Config) (missing, extra []string, err error) {
	rows, err := q.Query(ctx, `SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1`,
		cfg.Publication)
	if err != nil {
		return nil, nil, err
	}
	has := map[string]bool{}
	for rows.Next() {
		var s, t string
		if err := rows.Scan(&s, &t); err != nil {
			return nil, nil, err
		}
		has[s+"\x00"+t] = true
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	want := map[string]bool{}
	for _, t := range cfg.Tables.List() {
		k := cfg.Schema + "\x00" + t
		want[k] = true
		if !has[k] {
			missing = append(missing, cfg.qualified(t))
		}
	}
	for k := range has {
		if !want[k] {
			extra = append(extra, strings.Replace(k, "\x00", ".", 1))
		}
	}
	return missing, extra, nil
}

// SetupOptions say what Setup may do about the slot of a consumer whose
// store has streamed before.
type SetupOptions struct {
	// Mark returns what the consumer's store holds (nil: there is no
	// store, as for one that never streamed). Setup asks after reading the
	// slot, so a daemon confirming meanwhile is not taken for a gap.
	Mark func() (Mark, error)
	// AcceptGap lets Setup create a missing slot, re-create an invalidated
	// one or accept one that starts past the store (see GapError): the
	// changes in between are lost, and SetupResult.Gap says which, for the
	// caller to record in its store. Without it Setup refuses such a slot
	// with the GapError and changes nothing.
	AcceptGap bool
}

// SetupResult is what Setup did.
type SetupResult struct {
	Done []string // one line each
	// Gap is the gap accepted, if any: changes committed after From and
	// before To (where the slot now starts) are lost.
	Gap *Gap
}

// Gap is a gap Setup accepted.
type Gap struct {
	Reason   GapReason
	From, To change.Position
	Source   string // the database streamed from now on (sourceID)
}

// Setup makes the database ready for a consumer that has no store yet:
// SetupWith with no store.
func Setup(ctx context.Context, cfg Config) ([]string, error) {
	res, err := SetupWith(ctx, cfg, SetupOptions{})
	return res.Done, err
}

// SetupWith makes the database ready for the Reader: the publication over
// the configured tables, REPLICA IDENTITY FULL on tickets (old values make
// diffs exact) and the pgoutput slot. It is idempotent: it creates or adds
// only what is missing, and says what it did (nothing on a second run).
// The publication's comment records that Setup made it and what the
// tickets replica identity was, so Teardown undoes exactly that.
//
// It reads everything first and changes nothing when it cannot finish: a
// privilege the role lacks (all of them named at once), a slot that does
// not fit the store (unless opts.AcceptGap), no free replication slot. The
// publication and replica identity change in one transaction; the slot is
// created after it (a slot older than its publication cannot decode what
// was committed in between), and should that fail, the transaction's
// changes are taken back.
func SetupWith(ctx context.Context, cfg Config, opts SetupOptions) (SetupResult, error) {
	var res SetupResult
	cfg.SetDefaults()
	if err := cfg.Validate(""); err != nil {
		return res, fmt.Errorf("cdc: invalid config: %w", err)
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.Background())
	f, err := readFacts(ctx, conn, cfg)
	if err != nil {
		return res, fmt.Errorf("cdc: setup: %w", err)
	}
	if f.walLevel != "logical" {
		return res, &objectError{kind: ErrWALLevel, msg: fmt.Sprintf("cdc: setup: wal_level is %q; set it to "+
			"logical (ALTER SYSTEM SET wal_level = logical;) and restart PostgreSQL, then run setup again", f.walLevel)}
	}
	if len(f.missingTables) > 0 {
		return res, fmt.Errorf("cdc: setup: table(s) %s not found; check source.schema and source.tables",
			strings.Join(f.missingTables, ", "))
	}
	pub := quoteIdent(cfg.Publication)
	if f.pub.exists && !f.pub.ours {
		return res, fmt.Errorf("cdc: setup: publication %s exists and was not made by deskhook setup; choose another "+
			"source.publication, or drop it (DROP PUBLICATION %s;) and run setup again", pub, pub)
	}
	var need needs
	steps := planPublication(cfg, f, &need)
	sp, gap, err := planSlot(cfg, f, opts, &need)
	if err != nil {
		return res, err
	}
	if err := need.err("setup", f.user); err != nil {
		return res, err
	}

	if err := runSteps(ctx, conn, steps); err != nil {
		return res, fmt.Errorf("cdc: setup: %w; nothing was changed", err)
	}
	res.Done = append(res.Done, said(steps)...)
	at, did, err := sp.run(ctx, conn, cfg)
	res.Done = append(res.Done, did...)
	if err != nil {
		if uerr := undoSteps(ctx, conn, steps); uerr != nil {
			return res, fmt.Errorf("cdc: setup: %w; taking back the publication changes failed too: %v", err, uerr)
		}
		if len(steps) > 0 {
			res.Done = append(res.Done, "took back the publication changes")
		}
		return res, fmt.Errorf("cdc: setup: %w", err)
	}
	if gap != nil {
		gap.To = f.slot.confirmed
		if sp.create {
			gap.To = at
		}
		res.Gap = gap
	}
	return res, nil
}

// step is one statement of Setup or Teardown, with what it did in words
// and, for Setup's publication steps, the statement that takes it back.
type step struct {
	sql, did, undo string
}

// needs collects the privileges the role lacks for what is planned; the
// tables it would have to own are named together.
type needs struct {
	what   []string
	why    map[string][]string
	tables []string
}

func (n *needs) need(ok bool, what, why string) {
	if ok {
		return
	}
	if n.why == nil {
		n.why = map[string][]string{}
	}
	if _, seen := n.why[what]; !seen {
		n.what = append(n.what, what)
	}
	if !slices.Contains(n.why[what], why) {
		n.why[what] = append(n.why[what], why)
	}
}

// own needs the ownership of tables (quoted names) not owned.
func (n *needs) own(tables []string, owned func(string) bool, why string) {
	var not []string
	for _, t := range tables {
		if !owned(t) {
			not = append(not, t)
			if !slices.Contains(n.tables, t) {
				n.tables = append(n.tables, t)
			}
		}
	}
	n.need(len(not) == 0, "ownership of tables", why)
}

func (n *needs) err(op, user string) error {
	if len(n.what) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cdc: %s: role %s lacks what %s needs, so nothing was changed: it needs ", op, quoteIdent(user), op)
	for i, w := range n.what {
		if i > 0 {
			b.WriteString("; ")
		}
		what := w
		if w == "ownership of tables" {
			what = "ownership of " + strings.Join(n.tables, ", ")
		}
		fmt.Fprintf(&b, "%s (%s)", what, strings.Join(n.why[w], ", "))
	}
	fmt.Fprintf(&b, ". Run %s as a role that has them (the tables' owner, or a superuser), or have a DBA run "+
		"what `deskhook setup --print-sql` prints", op)
	return errors.New(b.String())
}

// planPublication plans the publication and replica identity steps.
func planPublication(cfg Config, f *dbFacts, need *needs) []step {
	pub := quoteIdent(cfg.Publication)
	rec := f.pub.recorded
	var steps []step
	owns := func(tables []string, why string) {
		need.own(tables, func(t string) bool { return f.super || f.owns[t] }, why)
	}
	if !f.pub.exists {
		names := make([]string, 0, 9)
		for _, t := range cfg.Tables.List() {
			names = append(names, cfg.qualified(t))
		}
		steps = append(steps, step{sql: "CREATE PUBLICATION " + pub + " FOR TABLE " + strings.Join(names, ", "),
			did:  fmt.Sprintf("created publication %s for %d tables", cfg.Publication, len(names)),
			undo: "DROP PUBLICATION " + pub})
		need.need(f.super || f.createOnDB, "CREATE on database "+quoteIdent(f.db), "to create publication "+pub)
		owns(names, "to publish them")
	} else {
		if m := f.pub.missing; len(m) > 0 {
			steps = append(steps, step{sql: "ALTER PUBLICATION " + pub + " ADD TABLE " + strings.Join(m, ", "),
				did:  fmt.Sprintf("added %s to publication %s", strings.Join(m, ", "), cfg.Publication),
				undo: "ALTER PUBLICATION " + pub + " DROP TABLE " + strings.Join(m, ", ")})
			need.need(f.super || f.pub.owned, "ownership of publication "+pub, "to change it")
			owns(m, "to publish them")
		}
		if p := f.pub; !p.ins || !p.upd || !p.del || !p.trunc {
			steps = append(steps, step{sql: "ALTER PUBLICATION " + pub + " SET (publish = 'insert, update, delete, truncate')",
				did:  fmt.Sprintf("set publication %s to publish insert, update, delete, truncate", cfg.Publication),
				undo: "ALTER PUBLICATION " + pub + " SET (publish = " + quoteLiteral(p.publish) + ")"})
			need.need(f.super || f.pub.owned, "ownership of publication "+pub, "to change it")
		}
	}
	if t := f.tickets; t.ident != "f" {
		was := identityName(t.ident)
		if t.ident == "i" {
			was += " " + quoteIdent(t.index)
		}
		steps = append(steps, step{sql: "ALTER TABLE " + t.table + " REPLICA IDENTITY FULL",
			did:  fmt.Sprintf("set REPLICA IDENTITY FULL on %s (was %s)", t.name, identityName(t.ident)),
			undo: "ALTER TABLE " + t.table + " REPLICA IDENTITY " + was})
		owns([]string{t.table}, "to set REPLICA IDENTITY FULL")
		if rec.RestoreIdentity == nil {
			rec.RestoreIdentity = &identityRecord{Table: t.table, Was: t.ident, Index: t.index}
		}
	}
	if c := rec.comment(); !f.pub.exists || c != f.pub.comment {
		undo := ""
		if f.pub.exists {
			old := "NULL"
			if !f.pub.commentNull {
				old = quoteLiteral(f.pub.comment)
			}
			undo = "COMMENT ON PUBLICATION " + pub + " IS " + old
			need.need(f.super || f.pub.owned, "ownership of publication "+pub, "to change it")
		}
		steps = append(steps, step{sql: "COMMENT ON PUBLICATION " + pub + " IS " + quoteLiteral(c), undo: undo})
	}
	return steps
}

// slotPlan is what Setup does to the slot.
type slotPlan struct{ drop, create bool }

// planSlot decides what to do with the slot, given the store's record:
// create it for a store that never streamed; otherwise only when the gap
// is accepted (see SetupOptions). It returns the gap to be accepted.
func planSlot(cfg Config, f *dbFacts, opts SetupOptions, need *needs) (slotPlan, *Gap, error) {
	var p slotPlan
	s, slot := f.slot, quoteIdent(cfg.Slot)
	if s.exists && (s.plugin != "pgoutput" || s.typ != "logical" || s.database != f.db) {
		return p, nil, &objectError{kind: ErrSlotInvalid, msg: fmt.Sprintf("cdc: setup: replication slot %s exists "+
			"as a %s slot with plugin %q in database %q; pick another source.slot, or drop it "+
			"(SELECT pg_drop_replication_slot(%s);) and run setup again",
			slot, s.typ, s.plugin, s.database, quoteLiteral(cfg.Slot))}
	}
	var mark Mark
	if opts.Mark != nil {
		var err error
		if mark, err = opts.Mark(); err != nil {
			return p, nil, fmt.Errorf("cdc: setup: reading the store: %w", err)
		}
	}
	view := slotView{exists: s.exists, confirmed: s.confirmed, walStatus: s.walStatus, source: f.source}
	var gap *Gap
	switch g := judgeSlot(cfg.Slot, mark, view); {
	case g != nil && !opts.AcceptGap:
		return p, nil, g
	case g != nil:
		gap = &Gap{Reason: g.Reason, From: g.From, Source: f.source}
	case s.exists && s.walStatus == "lost":
		// Nothing stored depends on it, but what the slot kept is gone.
		if !opts.AcceptGap {
			return p, nil, &objectError{kind: ErrSlotLost, msg: fmt.Sprintf("cdc: setup: replication slot %s "+
				"was invalidated (wal_status lost): the changes committed since %s are lost. Run `deskhook "+
				"setup --accept-gap` to re-create it", slot, s.confirmed)}
		}
		gap = &Gap{Reason: GapSlotLost, From: s.confirmed, Source: f.source}
	}
	p.create = !s.exists || s.walStatus == "lost"
	p.drop = s.exists && s.walStatus == "lost"
	if gap != nil && gap.Reason == GapOtherSource {
		// The store skips what is at or before its position: the slot must
		// start past it.
		at := s.confirmed
		if p.create {
			at = f.currentLSN
		}
		if at <= mark.Stored {
			return p, nil, fmt.Errorf("cdc: setup: the store holds positions up to %s of database %s, and "+
				"replication slot %s in database %s starts at %s, not past it: the store would take this "+
				"database's changes for ones it has. Point store.path at a new file for this database",
				mark.Stored, mark.Source, slot, f.source, at)
		}
	}
	if p.drop && s.activePID != nil {
		return p, nil, fmt.Errorf("cdc: setup: replication slot %s is in use by process %d; stop the other "+
			"consumer first", slot, *s.activePID)
	}
	if p.create {
		need.need(f.super || f.replication, "REPLICATION", "to create replication slot "+slot)
		if !p.drop && f.usedSlots >= f.maxSlots {
			return p, nil, fmt.Errorf("cdc: setup: all %d replication slots of the server are taken "+
				"(max_replication_slots); raise it (a restart) or drop a slot nobody uses", f.maxSlots)
		}
	}
	return p, gap, nil
}

// run drops and creates the slot as planned; at is where a created slot
// starts.
func (p slotPlan) run(ctx context.Context, conn *pgx.Conn, cfg Config) (at change.Position, done []string, err error) {
	slot := quoteIdent(cfg.Slot)
	if p.drop {
		if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", cfg.Slot); err != nil {
			return 0, nil, fmt.Errorf("dropping the invalidated replication slot %s: %w", slot, err)
		}
		done = append(done, "dropped the invalidated replication slot "+cfg.Slot)
	}
	if !p.create {
		return 0, done, nil
	}
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
		cfg.Slot).Scan(&lsn); err != nil {
		return 0, done, fmt.Errorf("creating replication slot %s: %w", slot, err)
	}
	if l, err := pglogrepl.ParseLSN(lsn); err == nil {
		at = change.Position(l)
	}
	return at, append(done, fmt.Sprintf("created replication slot %s (pgoutput) at %s", cfg.Slot, lsn)), nil
}

// said is what steps did, in words (a comment goes unsaid).
func said(steps []step) []string {
	var out []string
	for _, st := range steps {
		if st.did != "" {
			out = append(out, st.did)
		}
	}
	return out
}

// runSteps runs steps in one transaction.
func runSteps(ctx context.Context, conn *pgx.Conn, steps []step) error {
	if len(steps) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, st := range steps {
			if _, err := tx.Exec(ctx, st.sql); err != nil {
				return fmt.Errorf("%s: %w", st.sql, err)
			}
		}
		return nil
	})
}

// undoSteps takes back steps that runSteps ran, in one transaction.
func undoSteps(ctx context.Context, conn *pgx.Conn, steps []step) error {
	var back []step
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].undo != "" {
			back = append(back, step{sql: steps[i].undo})
		}
		if strings.HasPrefix(steps[i].undo, "DROP PUBLICATION") {
			break // it takes everything after it along
		}
	}
	return runSteps(context.WithoutCancel(ctx), conn, back)
}

// Teardown removes what Setup made: the slot, the publication (only if
// Setup made it) and, if Setup changed it, the tickets replica identity
// back to what it was. It is idempotent and returns what it did. Like
// Setup, it reads first and changes nothing when it cannot finish: a
// privilege the role lacks, a slot a process is reading. The slot goes
// last, after the publication's transaction.
func Teardown(ctx context.Context, cfg Config) (done []string, err error) {
	cfg.SetDefaults()
	if err := cfg.Validate(""); err != nil {
		return nil, fmt.Errorf("cdc: invalid config: %w", err)
	}
	conn, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	f, err := readFacts(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("cdc: teardown: %w", err)
	}
	slot, pub := quoteIdent(cfg.Slot), quoteIdent(cfg.Publication)
	var need needs
	if f.slot.exists {
		if f.slot.activePID != nil {
			return nil, fmt.Errorf("cdc: teardown: replication slot %s is in use by process %d; stop deskhook "+
				"(or the other consumer) first", slot, *f.slot.activePID)
		}
		need.need(f.super || f.replication, "REPLICATION", "to drop replication slot "+slot)
	}
	var steps []step
	var notes []string
	switch {
	case !f.pub.exists:
	case !f.pub.ours:
		notes = append(notes, fmt.Sprintf("left publication %s in place: deskhook setup did not make it", cfg.Publication))
	default:
		if ri := f.pub.recorded.RestoreIdentity; ri != nil {
			st, owned, err := restoreIdentity(ctx, conn, ri)
			if err != nil {
				return nil, fmt.Errorf("cdc: teardown: %w", err)
			}
			if st != nil {
				steps = append(steps, *st)
				need.own([]string{ri.Table}, func(string) bool { return f.super || owned }, "to restore its replica identity")
			}
		}
		steps = append(steps, step{sql: "DROP PUBLICATION " + pub, did: "dropped publication " + cfg.Publication})
		need.need(f.super || f.pub.owned, "ownership of publication "+pub, "to drop it")
	}
	if err := need.err("teardown", f.user); err != nil {
		return nil, err
	}
	if err := runSteps(ctx, conn, steps); err != nil {
		return nil, fmt.Errorf("cdc: teardown: %w; nothing was changed", err)
	}
	done = said(steps)
	if f.slot.exists {
		if _, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", cfg.Slot); err != nil {
			return done, fmt.Errorf("cdc: teardown: dropping replication slot %s: %w", slot, err)
		}
		done = append(done, "dropped replication slot "+cfg.Slot)
	}
	return append(done, notes...), nil
}

// restoreIdentity plans putting a table's replica identity back, if it is
// still the FULL that Setup set (someone may have changed it since, or
// dropped the table or the index); owned says whether the role owns it.
func restoreIdentity(ctx context.Context, conn *pgx.Conn, ri *identityRecord) (st *step, owned bool, err error) {
	var ident string
	var indexExists bool
	err = conn.QueryRow(ctx, `SELECT c.relreplident::text, pg_has_role(c.relowner, 'USAGE'),
		EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		        WHERE i.indrelid = c.oid AND ic.relname = $2)
		FROM pg_class c WHERE c.oid = to_regclass($1)`, ri.Table, ri.Index).Scan(&ident, &owned, &indexExists)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && ident != "f") {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	to := "DEFAULT"
	switch {
	case ri.Was == "n":
		to = "NOTHING"
	case ri.Was == "i" && indexExists:
		to = "USING INDEX " + quoteIdent(ri.Index)
	}
	return &step{sql: "ALTER TABLE " + ri.Table + " REPLICA IDENTITY " + to,
		did: fmt.Sprintf("restored REPLICA IDENTITY %s on %s", to, ri.Table)}, owned, nil
}
