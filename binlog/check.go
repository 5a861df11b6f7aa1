package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// CheckResult is one prerequisite: OK, a warning (Warn: works, but watch
// it), or a failure; Detail says what was found, Fix how to fix it (the
// my.cnf line, the GRANT, the configuration key).
type CheckResult struct {
	Name   string
	OK     bool
	Warn   bool
	Detail string
	Fix    string
}

// Check verifies every prerequisite of the Reader and reports each one:
// the connection; the server's binlog settings (log_bin, binlog_format,
// binlog_row_image, binlog_row_metadata, and on MySQL gtid_mode and
// enforce_gtid_consistency); the account's privileges (REPLICATION SLAVE,
// REPLICATION CLIENT — BINLOG MONITOR on MariaDB 10.5 and later — and
// SELECT on every table); the time zone; binlog retention against
// min_retention; and server_id. It changes nothing. A stored position's
// margin is CheckRetention's.
func Check(ctx context.Context, cfg Config) []CheckResult {
	cfg.SetDefaults()
	var res []CheckResult
	add := func(name string, ok bool, detail, fix string) {
		res = append(res, CheckResult{Name: name, OK: ok, Detail: detail, Fix: fix})
	}
	warn := func(name, detail, fix string) {
		res = append(res, CheckResult{Name: name, Warn: true, Detail: detail, Fix: fix})
	}
	if err := cfg.Validate("source"); err != nil {
		add("config", false, err.Error(), "fix the source section of the configuration file")
		return res
	}
	db, mc, err := openSQL(cfg.DSN)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		add("connection", false, err.Error(), "check source.dsn (host, port, database, user, password) and that the "+
			"server accepts the account from this host")
		return res
	}
	defer db.Close()
	info, err := readServerInfo(ctx, db)
	if err != nil {
		add("connection", false, "reading the server's settings: "+err.Error(), "")
		return res
	}
	var user string
	_ = db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&user)
	add("connection", true, fmt.Sprintf("%s, database %s, account %s", info.version, mc.DBName, user), "")

	for _, r := range info.requirements() {
		if r.ok {
			add(r.name, true, r.got, "")
			continue
		}
		fix := fmt.Sprintf("add `%s` under [mysqld] in the server's my.cnf and restart it", r.cnf)
		if r.name == "binlog_row_metadata" || r.name == "binlog_row_image" || r.name == "binlog_format" {
			fix += fmt.Sprintf(" (SET GLOBAL %s = %s; applies to new sessions at once)", r.name, r.want)
		}
		add(r.name, false, fmt.Sprintf("%s; deskhook needs %s", r.got, r.want), fix)
	}
	checkPrivileges(ctx, db, cfg, info, mc.DBName, user, add)
	if cfg.TimeZone != "" {
		add("time zone", true, fmt.Sprintf("%s (source.time_zone)", cfg.TimeZone), "")
	} else if loc, err := serverZone(info.timeZone, info.systemZone); err != nil {
		add("time zone", false, err.Error(), "set source.time_zone to the helpdesk's IANA zone, e.g. Europe/Berlin")
	} else {
		add("time zone", true, fmt.Sprintf("%s (the server's)", loc), "")
	}
	checkRetentionSetting(cfg, info, add, warn)
	checkServerID(ctx, db, cfg, info, add, warn)
	return res
}

type addFunc func(name string, ok bool, detail, fix string)

