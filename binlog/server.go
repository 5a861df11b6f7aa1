package binlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
)

// openSQL opens a small pool to the DSN for queries about the server.
func openSQL(dsn string) (*sql.DB, *mysql.Config, error) {
	mc, err := parseDSN(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("binlog: source.dsn: %w (%s)", err, RedactDSN(dsn))
	}
	mc = mc.Clone()
	if mc.Timeout == 0 {
		mc.Timeout = 15 * time.Second
	}
	if mc.ReadTimeout == 0 {
		mc.ReadTimeout = time.Minute
	}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, nil, fmt.Errorf("binlog: source.dsn: %w (%s)", err, RedactDSN(dsn))
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	return db, mc, nil
}

// serverInfo is what the reader and the checks need to know about the
// server.
type serverInfo struct {
	version     string
	mariadb     bool
	logBin      string
	format      string
	rowImage    string
	rowMetadata string
	gtidMode    string // MySQL
	enforceGTID string // MySQL
	compression string // MySQL 8.0.20+: binlog_transaction_compression
	timeZone    string // @@global.time_zone
	systemZone  string
	serverID    uint32
	serverUUID  string // MySQL
	domain      uint32 // MariaDB's gtid_domain_id
	current     string // MariaDB gtid_binlog_pos; MySQL gtid_executed
	purged      string // MySQL gtid_purged
	expireSecs  int64  // binlog retention, 0: never purged by age
}

// variable reads one global variable, "" when the server has none.
func variable(ctx context.Context, db *sql.DB, name string) (string, error) {
	var k string
	var v sql.NullString
	err := db.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE "+quoteString(name)).Scan(&k, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v.String, err
}

func readServerInfo(ctx context.Context, db *sql.DB) (serverInfo, error) {
	var s serverInfo
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&s.version); err != nil {
		return s, err
	}
	s.mariadb = strings.Contains(strings.ToLower(s.version), "mariadb")
	vars := map[string]*string{"log_bin": &s.logBin, "binlog_format": &s.format, "binlog_row_image": &s.rowImage,
		"binlog_row_metadata": &s.rowMetadata, "time_zone": &s.timeZone, "system_time_zone": &s.systemZone}
	var serverID, domain, expireSecs, expireDays string
	vars["server_id"] = &serverID
	vars["binlog_expire_logs_seconds"] = &expireSecs
	vars["expire_logs_days"] = &expireDays
	if s.mariadb {
		vars["gtid_domain_id"] = &domain
		vars["gtid_binlog_pos"] = &s.current
	} else {
		vars["gtid_mode"] = &s.gtidMode
		vars["enforce_gtid_consistency"] = &s.enforceGTID
		vars["binlog_transaction_compression"] = &s.compression
		vars["server_uuid"] = &s.serverUUID
		vars["gtid_executed"] = &s.current
		vars["gtid_purged"] = &s.purged
	}
	for name, p := range vars {
		v, err := variable(ctx, db, name)
		if err != nil {
			return s, fmt.Errorf("reading %s: %w", name, err)
		}
		*p = v
	}
	s.current = strings.ReplaceAll(s.current, "\n", "")
	s.purged = strings.ReplaceAll(s.purged, "\n", "")
	id, _ := strconv.ParseUint(serverID, 10, 32)
	s.serverID = uint32(id)
	d, _ := strconv.ParseUint(domain, 10, 32)
	s.domain = uint32(d)
	secs, _ := strconv.ParseInt(expireSecs, 10, 64)
	days, _ := strconv.ParseFloat(expireDays, 64)
	s.expireSecs = secs
	if secs == 0 && days > 0 {
		s.expireSecs = int64(days * 86400)
	}
	return s, nil
}

// flavor is go-mysql's name for the server's flavor.
func (s serverInfo) flavor() string {
	if s.mariadb {
		return gomysql.MariaDBFlavor
	}
	return gomysql.MySQLFlavor
}

// requirement is one server setting deskhook needs.
type requirement struct {
	name, got, want string
	ok              bool
	cnf             string // the my.cnf line that fixes it
}

