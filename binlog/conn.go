package binlog

import (
	"context"
	"net"
	"sync"
	"time"
)

// deadConn is the replication connection: every read must return within
// idle, or the connection is presumed dead. The deadline is set as each
// read starts, so time spent handing batches to a slow consumer (no read
// in progress) never counts; a live server sends heartbeats well within
// it. Close may be called from another goroutine to wake a blocked read.
type deadConn struct {
	net.Conn
	idle time.Duration
}

func (c *deadConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// dialer dials the DSN's address and remembers the connection, so the
// reader can close it.
type dialer struct {
	net, addr string
	idle      time.Duration

	mu   sync.Mutex
	conn *deadConn
}

func (d *dialer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var nd net.Dialer
	if d.net != "unix" {
		nd.KeepAlive = 15 * time.Second
	}
	c, err := nd.DialContext(ctx, d.net, d.addr)
	if err != nil {
		return nil, err
	}
	dc := &deadConn{Conn: c, idle: d.idle}
	d.mu.Lock()
	old := d.conn
	d.conn = dc
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return dc, nil
}

// close closes the last connection dialed.
func (d *dialer) close() {
	d.mu.Lock()
	c := d.conn
	d.conn = nil
	d.mu.Unlock()
	if c != nil {
		c.Close()
	}
}
