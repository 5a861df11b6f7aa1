package bench

// The benchmark on MariaDB (Options.Source "mariadb"): a throwaway MariaDB
// committing as a production server does (sync_binlog=1,
// innodb_flush_log_at_trx_commit=1), Faveo's MySQL schema, the MySQL
// simulator, and the daemon reading the binlog. The scenarios are the
// catch-up on a stored backlog, with the bounds of two bare binlog readers
// over the same binlog measured in the same run, and live latency.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/go-sql-driver/mysql"

	"github.com/deskhook/deskhook/binlog"
	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/daemon"
	"github.com/deskhook/deskhook/sender"
	"github.com/deskhook/deskhook/testenv"
)

// MariaDBScenarios are the scenarios that run on MariaDB, in order.
var MariaDBScenarios = []string{"backlog", "live500", "live2000"}

// BinlogBound is a bare binlog reader's pass over the backlog's binlog.
type BinlogBound struct {
	// Reader says which: go-mysql's replication package alone (every event
	// parsed, every row decoded into Go values), or deskhook's binlog.Reader
	// (rows rendered as Faveo's PDO sees them, batched as the daemon gets
	// them) with a handler that only counts.
	Reader       string  `json:"reader"`
	Transactions int     `json:"transactions"`
	Rows         int     `json:"rows"`
	Seconds      float64 `json:"seconds"`
	// EventsPerSec is the backlog's webhook events over Seconds: what the
	// daemon could deliver if reading the binlog were all it did.
	EventsPerSec float64 `json:"events_per_s"`
	RowsPerSec   float64 `json:"rows_per_s"`
	CPUPer1000   float64 `json:"cpu_s_per_1000_events"`
}

