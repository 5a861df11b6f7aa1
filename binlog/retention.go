package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/deskhook/deskhook/change"
)

// Retention says how far a stored position stands from the oldest binlog
// the server still keeps: how much the server may purge before the
// position is lost. The binlog reader keeps no slot on the server, which
// purges binlogs by age (binlog_expire_logs_seconds) or on demand whatever
// deskhook has read; this is the warning before ErrPositionLost.
type Retention struct {
	// Stored is the resume token checked, StoredPos its position.
	Stored    string
	StoredPos change.Position
	// Oldest is the GTID (MySQL: GTID set) the oldest binlog starts after,
	// OldestPos its position, OldestFile its name.
	Oldest     string
	OldestPos  change.Position
	OldestFile string
	// Current is where the server's binlog ends (gtid_binlog_pos,
	// gtid_executed).
	Current string
	// Files counts the binlog files on the server; FilesBefore those the
	// server can purge without losing the stored position (wholly before
	// the one holding the next transaction), BytesBefore their size. At
	// FilesBefore 0, purging the oldest file loses the position.
	Files       int
	FilesBefore int
	BytesBefore int64
}

// CheckRetention reads the server's binlogs and reports the stored
// position's margin. A position no longer in them is an error matching
// ErrPositionLost (a *PositionLostError).
func CheckRetention(ctx context.Context, cfg Config, resume string) (Retention, error) {
	cfg.SetDefaults()
	db, _, err := openSQL(cfg.DSN)
	if err != nil {
		return Retention{}, err
	}
	defer db.Close()
	info, err := readServerInfo(ctx, db)
	if err != nil {
		return Retention{}, fmt.Errorf("binlog: reading the server's settings: %w", err)
	}
	return checkPosition(ctx, db, info, resume)
}

// checkPosition is CheckRetention on an open pool.
func checkPosition(ctx context.Context, db *sql.DB, info serverInfo, token string) (Retention, error) {
	resume, anchored := splitToken(token)
	r := Retention{Stored: resume, Current: info.current}
	if info.logBin != "ON" && info.logBin != "1" {
		return r, info.requirementsError()
	}
	source := info.serverUUID
	stored, err := seqOf(info.mariadb, resume, source)
	if err != nil {
		return r, fmt.Errorf("binlog: the stored position %q: %w", resume, err)
	}
	r.StoredPos = change.Position(stored)
	files, err := binaryLogs(ctx, db)
	if err != nil {
		return r, fmt.Errorf("binlog: listing the server's binlogs: %w", err)
	}
	if len(files) == 0 {
		return r, &configError{msg: "the server lists no binary logs; add `log_bin = binlog` under [mysqld] in my.cnf"}
	}
	r.Files, r.OldestFile = len(files), files[0].name
	starts := map[int]uint64{}
	startOf := func(i int) (uint64, error) {
		if s, ok := starts[i]; ok {
			return s, nil
		}
		list, err := fileStart(ctx, db, files[i].name)
		if err != nil {
			return 0, err
		}
		if i == 0 {
			r.Oldest = list
		}
		var seq uint64
		if info.mariadb {
			domains, err := mariaDBDomains(list)
			if err != nil {
				return 0, err
			}
			seq = domains[info.domainOf(resume)].SequenceNumber
		} else if seq, err = seqOf(false, list, source); err != nil {
			return 0, err
		}
		starts[i] = seq
		return seq, nil
	}
	oldest, err := startOf(0)
	if err != nil {
		return r, fmt.Errorf("binlog: reading the oldest binlog %s: %w", files[0].name, err)
	}
	r.OldestPos = change.Position(oldest)
	if resume == "" {
		return r, nil
	}
	if lost := info.lost(resume, r.Oldest, stored, oldest); lost != "" {
		return r, &PositionLostError{Stored: resume, Oldest: r.Oldest, Current: info.current, Reason: lost}
	}
	moved, err := anchorMoved(ctx, db, info, files, parseAnchor(anchored))
	if err != nil {
		return r, fmt.Errorf("binlog: finding the stored transaction in the server's binlogs: %w", err)
	}
	if moved != "" {
		return r, &PositionLostError{Stored: resume, Oldest: r.Oldest, Current: info.current, Reason: moved}
	}
	// The last file that starts at or before the stored position holds
	// the next transaction; those before it can go.
	var probeErr error
	i := sort.Search(len(files), func(i int) bool {
		s, err := startOf(i)
		if err != nil && probeErr == nil {
			probeErr = err
		}
		return s > stored
	}) - 1
	if probeErr != nil {
		return r, fmt.Errorf("binlog: reading the binlogs' GTID lists: %w", probeErr)
	}
	r.FilesBefore = max(i, 0)
	for _, f := range files[:r.FilesBefore] {
		r.BytesBefore += f.size
	}
	return r, nil
}

// domainOf is the GTID domain a MariaDB resume token is in (the server's
// own when the token is empty).
func (s serverInfo) domainOf(token string) uint32 {
	if gt, err := mysql.ParseMariadbGTID(token); err == nil && token != "" {
		return gt.DomainID
	}
	return s.domain
}

// lost says why the server cannot stream from the stored position, or "".
func (s serverInfo) lost(resume, oldestList string, stored, oldest uint64) string {
	if s.mariadb {
		cur, err := mariaDBDomains(s.current)
		if err != nil {
			return ""
		}
		c, ok := cur[s.domainOf(resume)]
		switch {
		case stored == 0 && oldest > 0:
			// From the domain's first transaction on (see startSet),
			// which a purge took.
			return "the binlogs holding the transactions after it were purged"
		case stored == 0:
			return ""
		case !ok || c.SequenceNumber < stored:
			return "the server's binlog ends before it: the server was rebuilt or reset"
		case stored < oldest:
			return "the binlogs holding the transactions after it were purged"
		}
		return ""
	}
	have, err1 := mysql.ParseMysqlGTIDSet(resume)
	executed, err2 := mysql.ParseMysqlGTIDSet(s.current)
	purged, err3 := mysql.ParseMysqlGTIDSet(s.purged)
	if err1 != nil || err2 != nil || err3 != nil {
		return ""
	}
	switch {
	case !executed.Contain(have):
		return "it names transactions the server never executed: the server was rebuilt or reset"
	case !have.Contain(purged):
		return "the server purged transactions after it (gtid_purged " + s.purged + ")"
	}
	return ""
}
