package daemon

import (
	"context"
	"time"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/outbox"
	"github.com/deskhook/deskhook/sender"
)

// Status is what `deskhook status` shows, from the running daemon or, when
// none runs, from the store and the database directly.
type Status struct {
	Daemon    bool             `json:"daemon_running"`
	Ready     *bool            `json:"ready,omitempty"`
	Problems  []string         `json:"problems,omitempty"`
	Slot      SlotStatus       `json:"slot,omitzero"`    // PostgreSQL
	Binlog    *BinlogStatus    `json:"binlog,omitempty"` // MySQL/MariaDB
	Stream    *StreamStatus    `json:"stream,omitempty"`
	Outbox    OutboxStatus     `json:"outbox"`
	Endpoints []EndpointStatus `json:"endpoints"`
}

// SlotStatus is the replication slot as the server sees it.
type SlotStatus struct {
	Name          string `json:"name"`
	Error         string `json:"error,omitempty"`
	Active        bool   `json:"active"`
	ActivePID     int    `json:"active_pid,omitempty"`
	ConfirmedLSN  string `json:"confirmed_lsn,omitempty"`
	RestartLSN    string `json:"restart_lsn,omitempty"`
	WALStatus     string `json:"wal_status,omitempty"`
	RetainedBytes int64  `json:"retained_wal_bytes"`
	LagBytes      int64  `json:"lag_bytes"`
}

// StreamStatus is the daemon's replication connection.
type StreamStatus struct {
	Connected      bool      `json:"connected"`
	WalsenderPID   uint32    `json:"walsender_pid,omitempty"` // the server process reading the slot for it
	ConnectionID   uint32    `json:"connection_id,omitempty"` // MySQL: the replication connection's id
	Received       string    `json:"received_lsn"`
	Acknowledged   string    `json:"acknowledged_lsn"`
	Confirmed      string    `json:"confirmed_lsn"`
	LastCommitTime time.Time `json:"last_commit_time,omitzero"`
	Pending        int       `json:"pending_transactions"`
	Reconnects     uint64    `json:"reconnects"`
}

// OutboxStatus is the store.
type OutboxStatus struct {
	Path        string `json:"path"`
	Position    string `json:"stored_position"`
	Pending     int64  `json:"pending"`
	DeadLetters int64  `json:"dead_letters"`
	Error       string `json:"error,omitempty"`
	// Source is the database the store is filled from (its server's system
	// identifier/the database's name); Confirmed the highest position the
	// slot may have been confirmed at; Gaps the gaps an operator accepted.
	// Resume is the binlog position stored with Position (MySQL): its
	// GTID (set); ResumeToken the whole stored token, with where that
	// transaction is in the server's binlog (binlog.WithAnchor).
	Resume      string      `json:"resume,omitempty"`
	ResumeToken string      `json:"resume_token,omitempty"`
	Source      string      `json:"source,omitempty"`
	Confirmed   string      `json:"confirmed_position,omitempty"`
	Gaps        []GapStatus `json:"gaps,omitempty"`
}

// EndpointStatus is one endpoint: its config, persisted state and queue.
type EndpointStatus struct {
	Name       string `json:"name"`
	URL        string `json:"url,omitempty"`
	Configured bool   `json:"configured"`
	// Orphaned: the store holds the endpoint's queue or dead letters but
	// the configuration no longer names it. Nothing is sent to it and
	// nothing new is queued for it until it comes back; `deskhook
	// endpoints forget` drops it. OrphanedSince is when the daemon last
	// started or reloaded without it (zero if it has not run since).
	Orphaned         bool      `json:"orphaned"`
	OrphanedSince    time.Time `json:"orphaned_since,omitzero"`
	Enabled          bool      `json:"enabled"`
	DisabledBy       string    `json:"disabled_by,omitempty"`
	DisabledReason   string    `json:"disabled_reason,omitempty"`
	Pending          int64     `json:"pending"`
	OldestPendingAge float64   `json:"oldest_pending_age_seconds"`
	DeadLetters      int64     `json:"dead_letters"`
	LastSuccess      time.Time `json:"last_success,omitzero"`
	LastError        string    `json:"last_error,omitempty"`
	LastErrorAt      time.Time `json:"last_error_at,omitzero"`
}

