package binlog

import (
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"

	"github.com/deskhook/deskhook/change"
)

// Positions. A Faveo server writes its transactions under one GTID domain
// (MariaDB, domain-server-sequence) or one source UUID (MySQL, uuid:N),
// whose sequence numbers grow by one with each transaction, in binlog
// order. change.Position is that sequence number: ordered, compact, and
// the same for a transaction however often it is read. The resume token
// (change.Batch.Resume) is the GTID itself — MariaDB: "0-1-57", the last
// transaction done; MySQL: the GTID set of every transaction done,
// "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-57" — which is what the server
// needs to stream from the next transaction on.
//
// A transaction of another domain or source UUID (a second primary writing
// into the binlog, a failover to a server with its own UUID) would have
// sequence numbers unrelated to these: the reader stops with an error
// naming it (ErrForeignGTID) rather than order it wrongly.

// gtids tracks where the stream stands, in the server's flavor.
type gtids struct {
	mariadb bool
	// MariaDB: the domain and the last GTID done.
	domain uint32
	last   mysql.MariadbGTID
	// MySQL: the source UUID and the set of transactions done.
	source uuid.UUID
	set    *mysql.MysqlGTIDSet
}

// newGTIDs parses a resume token (empty: start was decided elsewhere, and
// the caller passed the server's current position). mariadb says the
// flavor; domain (MariaDB) or source (MySQL) the one deskhook follows.
func newGTIDs(mariadb bool, token string, domain uint32, source string) (*gtids, error) {
	g := &gtids{mariadb: mariadb, domain: domain}
	if mariadb {
		if token == "" {
			return g, nil
		}
		if strings.Contains(token, ",") {
			return nil, fmt.Errorf("resume position %q names several GTID domains; deskhook follows one", token)
		}
		gt, err := mysql.ParseMariadbGTID(token)
		if err != nil || strings.Count(token, "-") != 2 {
			return nil, fmt.Errorf("resume position %q is not a MariaDB GTID (domain-server-sequence)", token)
		}
		if gt.DomainID != domain {
			return nil, &foreignError{msg: fmt.Sprintf("the resume position %s is in GTID domain %d, but the server "+
				"writes domain %d", token, gt.DomainID, domain)}
		}
		g.last = *gt
		return g, nil
	}
	u, err := uuid.Parse(source)
	if err != nil {
		return nil, fmt.Errorf("the server's server_uuid %q: %w", source, err)
	}
	g.source = u
	set, err := mysql.ParseMysqlGTIDSet(token)
	if err != nil {
		return nil, fmt.Errorf("resume position %q is not a MySQL GTID set (uuid:1-N)", token)
	}
	g.set = set.(*mysql.MysqlGTIDSet)
	return g, nil
}

// pos is the Position of the last transaction done (0: none).
func (g *gtids) pos() change.Position {
	if g.mariadb {
		return change.Position(g.last.SequenceNumber)
	}
	if s := g.set.Sets[g.source.String()]; s != nil && len(s.Intervals) > 0 {
		return change.Position(s.Intervals[len(s.Intervals)-1].Stop - 1)
	}
	return 0
}

// token is the resume token after the last transaction done.
func (g *gtids) token() string {
	if g.mariadb {
		return g.last.String()
	}
	return g.set.String()
}

// transaction is one GTID met in the stream.
type transaction struct {
	pos    change.Position
	gtid   string // as people read it, for logs
	maria  mysql.MariadbGTID
	source uuid.UUID
	gno    int64
}

// mariaDBGTID checks a MariaDB GTID event's GTID against the domain.
func (g *gtids) mariaDBGTID(gt mysql.MariadbGTID) (transaction, error) {
	t := transaction{pos: change.Position(gt.SequenceNumber), gtid: gt.String(), maria: gt}
	if gt.DomainID != g.domain {
		return t, &foreignError{msg: fmt.Sprintf("transaction %s is in GTID domain %d; deskhook follows domain %d, "+
			"whose sequence numbers order its transactions, and cannot order another domain's among them",
			t.gtid, gt.DomainID, g.domain)}
	}
	return t, nil
}

// mySQLGTID checks a MySQL GTID event's source against the server's.
func (g *gtids) mySQLGTID(sid []byte, gno int64) (transaction, error) {
	u, err := uuid.FromBytes(sid)
	if err != nil {
		return transaction{}, fmt.Errorf("GTID event: %w", err)
	}
	t := transaction{pos: change.Position(gno), gtid: fmt.Sprintf("%s:%d", u, gno), source: u, gno: gno}
	if u != g.source || gno <= 0 {
		return t, &foreignError{msg: fmt.Sprintf("transaction %s comes from source %s; deskhook follows the "+
			"server's own server_uuid %s, whose sequence numbers order its transactions, and cannot order "+
			"another source's among them", t.gtid, u, g.source)}
	}
	return t, nil
}

// done records t as done; its token follows.
func (g *gtids) done(t transaction) {
	if g.mariadb {
		g.last = t.maria
		return
	}
	g.set.AddGTID(t.source, t.gno)
}

// seqOf returns the sequence number a token reaches in the followed
// domain or source (0 when it names none).
func seqOf(mariadb bool, token, source string) (uint64, error) {
	if token == "" {
		return 0, nil
	}
	if mariadb {
		gt, err := mysql.ParseMariadbGTID(token)
		if err != nil {
			return 0, err
		}
		return gt.SequenceNumber, nil
	}
	set, err := mysql.ParseMysqlGTIDSet(token)
	if err != nil {
		return 0, err
	}
	u, err := uuid.Parse(source)
	if err != nil {
		return 0, err
	}
	s := set.(*mysql.MysqlGTIDSet).Sets[u.String()]
	if s == nil || len(s.Intervals) == 0 {
		return 0, nil
	}
	return uint64(s.Intervals[len(s.Intervals)-1].Stop - 1), nil
}

// mariaDBDomains parses a MariaDB GTID position list ("0-1-5,1-2-9") into
// the last GTID per domain.
func mariaDBDomains(list string) (map[uint32]mysql.MariadbGTID, error) {
	out := map[uint32]mysql.MariadbGTID{}
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		gt, err := mysql.ParseMariadbGTID(s)
		if err != nil {
			return nil, fmt.Errorf("GTID list %q: %w", list, err)
		}
		out[gt.DomainID] = *gt
	}
	return out, nil
}