// checkPrivileges checks the global replication privileges through SHOW
// GRANTS, and SELECT on every table (and its columns) by trying it.
func checkPrivileges(ctx context.Context, db *sql.DB, cfg Config, info serverInfo, dbName, user string, add addFunc) {
	grants, err := showGrants(ctx, db)
	if err != nil {
		add("privileges", false, "SHOW GRANTS failed: "+err.Error(), "")
		return
	}
	account := accountSQL(user)
	all := strings.Contains(grants, "ALL PRIVILEGES ON *.*")
	need := []struct{ name, alias string }{{"REPLICATION SLAVE", "REPLICATION REPLICA"}, {"REPLICATION CLIENT", "BINLOG MONITOR"}}
	if info.mariadb && mariaDBAtLeast(info.version, 10, 5) {
		need[1] = struct{ name, alias string }{"BINLOG MONITOR", "REPLICATION CLIENT"}
	}
	for _, p := range need {
		if all || hasGlobalGrant(grants, p.name) || hasGlobalGrant(grants, p.alias) {
			add("privilege "+p.name, true, "granted", "")
		} else {
			add("privilege "+p.name, false, fmt.Sprintf("account %s lacks %s", user, p.name),
				fmt.Sprintf("GRANT %s ON *.* TO %s;", p.name, account))
		}
	}
	tables, err := inspect(ctx, db, cfg, dbName)
	if err != nil {
		add("tables", false, "reading information_schema failed: "+err.Error(), "")
		return
	}
	checkTables(tables, add)
}

// checkTables reports each table (present and readable) and the columns
// the mapping reads of it, each problem once.
func checkTables(tables []tableState, add addFunc) {
	for _, t := range tables {
		disp := t.db + "." + t.name
		ps := t.problems()
		readable := true
		for _, p := range ps {
			if p.Kind == "missing" || p.Kind == "no_select" {
				add("table "+disp, false, p.Detail, p.Fix)
				readable = false
			}
		}
		if !readable {
			continue
		}
		add("table "+disp, true, "present, readable", "")
		if len(t.need.Columns) == 0 {
			continue
		}
		bad := false
		for _, p := range ps {
			col, isMissing := strings.CutPrefix(p.Kind, "missing_column:")
			if c, isType := strings.CutPrefix(p.Kind, "column_type:"); isType {
				col = c
			} else if !isMissing {
				continue
			}
			add("column "+disp+"."+col, false, p.Detail, p.Fix)
			bad = true
		}
		if !bad {
			add("columns "+disp, true, fmt.Sprintf("has the %d column(s) deskhook reads, with usable types",
				len(t.need.Columns)), "")
		}
	}
}

func showGrants(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return "", err
		}
		b.WriteString(strings.ToUpper(g))
		b.WriteByte('\n')
	}
	return b.String(), rows.Err()
}

// hasGlobalGrant says whether a GRANT ... ON *.* line lists priv.
func hasGlobalGrant(grants, priv string) bool {
	for _, line := range strings.Split(grants, "\n") {
		head, _, ok := strings.Cut(line, " ON *.* TO ")
		if !ok {
			continue
		}
		for _, p := range strings.Split(strings.TrimPrefix(head, "GRANT "), ",") {
			if strings.TrimSpace(p) == priv {
				return true
			}
		}
	}
	return false
}

// mariaDBAtLeast compares a MariaDB version string with major.minor.
func mariaDBAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(version, "%d.%d", &ma, &mi); err != nil {
		return true
	}
	return ma > major || ma == major && mi >= minor
}

// accountSQL quotes CURRENT_USER()'s user@host for a GRANT.
func accountSQL(user string) string {
	u, h, ok := strings.Cut(user, "@")
	if !ok {
		h = "%"
	}
	return quoteString(u) + "@" + quoteString(h)
}

