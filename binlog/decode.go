package binlog

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/deskhook/deskhook/change"
)

// The memory a decoded batch holds, as the Go allocator hands it out: the
// events its values share, each row's struct and value array, the batch's
// change array and the batch itself. queue_bytes bounds the sum.
var (
	sizeofValue   = int(unsafe.Sizeof(change.Value{}))
	sizeofRow     = change.HeapBytes(int(unsafe.Sizeof(change.Row{})))
	sizeofChange  = int(unsafe.Sizeof(change.Change{}))
	batchOverhead = change.HeapBytes(int(unsafe.Sizeof(change.Batch{}))) + 16 + 64
)

// firstChanges is the initial capacity of a batch's change array.
const firstChanges = 8

// beginPlan says what to do with a transaction that is starting.
type beginPlan struct {
	skipChanges int // its first skipChanges changes were handed over already
	seq         int // Seq of its first chunk handed over from now on
}

// decoded is one batch ready to hand over.
type decoded struct {
	batch *change.Batch
	bytes int // estimated memory
}

// decoder turns binlog events into batches. It is used by one goroutine
// (go-mysql's, which calls it for each event as it reads it).
type decoder struct {
	log        *slog.Logger
	tables     *tableCache
	loc        *time.Location
	maxChanges int
	maxBytes   int
	progress   time.Duration
	now        func() time.Time
	// g is where the stream stands: every transaction up to it is done
	// (handed over whole, or had nothing to hand over).
	g *gtids
	// emit hands a batch over; it may block (a full queue) and fails when
	// the reader stops.
	emit func(decoded) error
	// onBegin plans a transaction as it begins (resuming one handed over
	// in part before a reconnect).
	onBegin func(pos change.Position) (beginPlan, error)
	// lastHanded is when a batch was last handed over (progress batches
	// follow ProgressInterval after it), handedPos its position.
	lastHanded time.Time
	handedPos  change.Position

	// The group (transaction) being read.
	inGroup    bool
	began      bool // a transaction (not a standalone statement)
	txn        transaction
	commitTime time.Time
	plan       beginPlan
	seq        int
	cur        []change.Change
	curBytes   int
	full       bool
	// watchedRows says the group has changed a watched table: an XA
	// transaction that does is refused.
	watchedRows bool

	// Where the transactions are in the server's files (anchor.go): the
	// binlog file being read (from rotate events), where the group being
	// read starts, and the anchor of the last transaction done.
	file       string
	server     string // the server's identity (serverInfo.identity)
	txnAnchor  string
	doneAnchor string
}

// reset drops a half-read group: the connection it came on is gone and
// the server sends it again.
func (d *decoder) reset() {
	d.inGroup, d.began, d.cur, d.curBytes, d.full, d.watchedRows = false, false, nil, 0, false, false
}

// decodeRows is go-mysql's rows event decoder, skipping the rows of tables
// deskhook does not read (their values are never decoded), and turning a
// panic on a malformed event into an error.
func (d *decoder) decodeRows(re *replication.RowsEvent, data []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed rows event: %v", r)
		}
	}()
	pos, err := re.DecodeHeader(data)
	if err != nil {
		return err
	}
	if re.Table == nil || !d.tables.watches(re.Table.Schema, re.Table.Table) {
		return nil
	}
	// MySQL's binary JSON is decoded by the reader (json.go): go-mysql
	// reads it as the BLOB it is framed as.
	if tm := re.Table; bytes.IndexByte(tm.ColumnType, mysql.MYSQL_TYPE_JSON) >= 0 {
		cp := *tm
		cp.ColumnType = bytes.ReplaceAll(tm.ColumnType, []byte{mysql.MYSQL_TYPE_JSON}, []byte{mysql.MYSQL_TYPE_BLOB})
		re.Table = &cp
		defer func() { re.Table = tm }()
	}
	return re.DecodeData(pos, data)
}

