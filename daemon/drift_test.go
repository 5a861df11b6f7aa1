package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/testenv"
)

// TestSourceCheckSaysEachProblemOnce: the verification's outcomes, in
// turn, give one ERROR per new or changed problem, one INFO per problem
// gone, nothing while unchanged; a failure to look is a WARN once and
// keeps the last result; the metric and /readyz follow the problems.
// (The verification itself runs against real PostgreSQL in cdc's tests
// and the end-to-end tests; here its results are given.)
func TestSourceCheckSaysEachProblemOnce(t *testing.T) {
	var logs testenv.Output
	reg := prometheus.NewRegistry()
	cfg := SourceConfig{Config: cdc.Defaults()}
	cfg.SetDefaults()
	s := newSourceCheck(cfg, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	var next []cdc.Problem
	var nextErr error
	s.verify = func(context.Context) ([]cdc.Problem, error) { return next, nextErr }
	seen := 0
	take := func() string { // what was logged since the last take
		all := logs.String()
		out := all[seen:]
		seen = len(all)
		return out
	}
	if r := s.readiness(); len(r) != 1 || r[0] != "source schema not verified yet" {
		t.Errorf("before the first verification: %q", r)
	}
	a := cdc.Problem{Table: "public.ticket_thread", Kind: "not_published", Detail: "not in publication deskhook", Fix: "run deskhook setup"}
	a2 := a
	a2.Detail = "not in publication deskhook (again, differently)"
	b := cdc.Problem{Table: "public.tickets", Kind: "missing_column:status", Detail: "lacks column status", Fix: "rename it back"}
	pub := cdc.Problem{Kind: "publication_missing", Detail: "publication deskhook does not exist", Fix: "run deskhook setup"}
	steps := []struct {
		problems []cdc.Problem
		err      error
		logs     []string // substrings, one line each, in order
		gauge    map[string]string
	}{
		{problems: []cdc.Problem{a}, logs: []string{`level=ERROR msg="source schema problem: not in publication deskhook" table=public.ticket_thread problem=not_published fix="run deskhook setup"`},
			gauge: map[string]string{"public.ticket_thread": "not_published"}},
		{problems: []cdc.Problem{a}},
		{problems: []cdc.Problem{a2}, logs: []string{`level=ERROR msg="source schema problem: not in publication deskhook (again, differently)"`}},
		{problems: []cdc.Problem{a2, b}, logs: []string{`level=ERROR msg="source schema problem: lacks column status" table=public.tickets problem=missing_column:status`}},
		{err: errors.New("connection refused"), logs: []string{`level=WARN msg="cannot verify the source's schema; keeping the last verification's result" err="connection refused"`}},
		{err: errors.New("connection refused, differently")},
		{problems: []cdc.Problem{b}, logs: []string{`level=INFO msg="source schema verification works again"`,
			`level=INFO msg="source schema problem resolved" table=public.ticket_thread problem=not_published`},
			gauge: map[string]string{"public.tickets": "missing_column:status"}},
		{problems: []cdc.Problem{pub}, logs: []string{`level=ERROR msg="source schema problem: publication deskhook does not exist" table="publication deskhook"`,
			`level=INFO msg="source schema problem resolved" table=public.tickets`},
			gauge: map[string]string{"publication deskhook": "publication_missing"}},
		{problems: nil, logs: []string{`level=INFO msg="source schema problem resolved" table="publication deskhook" problem=publication_missing`},
			gauge: map[string]string{}},
	}
	for i, st := range steps {
		next, nextErr = st.problems, st.err
		s.once(context.Background())
		got := strings.Split(strings.TrimSpace(take()), "\n")
		if len(st.logs) == 0 {
			if got[0] != "" {
				t.Errorf("step %d: logged %q, want nothing", i, got)
			}
		} else if len(got) != len(st.logs) {
			t.Errorf("step %d: logged %q, want %d line(s)", i, got, len(st.logs))
		} else {
			for j, w := range st.logs {
				if !strings.Contains(got[j], w) {
					t.Errorf("step %d: line %q lacks %q", i, got[j], w)
				}
			}
		}
		if st.gauge != nil {
			if n := testutil.CollectAndCount(s.gauge); n != len(st.gauge) {
				t.Errorf("step %d: %d deskhook_source_problems samples, want %d", i, n, len(st.gauge))
			}
			for table, kind := range st.gauge {
				if v := testutil.ToFloat64(s.gauge.WithLabelValues(table, kind)); v != 1 {
					t.Errorf("step %d: deskhook_source_problems{%s,%s} = %v", i, table, kind, v)
				}
			}
		}
		want := len(st.problems)
		if st.err != nil {
			want = 2 // the last result stands: a2 and b
		}
		if r := s.readiness(); len(r) != want {
			t.Errorf("step %d: readiness %q, want %d reason(s)", i, r, want)
		}
	}

	// A failed read of the source while mapping is a reason of its own
	// until a batch maps again; clearing it asks for a verification.
	s.setReadErr(errors.New(`ERROR: permission denied for table ticket_attachment (SQLSTATE 42501)`))
	if r := s.readiness(); len(r) != 1 || !strings.Contains(r[0], "permission denied for table ticket_attachment") {
		t.Errorf("with a read error: %q", r)
	}
	select {
	case <-s.kickCh:
	default:
	}
	s.setReadErr(nil)
	if r := s.readiness(); len(r) != 0 {
		t.Errorf("after the read worked again: %q", r)
	}
	select {
	case <-s.kickCh:
	default:
		t.Error("no verification asked for after the source could be read again")
	}
}

// TestREADMEGrantsEveryTable: the README's GRANT names every table
// deskhook reads by default (source.tables), no more, no less, as
// config.example.yaml lists them.
func TestREADMEGrantsEveryTable(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)GRANT SELECT ON (.*?) TO deskhook;`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("README.md has no GRANT SELECT ON ... TO deskhook;")
	}
	var granted []string
	for _, name := range strings.Split(string(m[1]), ",") {
		granted = append(granted, strings.TrimSpace(name))
	}
	want := cdc.Defaults().Tables.List()
	slices.Sort(granted)
	slices.Sort(want)
	if !slices.Equal(granted, want) {
		t.Errorf("README grants SELECT on %q; deskhook reads %q", granted, want)
	}
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range cdc.Defaults().Tables.Keys() {
		if line := fmt.Sprintf("    %s: %s", key, cdc.Defaults().Tables.List()[i]); !strings.Contains(string(example), line) {
			t.Errorf("config.example.yaml lacks %q", line)
		}
	}
}
