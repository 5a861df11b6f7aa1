package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// backupPath is the admin API's route for a backup of the store.
const backupPath = "/api/store/backup"

// serveBackup streams a consistent copy of the store (one read
// transaction; the daemon goes on meanwhile). The length is announced, so
// a copy cut short by a failure midway is seen as such by the client.
func (d *Daemon) serveBackup(w http.ResponseWriter, r *http.Request) {
	started := false
	n, err := d.ob.Backup(w, func(size int64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		started = true
	})
	switch {
	case err != nil && !started:
		writeJSON(w, nil, err)
	case err != nil:
		d.log.Error("store backup failed midway", "err", err, "bytes_sent", n)
		panic(http.ErrAbortHandler) // cut the response: the client must not take it for a whole copy
	default:
		d.log.Info("store backup sent", "bytes", n, "client", r.RemoteAddr)
	}
}

// Backup writes a consistent copy of the store to w: from the store itself
// while no daemon runs, else streamed from the running daemon's admin API.
func Backup(ctx context.Context, cfg *Config, w io.Writer) (int64, error) {
	ops, err := OpenOps(ctx, cfg, false)
	if err != nil {
		return 0, err
	}
	defer ops.Close()
	switch o := ops.(type) {
	case *localOps:
		return o.ob.Backup(w, nil)
	case *remoteOps:
		return o.download(ctx, backupPath, w)
	}
	return 0, fmt.Errorf("backup: no way to reach the store (%T)", ops)
}

// download copies a response body of any length to w.
func (r *remoteOps) download(ctx context.Context, path string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+r.token)
	hc := *r.hc
	hc.Timeout = 0 // a large store takes a while; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return 0, errors.New(e.Error)
		}
		return 0, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	n, err := io.Copy(w, resp.Body)
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, fmt.Errorf("the daemon's copy was cut short after %d bytes: %w", n, err)
	}
	return n, nil
}