// startMariaDB starts the bench's MariaDB.
func (e *env) startMariaDB(ctx context.Context, rep *Report) (func(), error) {
	e.say("starting MariaDB (sync_binlog=1, innodb_flush_log_at_trx_commit=1)...")
	srv, err := testenv.StartMariaDB(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e.my = srv
	rep.Machine.MariaDB = srv.Version()
	rep.Machine.PGVia = "unix socket"
	if e.opts.TCP {
		rep.Machine.PGVia = "tcp loopback"
	}
	return func() { _ = srv.Close() }, nil
}

// mysqlDB is a fresh database with Faveo's MySQL schema, the simulator's
// pool on it (in Faveo's session), and the daemon's source section for it.
func (e *env) mysqlDB(ctx context.Context, name string, conns int) (*sql.DB, daemon.SourceConfig, func(), error) {
	e.dbs++
	db, err := e.my.CreateDatabase(ctx, fmt.Sprintf("bench_%s_%d", name, e.dbs))
	if err != nil {
		return nil, daemon.SourceConfig{}, nil, err
	}
	closeDB := func() {
		if err := e.my.DropDatabase(context.Background(), db.Name); err != nil {
			e.say("dropping %s: %v", db.Name, err)
		}
	}
	dsn, err := e.mysqlDSN(db.DSN)
	if err == nil {
		var pool *sql.DB
		if pool, err = testenv.OpenFaveoMySQL(dsn); err == nil {
			pool.SetMaxOpenConns(conns)
			src := daemon.SourceConfig{Type: daemon.SourceMySQL, Config: cdc.Config{}}
			if src.DSN, err = e.mysqlDSN(db.DeskhookDSN); err == nil {
				src.SetDefaults()
				return pool, src, func() { pool.Close(); closeDB() }, nil
			}
			pool.Close()
		}
	}
	closeDB()
	return nil, daemon.SourceConfig{}, nil, err
}

// mysqlDSN is dsn through the server's Unix-domain socket, or over TCP
// with Options.TCP.
func (e *env) mysqlDSN(dsn string) (string, error) {
	if e.opts.TCP {
		return dsn, nil
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	mc.Net, mc.Addr = "unix", e.my.Socket
	return mc.FormatDSN(), nil
}

// mysqlConnected says whether the daemon's binlog stream is up.
func mysqlConnected(ctx context.Context, d *daemon.Daemon) (bool, error) {
	st, err := d.Status(ctx)
	if err != nil {
		return false, err
	}
	return st.Stream != nil && st.Stream.Connected, nil
}

// mysqlLiveDB is a fresh MariaDB database for a live scenario; the daemon
// starts at the server's position when it first streams, before the load.
func (e *env) mysqlLiveDB(ctx context.Context, s liveSpec) (*liveDB, error) {
	pool, src, closeDB, err := e.mysqlDB(ctx, s.name, s.writers+2)
	if err != nil {
		return nil, err
	}
	return &liveDB{
		load: func(ctx context.Context, c testenv.LoadConfig) (testenv.LoadResult, error) {
			return testenv.LoadMySQL(ctx, pool, c)
		},
		start: func(ctx context.Context, eps []sender.Endpoint) (*pipeline, error) {
			return e.startDaemonOn(ctx, src, eps, nil, mysqlConnected)
		},
		streamPID: func(context.Context) int { return 0 }, // a thread of mariadbd
		close:     closeDB,
	}, nil
}

// mysqlBacklog: 20,000 tickets × (created + 2 replies + 2 updates) written
// while no daemon runs; then the two bare readers read that binlog; then
// the daemon starts from the position before the backlog: the time from
// its start to the last event at the receiver.
func (e *env) mysqlBacklog(ctx context.Context, rep *Report) (*Result, error) {
	tickets := e.scaled(20000, 20)
	pool, src, closeDB, err := e.mysqlDB(ctx, "backlog", 10)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	cfg := src.MySQL()
	start, err := binlog.Now(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e.say("writing the backlog: %d tickets × 5 actions (daemon stopped)...", tickets)
	load, err := testenv.LoadMySQL(ctx, pool, testenv.LoadConfig{Tickets: tickets, Replies: 2, Updates: 2, Writers: 8, Seed: 7})
	if err != nil {
		return nil, err
	}
	expected := load.TotalEvents()
	res := &Result{Name: "backlog", Expected: expected}
	res.note("backlog written at %.0f events/s by 8 writers", float64(expected)/load.Elapsed.Seconds())
	var end string
	if err := pool.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&end); err != nil {
		return nil, err
	}
	endSeq, err := strconv.ParseUint(end[strings.LastIndexByte(end, '-')+1:], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the binlog's end %q: %w", end, err)
	}

	settle()
	e.say("bare go-mysql binlog reader over the backlog...")
	bare, err := bareGoMySQL(ctx, cfg, start.Resume, endSeq, expected)
	if err != nil {
		return nil, err
	}
	settle()
	e.say("deskhook's binlog.Reader (counting handler) over the backlog...")
	reader, err := bareBinlogReader(ctx, cfg, start.Resume, change.Position(endSeq), expected)
	if err != nil {
		return nil, err
	}
	rep.Bounds.Binlog = []BinlogBound{*bare, *reader}

	settle()
	t := newTracker("/fast", false)
	e.track.Store(t)
	defer e.track.Store(nil)
	e.say("starting the daemon on %d stored events...", expected)
	m := e.measure("backlog", true)
	// The store starts where the backlog starts, as if the daemon had
	// stopped there.
	before := func(d *daemon.Daemon) error { return d.Outbox().RecordStart(ctx, start.Source, start.Resume) }
	p, err := e.startDaemonOn(ctx, src, []sender.Endpoint{e.endpoint("fast")}, before, mysqlConnected)
	if err != nil {
		m.done(res, 0, time.Time{})
		return nil, err
	}
	return res, e.drain(ctx, res, t, m, p, nil)
}

// bareGoMySQL reads the binlog from resume up to the transaction endSeq
// with go-mysql's replication package alone: every event parsed, every
// row of every table decoded into Go values, nothing more.
func bareGoMySQL(ctx context.Context, cfg binlog.Config, resume string, endSeq uint64, events int) (*BinlogBound, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	sc := replication.BinlogSyncerConfig{ServerID: cfg.ServerID + 1, Flavor: gomysql.MariaDBFlavor, User: mc.User,
		Password: mc.Passwd, DisableRetrySync: true, MaxReconnectAttempts: 1, Logger: slog.New(slog.DiscardHandler)}
	if mc.Net == "unix" {
		sock := mc.Addr
		sc.Host, sc.Dialer = "localhost", func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	} else {
		host, port, _ := net.SplitHostPort(mc.Addr)
		p, _ := strconv.ParseUint(port, 10, 16)
		sc.Host, sc.Port = host, uint16(p)
	}
	syncer := replication.NewBinlogSyncer(sc)
	defer syncer.Close()
	set, err := gomysql.ParseMariadbGTIDSet(resume)
	if strings.HasSuffix(resume, "-0") { // the domain from its first transaction
		set, err = gomysql.ParseMariadbGTIDSet("")
	}
	if err != nil {
		return nil, err
	}
	start, cpu0 := time.Now(), cpuTime()
	streamer, err := syncer.StartSyncGTID(set)
	if err != nil {
		return nil, fmt.Errorf("bare go-mysql reader: %w", err)
	}
	b := &BinlogBound{Reader: "go-mysql replication (parse and decode only)"}
	var seq uint64
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return nil, fmt.Errorf("bare go-mysql reader: %w", err)
		}
		switch x := ev.Event.(type) {
		case *replication.MariadbGTIDEvent:
			seq = x.GTID.SequenceNumber
		case *replication.RowsEvent:
			b.Rows += len(x.Rows)
		case *replication.XIDEvent:
			b.Transactions++
			if seq >= endSeq {
				return b.finish(start, cpu0, events), nil
			}
		}
	}
}