// event handles one binlog event.
func (d *decoder) event(e *replication.BinlogEvent) error {
	switch ev := e.Event.(type) {
	case *replication.RotateEvent:
		d.file = string(ev.NextLogName)
		return nil
	case *replication.MariadbGTIDEvent:
		t, err := d.g.mariaDBGTID(ev.GTID)
		if err != nil {
			return err
		}
		if err := d.begin(t, !ev.IsStandalone()); err != nil {
			return err
		}
		d.txnAnchor = anchorAt(d.file, e.Header, t.gtid, d.server)
		return nil
	case *replication.GTIDEvent:
		t, err := d.g.mySQLGTID(ev.SID, ev.GNO)
		if err != nil {
			return err
		}
		if err := d.begin(t, false); err != nil {
			return err
		}
		d.txnAnchor = anchorAt(d.file, e.Header, t.gtid, d.server)
		if ev.ImmediateCommitTimestamp > 0 {
			d.commitTime = time.UnixMicro(int64(ev.ImmediateCommitTimestamp)).UTC()
		}
		return nil
	case *replication.GtidTaggedLogEvent:
		// MySQL 8.3's tagged GTIDs (uuid:tag:N): not read yet. Stopping
		// loudly is better than passing over a transaction unseen.
		return &protocolError{err: fmt.Errorf("the binlog holds a tagged GTID (MySQL 8.3 and later, gtid_next " +
			"'AUTOMATIC:tag'), which deskhook does not read; run the helpdesk's transactions without a tag")}
	case *replication.TransactionPayloadEvent:
		// MySQL's binlog_transaction_compression: go-mysql parses the
		// compressed events with a parser of its own, without the
		// helpdesk's time zone or deskhook's row decoding, so their values
		// would differ from the same rows read plain. Refused, loudly.
		return &protocolError{err: errors.New("the binlog holds a compressed transaction " +
			"(binlog_transaction_compression = ON), which deskhook does not read: set binlog_transaction_compression = OFF " +
			"under [mysqld] in my.cnf")}
	case *replication.QueryEvent:
		return d.query(e.Header, ev)
	case *replication.XIDEvent:
		return d.commit(e.Header)
	case *replication.RowsEvent:
		return d.rows(e, ev)
	case *replication.GenericEvent:
		if t := e.Header.EventType; t == replication.HEARTBEAT_EVENT || t == replication.HEARTBEAT_LOG_EVENT_V2 {
			return d.idle()
		}
		if e.Header.EventType == replication.XA_PREPARE_LOG_EVENT && d.inGroup {
			if d.watchedRows {
				return &protocolError{err: fmt.Errorf("transaction %s is an XA transaction changing a table deskhook "+
					"reads; deskhook does not read XA transactions", d.txn.gtid)}
			}
			return d.end(nil)
		}
	}
	// Rotate, format description, GTID lists, checkpoints, heartbeats,
	// table maps (go-mysql keeps them for the rows events), annotations.
	return nil
}

// begin starts a group.
func (d *decoder) begin(t transaction, transactional bool) error {
	if d.inGroup {
		return &protocolError{err: fmt.Errorf("GTID %s begins while %s is open", t.gtid, d.txn.gtid)}
	}
	if done := d.g.pos(); done > 0 && t.pos <= done {
		return &protocolError{err: fmt.Errorf("transaction %s arrived after %s: the server's GTID sequence went "+
			"backwards (RESET MASTER, a restored or another server?); deskhook cannot order it", t.gtid, d.g.token())}
	}
	plan, err := d.onBegin(t.pos)
	if err != nil {
		return err
	}
	d.inGroup, d.began, d.txn, d.plan, d.seq = true, transactional, t, plan, plan.seq
	d.cur, d.curBytes, d.full, d.watchedRows, d.commitTime = nil, 0, false, false, time.Time{}
	return nil
}

