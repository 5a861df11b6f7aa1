package cdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"github.com/deskhook/deskhook/testenv"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// runUntilError runs a Reader and returns what Run returned, failing the
// test if it keeps running.
func runUntilError(t *testing.T, cfg Config, h Handler, during func(r *Reader)) error {
	t.Helper()
	return runUntilErrorWith(t, cfg, h, ReaderOptions{}, during)
}

// runUntilErrorWith is runUntilError with opts.
func runUntilErrorWith(t *testing.T, cfg Config, h Handler, opts ReaderOptions, during func(r *Reader)) error {
	t.Helper()
	if h == nil {
		h = newRecorder(true)
	}
	run := startReader(t, cfg, h, opts)
	if during != nil {
		during(run.reader)
	}
	select {
	case err := <-run.done:
		run.done <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Run kept running; want an error")
		return nil
	}
}

// TestRunErrors: what retrying cannot heal stops Run with an error that
// names the object and says what to do.
func TestRunErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(t *testing.T, f *fixture)
		// during runs while the reader streams (nil: before it starts).
		during func(t *testing.T, f *fixture)
		kind   error
		want   []string
	}{
		{name: "missing slot", breakIt: func(t *testing.T, f *fixture) {
			f.db.Exec(t, "SELECT pg_drop_replication_slot($1)", f.cfg.Slot)
		}, kind: ErrSlotMissing, want: []string{`replication slot "%slot" does not exist`, "deskhook setup", "source.slot"}},
		{name: "missing publication", breakIt: func(t *testing.T, f *fixture) {
			f.db.Exec(t, "DROP PUBLICATION deskhook")
		}, kind: ErrPublicationMissing, want: []string{`publication "deskhook" does not exist`, "deskhook setup", "source.publication"}},
		{name: "publication dropped while streaming", during: func(t *testing.T, f *fixture) {
			f.db.Exec(t, "DROP PUBLICATION deskhook")
			f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5")
		}, kind: ErrPublicationMissing, want: []string{`publication "deskhook" does not exist`, "deskhook setup"}},
		{name: "slot of another kind", breakIt: func(t *testing.T, f *fixture) {
			f.db.Exec(t, "SELECT pg_drop_replication_slot($1)", f.cfg.Slot)
			f.db.Exec(t, "SELECT pg_create_physical_replication_slot($1)", f.cfg.Slot)
		}, kind: ErrSlotInvalid, want: []string{`replication slot "%slot" is a physical slot`, "pg_drop_replication_slot"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, true)
			if tc.breakIt != nil {
				tc.breakIt(t, f)
			}
			err := runUntilError(t, f.cfg, nil, func(r *Reader) {
				if tc.during != nil {
					waitFor(t, 30*time.Second, "the reader to connect", func() bool { return r.Stats().Connected })
					tc.during(t, f)
				}
			})
			if !errors.Is(err, tc.kind) {
				t.Fatalf("Run returned %v, want %v", err, tc.kind)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "%slot", f.cfg.Slot); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// holdSlot starts streaming from cfg's slot on a connection of its own, as
// another consumer would; release ends it.
func holdSlot(t *testing.T, f *fixture) (pid uint32, release func()) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	conn, err := pgconn.Connect(ctx, f.db.ReplicationDSN())
	if err != nil {
		t.Fatal(err)
	}
	err = pglogrepl.StartReplication(ctx, conn, f.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'deskhook'"}})
	if err != nil {
		conn.Close(ctx)
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { conn.Close(context.Background()) }) }
	t.Cleanup(release)
	return conn.PID(), release
}

// TestSlotInUseIsRetried: a slot that another process streams from is
// reported (naming the slot and the process) and retried, since the other
// process may be a previous connection of ours still exiting; once it is
// free the reader streams.
func TestSlotInUseIsRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	pid, release := holdSlot(t, f)
	var logs testenv.Output
	rec := newRecorder(true)
	run := startReader(t, f.cfg, rec, ReaderOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, 30*time.Second, "two failed attempts", func() bool { return run.reader.Stats().Reconnects >= 2 })
	want := fmt.Sprintf(`replication slot \"%s\" is in use by process %d`, f.cfg.Slot, pid)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
	if run.reader.Stats().Connected {
		t.Error("connected while the slot is held")
	}
	release()
	run.waitConnected(t)
	f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5")
	waitFor(t, 30*time.Second, "the transaction", func() bool { return rec.txns() == 1 })
}