// bareBinlogReader reads the binlog from resume up to endSeq with
// deskhook's binlog.Reader and a handler that only counts.
func bareBinlogReader(ctx context.Context, cfg binlog.Config, resume string, endSeq change.Position, events int) (*BinlogBound, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cfg.ServerID++ // beside the daemon's, were it running
	b := &BinlogBound{Reader: "deskhook binlog.Reader (counting handler)"}
	done := make(chan struct{})
	h := change.HandlerFunc(func(_ context.Context, batch *change.Batch) error {
		b.Rows += len(batch.Changes)
		if batch.Last {
			b.Transactions++
			if batch.Pos >= endSeq {
				close(done)
				return context.Canceled
			}
		}
		return nil
	})
	start, cpu0 := time.Now(), cpuTime()
	runErr := make(chan error, 1)
	go func() { runErr <- binlog.NewReader(cfg, binlog.ReaderOptions{}).Run(ctx, resume, h) }()
	select {
	case <-done:
		bound := b.finish(start, cpu0, events)
		<-runErr
		return bound, nil
	case err := <-runErr:
		return nil, fmt.Errorf("binlog.Reader stopped before the backlog's end: %v", err)
	}
}

func (b *BinlogBound) finish(start time.Time, cpu0 time.Duration, events int) *BinlogBound {
	b.Seconds = time.Since(start).Seconds()
	b.EventsPerSec = float64(events) / b.Seconds
	b.RowsPerSec = float64(b.Rows) / b.Seconds
	b.CPUPer1000 = (cpuTime() - cpu0).Seconds() * 1000 / float64(events)
	return b
}

// mariadbCPU is the CPU time the MariaDB server (one process, its threads
// included) whose data directory is dataDir used so far.
func mariadbCPU(dataDir string) time.Duration {
	raw, err := os.ReadFile(dataDir + "/../mariadbd.pid")
	if err != nil {
		return 0
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(raw)) + "/stat")
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick
}
