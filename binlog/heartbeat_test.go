package binlog

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
)

// freezer is a TCP proxy that can stop forwarding without closing: a
// connection that died without a word (a cable pulled, a firewall's
// dropped state).
type freezer struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			f.mu.Lock()
			f.conns = append(f.conns, c, s)
			f.mu.Unlock()
			go f.pipe(c, s)
			go f.pipe(s, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for f.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // hold the bytes: nothing passes while frozen
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// Heartbeats keep an idle stream alive; a stream that goes silent (no
// heartbeat either) is presumed dead and reconnected, losing nothing; and
// no log line, at any level, shows the password.
func TestHeartbeatAndDeadConnection(t *testing.T) {
	db := testenv.MariaDB(t)
	mc, err := mysql.ParseDSN(db.DeskhookDSN)
	if err != nil {
		t.Fatal(err)
	}
	f := newFreezer(t, mc.Addr)
	mc.Addr = f.ln.Addr().String()
	cfg := testConfig(db)
	cfg.DSN = mc.FormatDSN()
	cfg.Heartbeat = 200 * time.Millisecond
	var logs testenv.Output
	r := NewReader(cfg, ReaderOptions{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	r.deadAfter = 1500 * time.Millisecond
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, "", c) }()
	defer func() { cancel(); <-done }()
	for !r.Stats().Connected {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(4 * time.Second) // idle: only heartbeats
	if n := r.Stats().Reconnects; n != 0 {
		t.Fatalf("%d reconnects on an idle stream with heartbeats", n)
	}
	f.frozen.Store(true)
	hd := testenv.NewMySQLHelpdesk(db.Pool(t))
	w, err := hd.CreateTicket(ctx, testenv.NewTicket{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.Stats().Reconnects == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the silent connection was not given up within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.frozen.Store(false)
	bs := c.waitFor(t, "the ticket", time.Minute, func(bs []*change.Batch) bool {
		for _, b := range bs {
			for _, ch := range b.Changes {
				if id, _ := ch.New.Int("id"); ch.Table.Name == "tickets" && id == w.TicketID {
					return true
				}
			}
		}
		return false
	})
	if n := len(transactions(bs)); n != 1 {
		t.Errorf("%d transactions, want the ticket's one", n)
	}
	if bytes.Contains([]byte(logs.String()), []byte(db.Password)) {
		t.Error("the logs show the password")
	}
	if !strings.Contains(logs.String(), "go-mysql:") {
		t.Error("go-mysql's logs did not reach the logger at debug level")
	}
}