// query handles a query event: BEGIN, COMMIT, ROLLBACK, XA and DDL.
func (d *decoder) query(h *replication.EventHeader, q *replication.QueryEvent) error {
	stmt := bytes.TrimSpace(q.Query)
	switch {
	case !d.inGroup:
		return nil // a statement outside any GTID group (none on a GTID server)
	case bytes.EqualFold(stmt, []byte("BEGIN")):
		d.began = true
		return nil
	case bytes.EqualFold(stmt, []byte("COMMIT")):
		return d.commit(h)
	case bytes.EqualFold(stmt, []byte("ROLLBACK")):
		// Only logged when changes to non-transactional tables could not
		// be undone: those rows did change.
		return d.commit(h)
	case hasPrefixFold(stmt, "XA COMMIT"), hasPrefixFold(stmt, "XA ROLLBACK"):
		// The second half of an XA transaction: its own GTID group, with
		// no XID event to end it (the prepared half ended at its XA
		// PREPARE event). With rows (XA COMMIT ... ONE PHASE) it is an XA
		// transaction like the prepared kind: refused when it changes a
		// table deskhook reads.
		if d.watchedRows {
			return &protocolError{err: fmt.Errorf("transaction %s is an XA transaction changing a table deskhook "+
				"reads; deskhook does not read XA transactions", d.txn.gtid)}
		}
		return d.end(nil)
	case hasPrefixFold(stmt, "XA "):
		return nil // XA START / END; XA PREPARE is its own event
	}
	// DDL (or another statement logged as such): standalone unless inside
	// a transaction.
	if t := d.ddlTable(q); t != "" {
		d.log.Warn("DDL on a table deskhook reads; its next rows are read with the columns the server logs then",
			"table", d.tables.db+"."+t, "gtid", d.txn.gtid, "statement", excerpt(stmt))
		d.tables.changed(t)
		if truncateRE.Match(stmt) {
			if err := d.add(0, change.Change{Op: change.Truncate, Table: d.tables.last(t)}); err != nil {
				return err
			}
		}
	}
	if d.began {
		return nil
	}
	return d.commit(h)
}

var truncateRE = regexp.MustCompile(`(?i)^truncate\s`)