func checkRetentionSetting(cfg Config, info serverInfo, add addFunc, warn func(name, detail, fix string)) {
	name := "binlog retention"
	switch {
	case info.expireSecs == 0:
		warn(name, "binlogs are never purged by age (binlog_expire_logs_seconds and expire_logs_days are 0): "+
			"deskhook's position is safe, the disk grows until binlogs are purged by hand",
			fmt.Sprintf("add `binlog_expire_logs_seconds = %d` under [mysqld] in my.cnf (at least source.min_retention)",
				int64(cfg.MinRetention/time.Second)))
	case time.Duration(info.expireSecs)*time.Second < cfg.MinRetention:
		add(name, false, fmt.Sprintf("binlogs are purged after %s; deskhook must survive an outage of %s "+
			"(source.min_retention) without losing its position", time.Duration(info.expireSecs)*time.Second, cfg.MinRetention),
			fmt.Sprintf("add `binlog_expire_logs_seconds = %d` under [mysqld] in my.cnf (or SET GLOBAL "+
				"binlog_expire_logs_seconds = %d), or lower source.min_retention", int64(cfg.MinRetention/time.Second),
				int64(cfg.MinRetention/time.Second)))
	default:
		add(name, true, fmt.Sprintf("binlogs kept %s (source.min_retention %s)",
			time.Duration(info.expireSecs)*time.Second, cfg.MinRetention), "")
	}
}

// checkServerID checks that deskhook's replica id is neither the server's
// nor another replica's.
func checkServerID(ctx context.Context, db *sql.DB, cfg Config, info serverInfo, add addFunc, warn func(name, detail, fix string)) {
	name := "server_id"
	if cfg.ServerID == info.serverID {
		add(name, false, fmt.Sprintf("deskhook's server_id %d is the server's own", cfg.ServerID),
			"set source.server_id to a number no server or replica uses")
		return
	}
	rows, err := db.QueryContext(ctx, "SHOW SLAVE HOSTS")
	if err != nil {
		add(name, true, fmt.Sprintf("%d, not the server's (%d); other replicas not listed: the account may not run "+
			"SHOW SLAVE HOSTS", cfg.ServerID, info.serverID), "")
		return
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var others []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		dst := make([]any, len(cols))
		for i := range vals {
			dst[i] = &vals[i]
		}
		if err := rows.Scan(dst...); err != nil {
			break
		}
		if len(vals) > 1 && vals[0].String == fmt.Sprint(cfg.ServerID) {
			others = append(others, vals[1].String)
		}
	}
	if len(others) > 0 {
		warn(name, fmt.Sprintf("a replica with server_id %d is connected from host %s: deskhook itself if it is "+
			"running; otherwise two replicas with one id drop each other's streams", cfg.ServerID,
			strings.Join(others, ", ")), "if it is not deskhook, set source.server_id to an unused number")
		return
	}
	add(name, true, fmt.Sprintf("%d, used by no other replica", cfg.ServerID), "")
}

// PrintSQL returns the SQL and my.cnf lines that prepare a server for
// deskhook: the account (with a placeholder password: the DSN's is never
// printed), its grants, and the binlog settings.
func PrintSQL(cfg Config) string {
	cfg.SetDefaults()
	user, dbName := "deskhook", "helpdesk"
	if mc, err := parseDSN(cfg.DSN); err == nil {
		if mc.User != "" {
			user = mc.User
		}
		if mc.DBName != "" {
			dbName = mc.DBName
		}
	}
	account := quoteString(user) + "@'%'"
	return fmt.Sprintf(`-- deskhook's account: reads the binlog as a replica, and the helpdesk's rows.
CREATE USER %[1]s IDENTIFIED BY '<choose a password>';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO %[1]s;
-- MariaDB 10.5 and later name REPLICATION CLIENT's binlog part BINLOG MONITOR:
-- GRANT BINLOG MONITOR ON *.* TO %[1]s;
GRANT SELECT ON %[2]s.* TO %[1]s;

-- The server's my.cnf, under [mysqld] (restart the server after changing it):
--   log_bin = binlog
--   binlog_format = ROW
--   binlog_row_image = FULL
--   binlog_row_metadata = FULL
--   binlog_expire_logs_seconds = %[3]d
--   server_id = <any number but %[4]d, which deskhook uses>
-- MySQL only:
--   gtid_mode = ON
--   enforce_gtid_consistency = ON
`, account, quoteIdent(dbName), int64(cfg.MinRetention/time.Second), cfg.ServerID)
}
