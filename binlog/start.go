package binlog

import (
	"context"
	"errors"
	"fmt"

	"github.com/deskhook/deskhook/change"
)

// Where reading starts. The server keeps no position for deskhook, so the
// consumer decides where a store begins (Now: the server's position when a
// store that has never streamed first starts) and where it reads on from
// after an operator accepted a lost position (AfterGap), and stores the
// token before it streams: a restart before the first transaction arrives
// then reads on from the same place, never from wherever the server is by
// then.

// Start is a place in the server's binlog to read on from.
type Start struct {
	// Resume is the token for Reader.Run: the GTID (MariaDB) or GTID set
	// (MySQL) of everything before this place. On MariaDB a binlog that
	// holds no transaction of the followed domain before it gives
	// "domain-server-0": the domain from its first transaction on.
	Resume string
	// Pos is the sequence number Resume reaches (0: none).
	Pos change.Position
	// Source names what positions count on this server (SourceID).
	Source string
}

// SourceID names what a server's positions count, for a store to tell
// whether it is read from the same sequence: the flavor, the GTID domain
// (MariaDB) or server_uuid (MySQL), and the database. MariaDB servers
// carry no identity of their own, so two with the same domain and database
// name look alike.
func SourceID(ctx context.Context, cfg Config) (string, error) {
	cfg.SetDefaults()
	db, mc, err := openSQL(cfg.DSN)
	if err != nil {
		return "", err
	}
	defer db.Close()
	info, err := readServerInfo(ctx, db)
	if err != nil {
		return "", fmt.Errorf("binlog: reading the server's settings: %w", err)
	}
	return info.sourceID(mc.DBName), nil
}

func (s serverInfo) sourceID(database string) string {
	if s.mariadb {
		return fmt.Sprintf("mariadb/domain %d/%s", s.domain, database)
	}
	return fmt.Sprintf("mysql/%s/%s", s.serverUUID, database)
}

// Now returns the server's current position: what a store that has never
// streamed starts after.
func Now(ctx context.Context, cfg Config) (Start, error) {
	return start(ctx, cfg, func(info serverInfo, _ string) (string, error) {
		if !info.mariadb && info.current == "" {
			return "", errors.New("binlog: the server has executed no transaction yet (gtid_executed is empty): " +
				"start deskhook again once it has")
		}
		return info.current, nil
	})
}

// AfterGap returns where to read on from once an operator accepted that the
// stored position is lost (purged, or the server rebuilt): the start of the
// oldest binlog the server keeps, so that everything the server still has
// is read. On MySQL, a server whose oldest binlog starts before any
// transaction gives its current position instead (an empty GTID set
// cannot be told from no token).
func AfterGap(ctx context.Context, cfg Config) (Start, error) {
	return start(ctx, cfg, func(info serverInfo, oldest string) (string, error) {
		if !info.mariadb && oldest == "" {
			if info.current == "" {
				return "", errors.New("binlog: the server has executed no transaction yet (gtid_executed is " +
					"empty): accept the gap again once it has")
			}
			return info.current, nil
		}
		return oldest, nil
	})
}

// start reads the server and turns the list pick chooses (a MariaDB GTID
// list, a MySQL GTID set) into a Start.
func start(ctx context.Context, cfg Config, pick func(info serverInfo, oldest string) (string, error)) (Start, error) {
	cfg.SetDefaults()
	db, mc, err := openSQL(cfg.DSN)
	if err != nil {
		return Start{}, err
	}
	defer db.Close()
	info, err := readServerInfo(ctx, db)
	if err != nil {
		return Start{}, fmt.Errorf("binlog: reading the server's settings: %w", err)
	}
	if err := info.requirementsError(); err != nil {
		return Start{}, err
	}
	files, err := binaryLogs(ctx, db)
	if err != nil {
		return Start{}, fmt.Errorf("binlog: listing the server's binlogs: %w", err)
	}
	if len(files) == 0 {
		return Start{}, &configError{msg: "the server lists no binary logs; add `log_bin = binlog` under [mysqld] in my.cnf"}
	}
	oldest, err := fileStart(ctx, db, files[0].name)
	if err != nil {
		return Start{}, fmt.Errorf("binlog: reading the oldest binlog %s: %w", files[0].name, err)
	}
	list, err := pick(info, oldest)
	if err != nil {
		return Start{}, err
	}
	st := Start{Source: info.sourceID(mc.DBName)}
	if info.mariadb {
		domains, err := mariaDBDomains(list)
		if err != nil {
			return Start{}, &protocolError{err: err}
		}
		gt, ok := domains[info.domain]
		if !ok {
			st.Resume = fmt.Sprintf("%d-%d-0", info.domain, info.serverID)
			return st, nil
		}
		st.Resume, st.Pos = gt.String(), change.Position(gt.SequenceNumber)
		return st, nil
	}
	seq, err := seqOf(false, list, info.serverUUID)
	if err != nil {
		return Start{}, &protocolError{err: fmt.Errorf("GTID set %q: %w", list, err)}
	}
	st.Resume, st.Pos = list, change.Position(seq)
	return st, nil
}
