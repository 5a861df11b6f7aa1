package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// CreateDatabase creates database name holding the Faveo schema and seed
// rows, copied from the server's template database.
func (s *Server) CreateDatabase(ctx context.Context, name string) (*DB, error) {
	if err := s.ensureTemplate(ctx); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, s.adminDSN())
	if err != nil {
		return nil, fmt.Errorf("testenv: connecting to server %s:%d: %w", s.Host, s.Port, err)
	}
	defer conn.Close(context.Background())
	// From PostgreSQL 15 on this copies the template through the WAL
	// (STRATEGY WAL_LOG, the default): ~10 MB of WAL, but no checkpoint,
	// which with fsync on costs half a second or more (FILE_COPY, the only
	// way before 15).
	stmt := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{s.template}.Sanitize())
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, stmt)
		var pgErr *pgconn.PgError
		// 55006: the template is briefly in use (a concurrent CREATE
		// DATABASE from it on another server version, or a stray session).
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || attempt == 50 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("testenv: creating database %s: %w", name, err)
	}
	return &DB{Server: s, Name: name, DSN: s.DSN(name)}, nil
}

// DropDatabase drops database name, first ending its sessions and dropping
// its replication slots (a logical slot would otherwise block the drop).
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.adminDSN())
	if err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE database = $1 AND active_pid IS NOT NULL`, name)
		if err == nil {
			_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
				WHERE database = $1`, name)
		}
		if err == nil {
			break
		}
		// 55006: the walsender we terminated has not let go of its slot yet.
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || attempt == 100 {
			return fmt.Errorf("dropping replication slots of database %s: %w", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// adminDSN is where CREATE and DROP DATABASE run: the postgres database of
// a local cluster, the DSN's own database on an external server.
func (s *Server) adminDSN() string {
	if s.external != "" {
		return s.external
	}
	return s.DSN("postgres")
}

// ensureTemplate makes sure the template database exists. Local clusters
// come with it (cache.go); on an external server it is built once per
// schema version, under an advisory lock so parallel test processes do not
// race.
func (s *Server) ensureTemplate(ctx context.Context) error {
	if s.external == "" {
		return nil
	}
	s.tmplMu.Lock()
	defer s.tmplMu.Unlock()
	if s.tmplOK {
		return nil
	}
	conn, err := pgx.Connect(ctx, s.external)
	if err != nil {
		return fmt.Errorf("testenv: connecting to %s: %w", DSNEnv, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('deskhook testenv template'))"); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext('deskhook testenv template'))")
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.template).Scan(&exists); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	if !exists {
		building := pgx.Identifier{s.template + "_building"}.Sanitize()
		steps := []string{
			"DROP DATABASE IF EXISTS " + building + " WITH (FORCE)",
			"CREATE DATABASE " + building,
		}
		for _, q := range steps {
			if _, err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("testenv: building template on %s: %w", DSNEnv, err)
			}
		}
		if err := loadSchema(ctx, withDatabase(s.external, s.template+"_building")); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+pgx.Identifier{s.template}.Sanitize()); err != nil {
			return fmt.Errorf("testenv: building template on %s: %w", DSNEnv, err)
		}
	}
	s.tmplOK = true
	return nil
}

// External servers, one per DSN seen (tests may change DESKHOOK_TEST_DSN).
var (
	externalMu      sync.Mutex
	externalServers = map[string]*Server{}
)

func externalServer(dsn string) (*Server, error) {
	externalMu.Lock()
	defer externalMu.Unlock()
	if s := externalServers[dsn]; s != nil {
		return s, nil
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Host:     cfg.Host,
		Port:     int(cfg.Port),
		external: dsn,
		template: "deskhook_tmpl_" + schemaHash()[:12],
	}
	externalServers[dsn] = s
	return s, nil
}

var dbnameRE = regexp.MustCompile(`(^|\s)dbname\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`)

// withDatabase returns dsn pointing at database db instead.
func withDatabase(dsn, db string) string {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		u.Path, u.RawPath = "/"+db, ""
		return u.String()
	}
	kv := "dbname='" + strings.ReplaceAll(db, "'", `\'`) + "'"
	if dbnameRE.MatchString(dsn) {
		return dbnameRE.ReplaceAllLiteralString(dsn, " "+kv)
	}
	return strings.TrimSpace(dsn + " " + kv)
}

// withParam adds (or replaces) a connection parameter.
func withParam(dsn, key, value string) string {
	if isURL(dsn) {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return strings.TrimSpace(dsn + " " + key + "=" + value)
}

func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}
