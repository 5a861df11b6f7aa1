package testenv

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// OpenFaveoMySQL opens a connection pool to the MySQL/MariaDB database at
// dsn (a go-sql-driver DSN) in the session Faveo's Laravel opens:
//   - sql_mode NO_ENGINE_SUBSTITUTION only: Faveo's config/database.php
//     sets 'strict' => false, for which Laravel sets exactly that mode. Not
//     being strict, MySQL fills a NOT NULL column a statement leaves out
//     with its implicit default, which for tickets.transferred_at is the
//     zero date '0000-00-00 00:00:00';
//   - character set utf8mb4 (Faveo v9 keeps ticket bodies in utf8mb4);
//   - no session time zone: Faveo sets none, so the server's applies.
//
// Times travel as UTC wall clock, as Faveo's application time zone is UTC:
// time.Time arguments are written, and DATETIME and TIMESTAMP values read
// (as time.Time), in UTC. An UPDATE reports the rows it matched, not only
// those it changed, as PostgreSQL does (the simulator relies on it), and
// arguments are interpolated into the statement (one round trip each).
func OpenFaveoMySQL(dsn string) (*sql.DB, error) {
	cfg, err := faveoMySQLConfig(dsn)
	if err != nil {
		return nil, err
	}
	return openMySQL(cfg)
}

// faveoMySQLConfig is dsn with the session settings of OpenFaveoMySQL.
func faveoMySQLConfig(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("testenv: MySQL DSN: %w", err)
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["sql_mode"] = "'NO_ENGINE_SUBSTITUTION'"
	if err := cfg.Apply(mysql.Charset("utf8mb4", "utf8mb4_unicode_ci")); err != nil {
		return nil, err
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.ClientFoundRows = true
	cfg.InterpolateParams = true
	return cfg, nil
}

func openMySQL(cfg *mysql.Config) (*sql.DB, error) {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("testenv: MySQL DSN: %w", err)
	}
	return sql.OpenDB(connector), nil
}

// openAdmin opens the administrator's session in database db (none when
// empty), in Faveo's session, able to run several statements at once.
func (s *MySQLServer) openAdmin(db string) (*sql.DB, error) {
	cfg, err := faveoMySQLConfig(s.DSN(db))
	if err != nil {
		return nil, err
	}
	cfg.MultiStatements = true
	return openMySQL(cfg)
}

// CreateDatabase creates database name holding Faveo's schema and seed
// rows, and an account for deskhook that may read the binlog and SELECT in
// this database (MySQLDB.User).
func (s *MySQLServer) CreateDatabase(ctx context.Context, name string) (*MySQLDB, error) {
	admin, err := s.openAdmin("")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+quoteMySQLIdent(name)); err != nil {
		return nil, fmt.Errorf("testenv: creating database %s on %s:%d: %w", name, s.Host, s.Port, err)
	}
	ok := false
	defer func() {
		if !ok {
			s.DropDatabase(context.Background(), name)
		}
	}()
	if err := loadMySQLSchema(ctx, s, name); err != nil {
		return nil, err
	}
	db := &MySQLDB{Server: s, Name: name, DSN: s.DSN(name), User: mysqlUserFor(name)}
	if db.Password, err = randomHex(12); err != nil {
		return nil, err
	}
	grants, err := replicationGrants(ctx, admin)
	if err != nil {
		return nil, err
	}
	for _, q := range []string{
		"CREATE USER ?@'%' IDENTIFIED BY ?",
		"GRANT " + grants + " ON *.* TO ?@'%'",
		"GRANT SELECT ON " + quoteMySQLIdent(name) + ".* TO ?@'%'",
	} {
		args := []any{db.User}
		if strings.Contains(q, "IDENTIFIED BY") {
			args = append(args, db.Password)
		}
		if _, err := admin.ExecContext(ctx, q, args...); err != nil {
			return nil, fmt.Errorf("testenv: account for database %s: %w", name, err)
		}
	}
	cfg, err := mysql.ParseDSN(db.DSN)
	if err != nil {
		return nil, err
	}
	cfg.User, cfg.Passwd = db.User, db.Password
	db.DeskhookDSN = cfg.FormatDSN()
	ok = true
	return db, nil
}

// loadMySQLSchema runs schema_mysql.sql and seed_mysql.sql in database db.
func loadMySQLSchema(ctx context.Context, s *MySQLServer, db string) error {
	conn, err := s.openAdmin(db)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, mysqlSchemaSQL); err != nil {
		return fmt.Errorf("testenv: schema_mysql.sql: %w", err)
	}
	if _, err := conn.ExecContext(ctx, mysqlSeedSQL); err != nil {
		return fmt.Errorf("testenv: seed_mysql.sql: %w", err)
	}
	return nil
}

// replicationGrants are the global privileges a binlog reader needs:
// REPLICATION SLAVE to stream the binlog, REPLICATION CLIENT to ask for
// binlog positions and files — on MariaDB 10.5 and newer an alias of
// BINLOG MONITOR, which SHOW GRANTS lists instead.
func replicationGrants(ctx context.Context, admin *sql.DB) (string, error) {
	var version string
	if err := admin.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return "", fmt.Errorf("testenv: server version: %w", err)
	}
	if strings.Contains(version, "MariaDB") {
		return "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR", nil
	}
	return "REPLICATION SLAVE, REPLICATION CLIENT", nil
}

// mysqlUserFor names the account of database db: short (MySQL allows 32
// characters) and the same for the same name.
func mysqlUserFor(db string) string {
	sum := sha256.Sum256([]byte(db))
	return "dh_" + hex.EncodeToString(sum[:])[:12]
}

// DropDatabase ends the sessions in database name and of its account (a
// binlog reader's included), drops the database and the account.
func (s *MySQLServer) DropDatabase(ctx context.Context, name string) error {
	admin, err := s.openAdmin("")
	if err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	defer admin.Close()
	user := mysqlUserFor(name)
	rows, err := admin.QueryContext(ctx, `SELECT ID FROM information_schema.PROCESSLIST
		WHERE (DB = ? OR USER = ?) AND ID <> CONNECTION_ID()`, name, user)
	if err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err == nil {
			ids = append(ids, id)
		}
	}
	rows.Close()
	for _, id := range ids {
		// 1094: the session ended meanwhile.
		if _, err := admin.ExecContext(ctx, "KILL "+strconv.FormatInt(id, 10)); err != nil && !isMySQLError(err, 1094) {
			return fmt.Errorf("dropping database %s: ending session %d: %w", name, id, err)
		}
	}
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteMySQLIdent(name)); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	if _, err := admin.ExecContext(ctx, "DROP USER IF EXISTS ?@'%'", user); err != nil {
		return fmt.Errorf("dropping the account of database %s: %w", name, err)
	}
	return nil
}

// isMySQLError says whether err is the server's error number.
func isMySQLError(err error, number uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == number
}

func quoteMySQLIdent(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// External servers, one per DSN seen (tests may change
// DESKHOOK_TEST_MYSQL_DSN).
var (
	externalMySQLMu      sync.Mutex
	externalMySQLServers = map[string]*MySQLServer{}
)

func externalMySQL(dsn string) (*MySQLServer, error) {
	externalMySQLMu.Lock()
	defer externalMySQLMu.Unlock()
	if s := externalMySQLServers[dsn]; s != nil {
		return s, nil
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	s := &MySQLServer{external: cfg}
	if cfg.Net == "tcp" {
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", cfg.Addr, err)
		}
		s.Host = host
		s.Port, _ = strconv.Atoi(port)
	}
	externalMySQLServers[dsn] = s
	return s, nil
}