// slotStatus reads the slot from the database.
func slotStatus(ctx context.Context, cfg cdc.Config) SlotStatus {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := cdc.SlotInfo(ctx, cfg)
	return toSlotStatus(cfg.Slot, s, err)
}

func toSlotStatus(name string, s cdc.Slot, err error) SlotStatus {
	st := SlotStatus{Name: name}
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Active, st.ActivePID = s.Active, s.ActivePID
	st.ConfirmedLSN, st.RestartLSN = s.ConfirmedFlush.String(), s.RestartLSN.String()
	st.WALStatus, st.RetainedBytes, st.LagBytes = s.WALStatus, s.RetainedBytes, s.LagBytes
	return st
}

// storeStatus reads the outbox: its position and every endpoint it knows,
// joined with the configured endpoints (a configured endpoint the store has
// not registered yet shows with an empty queue; one the store knows and
// the configuration does not is orphaned, with the URL it last had).
func storeStatus(ob *outbox.Outbox, eps []sender.Endpoint, now time.Time) (OutboxStatus, []EndpointStatus, error) {
	os := OutboxStatus{Path: ob.Path(), Position: ob.Position().String()}
	if err := ob.Err(); err != nil {
		os.Error = err.Error()
	}
	if err := sourceStatus(ob, &os); err != nil {
		return os, nil, err
	}
	states, err := ob.Endpoints()
	if err != nil {
		return os, nil, err
	}
	byName := map[string]outbox.EndpointStatus{}
	for _, s := range states {
		byName[s.Name] = s
	}
	var out []EndpointStatus
	add := func(name, url string, configured, enabledInConfig bool) {
		s, known := byName[name]
		delete(byName, name)
		es := EndpointStatus{Name: name, URL: url, Configured: configured, Orphaned: !configured, Enabled: enabledInConfig}
		if known {
			if !configured {
				es.URL, es.OrphanedSince = s.URL, s.OrphanedAt
			}
			es.Enabled = enabledInConfig && !s.Disabled
			es.DisabledBy, es.DisabledReason = s.DisabledBy, s.DisabledReason
			es.Pending, es.DeadLetters = s.Depth, s.DeadLetters
			if !s.Oldest.IsZero() {
				es.OldestPendingAge = now.Sub(s.Oldest).Seconds()
			}
			es.LastSuccess, es.LastError, es.LastErrorAt = s.LastSuccess, s.LastError, s.LastErrorAt
		}
		os.Pending += es.Pending
		os.DeadLetters += es.DeadLetters
		out = append(out, es)
	}
	for _, e := range eps {
		add(e.Name, sender.RedactURL(e.URL), true, e.IsEnabled())
	}
	for _, s := range states {
		if _, left := byName[s.Name]; left {
			add(s.Name, "", false, false)
		}
	}
	return os, out, nil
}

// Status reports the running daemon's state.
func (d *Daemon) Status(ctx context.Context) (*Status, error) {
	st := &Status{Daemon: true}
	d.sourceNow(ctx, st)
	problems := d.problems()
	ready := len(problems) == 0
	st.Ready, st.Problems = &ready, problems
	st.Stream = d.streamStatus()
	d.cfgMu.Lock()
	eps := d.cfg.Sender.Endpoints
	d.cfgMu.Unlock()
	var err error
	st.Outbox, st.Endpoints, err = storeStatus(d.ob, eps, time.Now())
	if err == nil && d.mysql != nil {
		err = mysqlPositions(d.ob, &st.Outbox)
	}
	return st, err
}