// requirements lists the binlog settings the reader needs, each with the
// my.cnf line that fixes it.
func (s serverInfo) requirements() []requirement {
	on := func(v string) bool { return v == "ON" || v == "1" }
	rs := []requirement{
		{name: "log_bin", got: s.logBin, want: "ON", ok: on(s.logBin), cnf: "log_bin = binlog"},
		{name: "binlog_format", got: s.format, want: "ROW", ok: strings.EqualFold(s.format, "ROW"), cnf: "binlog_format = ROW"},
		{name: "binlog_row_image", got: s.rowImage, want: "FULL", ok: strings.EqualFold(s.rowImage, "FULL"),
			cnf: "binlog_row_image = FULL"},
		{name: "binlog_row_metadata", got: s.rowMetadata, want: "FULL", ok: strings.EqualFold(s.rowMetadata, "FULL"),
			cnf: "binlog_row_metadata = FULL"},
	}
	if !s.mariadb {
		rs = append(rs,
			requirement{name: "gtid_mode", got: s.gtidMode, want: "ON", ok: s.gtidMode == "ON", cnf: "gtid_mode = ON"},
			requirement{name: "enforce_gtid_consistency", got: s.enforceGTID, want: "ON", ok: s.enforceGTID == "ON",
				cnf: "enforce_gtid_consistency = ON"},
			// Compressed transactions are read by go-mysql without the
			// helpdesk's time zone and deskhook's row decoding (decode.go).
			requirement{name: "binlog_transaction_compression", got: s.compression, want: "OFF", ok: !on(s.compression),
				cnf: "binlog_transaction_compression = OFF"})
	}
	for i := range rs {
		if rs[i].got == "" {
			rs[i].got = "(not available on this server version)"
		}
	}
	return rs
}

// requirementsError is the first unmet requirement as a configError.
func (s serverInfo) requirementsError() error {
	for _, r := range s.requirements() {
		if !r.ok {
			return &configError{msg: fmt.Sprintf("the server has %s = %s; deskhook needs %s. Add `%s` under "+
				"[mysqld] in the server's my.cnf and restart it", r.name, r.got, r.want, r.cnf)}
		}
	}
	return nil
}

// binlogFile is one of SHOW BINARY LOGS.
type binlogFile struct {
	name string
	size int64
}

func binaryLogs(ctx context.Context, db *sql.DB) ([]binlogFile, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []binlogFile
	for rows.Next() {
		dst := make([]any, len(cols))
		var f binlogFile
		var size sql.NullInt64
		dst[0], dst[1] = &f.name, &size
		for i := 2; i < len(dst); i++ {
			dst[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, err
		}
		f.size = size.Int64
		out = append(out, f)
	}
	return out, rows.Err()
}

// fileStart returns the GTIDs a binlog file starts after: MariaDB's
// Gtid_list event, MySQL's Previous_gtids event, near its start.
func fileStart(ctx context.Context, db *sql.DB, file string) (string, error) {
	rows, err := db.QueryContext(ctx, "SHOW BINLOG EVENTS IN "+quoteString(file)+" LIMIT 5")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dst := make([]any, len(cols))
		for i := range vals {
			dst[i] = &vals[i]
		}
		if err := rows.Scan(dst...); err != nil {
			return "", err
		}
		if len(vals) < 6 {
			continue
		}
		switch vals[2].String {
		case "Gtid_list":
			return strings.Trim(vals[5].String, "[] "), nil
		case "Previous_gtids":
			return strings.ReplaceAll(strings.TrimSpace(vals[5].String), "\n", ""), nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("binlog %s: no GTID list among its first events", file)
}

// startSet is the GTID set to ask the server to stream after: the token,
// and on MariaDB the server's current position in any other domain (so
// that their history is not sent; a new transaction there stops the
// reader, see ErrForeignGTID).
func (s serverInfo) startSet(token string) (gomysql.GTIDSet, error) {
	if !s.mariadb {
		set, err := gomysql.ParseMysqlGTIDSet(token)
		if err != nil {
			return nil, fmt.Errorf("binlog: resume position %q: %w", token, err)
		}
		return set, nil
	}
	cur, err := mariaDBDomains(s.current)
	if err != nil {
		return nil, err
	}
	parts := []string{}
	own := s.domainOf(token)
	// A token at sequence 0 (Now or AfterGap on a binlog that holds no
	// transaction of the domain before it) asks for the domain from its
	// first transaction on: the server has no GTID 0 to find, so the
	// domain is left out, which asks for all of it.
	if gt, err := gomysql.ParseMariadbGTID(token); token != "" && (err != nil || gt.SequenceNumber > 0) {
		parts = append(parts, token)
	}
	for d, gt := range cur {
		if d != own {
			parts = append(parts, gt.String())
		}
	}
	set, err := gomysql.ParseMariadbGTIDSet(strings.Join(parts, ","))
	if err != nil {
		return nil, fmt.Errorf("binlog: resume position %q: %w", token, err)
	}
	return set, nil
}
