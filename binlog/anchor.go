package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"
)

// A resume token names a transaction by its GTID, and GTIDs start again
// when a server is reset (RESET MASTER) or rebuilt: once the new history
// has gone past the stored sequence number, the token alone cannot tell
// the two apart, and streaming from it would skip the new transactions up
// to it without a word. An anchor pins the token to the server's files:
// the binlog file and offset where the stored transaction's GTID event
// starts, that GTID, and the server it was read from (MariaDB's server_id,
// MySQL's server_uuid). Before streaming from the same server, the event
// at that place must be that GTID's; if the file is gone because the
// server purged it, the retention check decides as before. Another server
// (a replica promoted after a failover) has files and offsets of its own:
// there the GTIDs alone say where to read on, as before anchors.
//
// The daemon stores the anchor inside the resume token it keeps
// (WithAnchor), so the outbox needs no field of its own; Run and
// CheckRetention take either form.

// anchorSep joins a token and its anchor: "0-1-33 at binlog.000002:4567 0-1-33 id1".
const anchorSep = " at "

// WithAnchor returns the token to store for a batch: its Resume, pinned by
// its Anchor when it has one.
func WithAnchor(resume, anchor string) string {
	if resume == "" || anchor == "" {
		return resume
	}
	return resume + anchorSep + anchor
}

// TokenGTID is the GTID (set) part of a stored token, for people to read.
func TokenGTID(token string) string {
	gtid, _ := splitToken(token)
	return gtid
}

func splitToken(token string) (gtid, anchor string) {
	gtid, anchor, _ = strings.Cut(token, anchorSep)
	return gtid, anchor
}

// anchorAt is the anchor of the transaction whose GTID event h heads, in
// file, on server: "" when the stream does not say where it is.
func anchorAt(file string, h *replication.EventHeader, gtid, server string) string {
	if file == "" || server == "" || h == nil || h.LogPos == 0 || h.LogPos < h.EventSize {
		return ""
	}
	return fmt.Sprintf("%s:%d %s %s", file, h.LogPos-h.EventSize, gtid, server)
}

// identity names the server in anchors: what tells it from its replicas.
func (s serverInfo) identity() string {
	if s.mariadb {
		return "id" + strconv.FormatUint(uint64(s.serverID), 10)
	}
	return s.serverUUID
}

type anchor struct {
	file   string
	pos    uint64
	gtid   string
	server string
	valid  bool
}

func parseAnchor(s string) anchor {
	f := strings.Split(s, " ")
	if len(f) != 3 || f[1] == "" || f[2] == "" {
		return anchor{}
	}
	i := strings.LastIndexByte(f[0], ':')
	if i <= 0 {
		return anchor{}
	}
	pos, err := strconv.ParseUint(f[0][i+1:], 10, 64)
	if err != nil {
		return anchor{}
	}
	return anchor{file: f[0][:i], pos: pos, gtid: f[1], server: f[2], valid: true}
}

// gtidInfoRE finds the GTID in SHOW BINLOG EVENTS' Info of a GTID event:
// MariaDB's "BEGIN GTID 0-1-33" (or "GTID 0-1-33"), MySQL's
// "SET @@SESSION.GTID_NEXT= 'uuid:33'".
var gtidInfoRE = regexp.MustCompile(`GTID (\d+-\d+-\d+)|GTID_NEXT\s*=\s*'([^']+)'`)

// anchorMoved says why the server's binlogs no longer hold the stored
// transaction where it was read ("" when they do, or cannot say: no
// anchor, or the file was purged).
func anchorMoved(ctx context.Context, db *sql.DB, info serverInfo, files []binlogFile, a anchor) (string, error) {
	if !a.valid || len(files) == 0 || a.server != info.identity() {
		return "", nil
	}
	found := false
	for _, f := range files {
		found = found || f.name == a.file
	}
	if !found {
		if newest := files[len(files)-1].name; laterFile(a.file, newest) {
			return fmt.Sprintf("the transaction %s was read from %s, but the server's binlogs end at %s: "+
				"the server was rebuilt or reset", a.gtid, a.file, newest), nil
		}
		return "", nil // purged, or another naming: the retention check decides
	}
	there, err := eventInfoAt(ctx, db, a.file, a.pos)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == errWrongOffset {
		return fmt.Sprintf("the transaction %s was read at %s:%d, where the server's binlog has no event now: "+
			"the server was rebuilt or reset", a.gtid, a.file, a.pos), nil
	}
	if err != nil {
		return "", err
	}
	m := gtidInfoRE.FindStringSubmatch(there)
	if m == nil || (m[1] != a.gtid && !strings.EqualFold(m[2], a.gtid)) {
		if there == "" {
			there = "nothing"
		}
		return fmt.Sprintf("the transaction %s was read at %s:%d, where the server's binlog now holds %q: "+
			"the server was rebuilt or reset", a.gtid, a.file, a.pos, there), nil
	}
	return "", nil
}

// errWrongOffset is the server's answer to SHOW BINLOG EVENTS at an
// offset where no event starts (ER_ERROR_WHEN_EXECUTING_COMMAND, "Wrong
// offset or I/O error").
const errWrongOffset = 1220

// eventInfoAt is the Info column of the binlog event at file:pos ("" when
// there is none there: the end of the file).
func eventInfoAt(ctx context.Context, db *sql.DB, file string, pos uint64) (string, error) {
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SHOW BINLOG EVENTS IN %s FROM %d LIMIT 1", quoteString(file), pos))
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	info := ""
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dst := make([]any, len(cols))
		for i := range vals {
			dst[i] = &vals[i]
		}
		if err := rows.Scan(dst...); err != nil {
			return "", err
		}
		if len(vals) >= 6 {
			info = vals[5].String
		}
	}
	return info, rows.Err()
}

// laterFile says whether binlog file a comes after b in the server's
// numbering (name.000123): only for names that differ in their number.
func laterFile(a, b string) bool {
	ai, bi := strings.LastIndexByte(a, '.'), strings.LastIndexByte(b, '.')
	if ai < 0 || bi < 0 || a[:ai] != b[:bi] {
		return false
	}
	an, err1 := strconv.ParseUint(a[ai+1:], 10, 64)
	bn, err2 := strconv.ParseUint(b[bi+1:], 10, 64)
	return err1 == nil && err2 == nil && an > bn
}