// metricValues gathers reg into name → value (counters and gauges).
func metricValues(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[mf.GetName()] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestReaderMetricsAndStats: the metrics on the injected registerer and
// Stats follow the stream, an acknowledgement and a reconnect.
func TestReaderMetricsAndStats(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	reg := prometheus.NewRegistry()
	rec := newRecorder(false)
	run := startReader(t, f.cfg, rec, ReaderOptions{Registerer: reg})
	run.waitConnected(t)
	f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5")
	f.db.Exec(t, "UPDATE users SET mobile = '2' WHERE id IN (5, 6)")
	waitFor(t, 30*time.Second, "two transactions", func() bool { return rec.txns() == 2 })
	last := rec.snapshot()[1]

	time.Sleep(1100 * time.Millisecond) // unacknowledged for over a second
	m := metricValues(t, reg)
	for name, want := range map[string]float64{
		"deskhook_cdc_transactions_total": 2,
		"deskhook_cdc_changes_total":      3,
		"deskhook_cdc_reconnects_total":   0,
		"deskhook_cdc_connected":          1,
		"deskhook_cdc_queue_bytes":        0,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if lag := m["deskhook_cdc_replication_lag_seconds"]; lag < 1 {
		t.Errorf("lag %gs with two transactions unacknowledged for a second", lag)
	}
	if got := m["deskhook_cdc_received_lsn"]; got < float64(last.Pos) {
		t.Errorf("received_lsn %v, want at least %v", got, float64(last.Pos))
	}
	st := run.reader.Stats()
	if st.Pending != 2 || st.Acknowledged != 0 || st.Confirmed >= rec.snapshot()[0].Pos ||
		!st.LastCommitTime.Equal(last.CommitTime) || st.Received < last.Pos || st.BackendPID == 0 {
		t.Errorf("stats before the acknowledgement: %+v (last commit %s at %s)", st, last.Pos, last.CommitTime)
	}

	run.reader.Ack(last.Pos)
	waitFor(t, 10*time.Second, "the confirmation", func() bool { return run.reader.Stats().Confirmed > last.Pos })
	m = metricValues(t, reg)
	if m["deskhook_cdc_replication_lag_seconds"] != 0 || m["deskhook_cdc_confirmed_lsn"] <= float64(last.Pos) ||
		m["deskhook_cdc_server_wal_end_lsn"] < float64(last.Pos) {
		t.Errorf("after the acknowledgement: %v", m)
	}
	if st := run.reader.Stats(); st.Pending != 0 || st.Acknowledged != last.Pos {
		t.Errorf("stats after the acknowledgement: %+v", st)
	}

	f.db.Exec(t, "SELECT pg_terminate_backend($1)", int32(run.reader.Stats().BackendPID))
	waitFor(t, 30*time.Second, "the reconnect", func() bool {
		return metricValues(t, reg)["deskhook_cdc_reconnects_total"] == 1 && run.reader.Stats().Connected
	})
	if st := run.reader.Stats(); st.Reconnects != 1 {
		t.Errorf("Stats().Reconnects = %d", st.Reconnects)
	}
	if err := run.stop(t); err != nil {
		t.Fatal(err)
	}
	if m := metricValues(t, reg); m["deskhook_cdc_connected"] != 0 {
		t.Errorf("connected = %v after Run returned", m["deskhook_cdc_connected"])
	}
}

// TestRunTwiceAtOnce: a Reader runs once at a time.
func TestRunTwiceAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	run := startReader(t, f.cfg, newRecorder(true), ReaderOptions{})
	run.waitConnected(t)
	err := run.reader.Run(context.Background(), HandlerFunc(func(context.Context, *change.Batch) error { return nil }))
	if err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Run returned %v", err)
	}
}

// TestHandlerErrorStopsRun: an error from Handle stops Run and is returned.
func TestHandlerErrorStopsRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	boom := errors.New("outbox full")
	err := runUntilError(t, f.cfg, HandlerFunc(func(context.Context, *change.Batch) error { return boom }),
		func(r *Reader) {
			waitFor(t, 30*time.Second, "the reader to connect", func() bool { return r.Stats().Connected })
			f.db.Exec(t, "UPDATE users SET mobile = '1' WHERE id = 5")
		})
	if !errors.Is(err, boom) {
		t.Errorf("Run returned %v, want the handler's error", err)
	}
}