// ddlTable returns the watched table a statement names, if any: a word
// equal to a watched name, in the watched database (the statement's
// default database, or qualified with it).
func (d *decoder) ddlTable(q *replication.QueryEvent) string {
	words := strings.FieldsFunc(strings.ToLower(string(q.Query)), func(r rune) bool {
		return !(r == '_' || r == '$' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 0x80 || r == '.' || r == '`')
	})
	db := strings.ToLower(d.tables.db)
	inDB := strings.EqualFold(string(q.Schema), d.tables.db)
	for _, w := range words {
		w = strings.ReplaceAll(w, "`", "")
		schema, name, qualified := strings.Cut(w, ".")
		if !qualified {
			name = schema
		}
		for t := range d.tables.watched {
			if strings.ToLower(t) == name && (qualified && schema == db || !qualified && inDB) {
				return t
			}
		}
	}
	return ""
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

func excerpt(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// rows decodes a rows event of a watched table.
func (d *decoder) rows(e *replication.BinlogEvent, re *replication.RowsEvent) error {
	if !d.inGroup || re.Table == nil || !d.tables.watches(re.Table.Schema, re.Table.Table) {
		return nil
	}
	d.watchedRows = true
	t, err := d.tables.get(re.Table)
	if err != nil {
		return err
	}
	var op change.Op
	step := 1
	switch re.Type() {
	case replication.EnumRowsEventTypeInsert:
		op = change.Insert
	case replication.EnumRowsEventTypeDelete:
		op = change.Delete
	case replication.EnumRowsEventTypeUpdate:
		op, step = change.Update, 2
	default:
		return &protocolError{err: fmt.Errorf("rows event of type %s", e.Header.EventType)}
	}
	if len(re.Rows)%step != 0 {
		return &protocolError{err: fmt.Errorf("update event of %s with %d row images", t.table.Name, len(re.Rows))}
	}
	// The event's bytes (its values share them) count with its first row.
	eventBytes := change.HeapBytes(len(e.RawData))
	n := len(t.cols)
	for i := 0; i < len(re.Rows); i += step {
		c := change.Change{Op: op, Table: t.table}
		var bytes int
		if op == change.Update {
			rows := new([2]change.Row)
			vals := make([]change.Value, 2*n)
			c.Old, c.New = &rows[0], &rows[1]
			*c.Old = change.Row{Table: t.table, Values: vals[:n:n]}
			*c.New = change.Row{Table: t.table, Values: vals[n:]}
			bytes = change.HeapBytes(2*int(unsafe.Sizeof(change.Row{}))) + change.HeapBytes(2*n*sizeofValue)
			if err := d.image(t, re, i, c.Old.Values); err != nil {
				return err
			}
			if err := d.image(t, re, i+1, c.New.Values); err != nil {
				return err
			}
		} else {
			r := &change.Row{Table: t.table, Values: make([]change.Value, n)}
			if op == change.Insert {
				c.New = r
			} else {
				c.Old = r
			}
			bytes = sizeofRow + change.HeapBytes(n*sizeofValue)
			if err := d.image(t, re, i, r.Values); err != nil {
				return err
			}
		}
		if err := d.add(bytes+eventBytes, c); err != nil {
			return err
		}
		eventBytes = 0
	}
	return nil
}

// image decodes row image i of a rows event into vals. A column the image
// leaves out (binlog_row_image other than FULL) is KindUnchanged.
func (d *decoder) image(t *table, re *replication.RowsEvent, i int, vals []change.Value) error {
	row := re.Rows[i]
	if len(row) != len(t.cols) {
		return &protocolError{err: fmt.Errorf("%s: row image has %d columns, the table map %d", t.table.Name, len(row), len(t.cols))}
	}
	for j := range vals {
		v, err := t.cols[j].value(row[j], d.loc)
		if err != nil {
			return &protocolError{err: fmt.Errorf("%s.%s: %w", t.table.Schema, t.table.Name, err)}
		}
		vals[j] = v
	}
	if i < len(re.SkippedColumns) {
		for _, j := range re.SkippedColumns[i] {
			if j < len(vals) {
				vals[j] = change.Value{Kind: change.KindUnchanged}
			}
		}
		if len(re.SkippedColumns[i]) > 0 {
			d.log.Error("a row image lacks columns: the server logs binlog_row_image other than FULL; set "+
				"`binlog_row_image = FULL` under [mysqld] in my.cnf", "table", t.table.Schema+"."+t.table.Name,
				"gtid", d.txn.gtid)
		}
	}
	return nil
}

// add appends a change to the group, handing over the chunk before it
// when that one is full. Changes of a transaction being resumed after a
// reconnect are dropped until the ones handed over before are passed.
func (d *decoder) add(size int, c change.Change) error {
	if d.plan.skipChanges > 0 {
		d.plan.skipChanges--
		return nil
	}
	if d.full {
		if err := d.hand(false); err != nil {
			return err
		}
	}
	if d.cur == nil {
		d.cur = make([]change.Change, 0, min(d.maxChanges, firstChanges))
	}
	d.cur = append(d.cur, c)
	d.curBytes += size
	if len(d.cur) >= d.maxChanges || d.curBytes >= d.maxBytes {
		d.full = true
	}
	return nil
}

// hand hands over the changes gathered as a batch.
func (d *decoder) hand(last bool) error {
	b := &change.Batch{Pos: d.txn.pos, CommitTime: d.commitTime, Seq: d.seq, Last: last, Changes: d.cur}
	if last {
		b.Resume, b.Anchor = d.g.token(), d.doneAnchor
	}
	out := decoded{batch: b, bytes: d.curBytes + change.HeapBytes(cap(d.cur)*sizeofChange) + batchOverhead}
	d.seq++
	d.cur, d.curBytes, d.full = nil, 0, false
	d.lastHanded, d.handedPos = d.now(), b.Pos
	return d.emit(out)
}

// commit ends the group: its last batch is handed over, or, when it had
// nothing to hand over, a progress batch if none was handed for
// ProgressInterval.
func (d *decoder) commit(h *replication.EventHeader) error {
	if !d.inGroup {
		return nil
	}
	if d.commitTime.IsZero() {
		d.commitTime = time.Unix(int64(h.Timestamp), 0).UTC()
	}
	return d.end(nil)
}

// end closes the group.
func (d *decoder) end(error) error {
	d.inGroup = false
	if d.plan.skipChanges > 0 {
		return &protocolError{err: fmt.Errorf("transaction %s arrived again with fewer changes than were handed over before", d.txn.gtid)}
	}
	d.g.done(d.txn)
	d.doneAnchor = d.txnAnchor
	if d.seq > 0 || len(d.cur) > 0 {
		return d.hand(true)
	}
	if d.progress > 0 && d.now().Sub(d.lastHanded) >= d.progress {
		return d.hand(true) // no changes: the position only
	}
	return nil
}

// idle is told of a heartbeat (the server had nothing to send): when the
// last transactions done were ones deskhook does not read, it hands over a
// progress batch once ProgressInterval has passed, so the stored position
// catches up with the binlog even when nothing follows them (left behind,
// in a binlog file the server may purge, it would be lost though nothing
// after it matters).
func (d *decoder) idle() error {
	if d.inGroup || d.progress <= 0 || d.txn.pos == 0 || d.txn.pos <= d.handedPos ||
		d.now().Sub(d.lastHanded) < d.progress {
		return nil
	}
	d.seq = 0
	return d.hand(true)
}

var errStopped = errors.New("binlog: reader stopped")
