// Package bench is deskhook's end-to-end benchmark (issue 7): it starts a
// throwaway PostgreSQL (fsync on), the recording receiver and the helpdesk
// simulator from package testenv, runs the daemon in the same process and
// measures the scenarios — a stored backlog, live load at 500 and 2,000
// events/s, 1% failing requests, a slow second endpoint, a million-row
// transaction, the outbox's size — together with the machine's bounds
// measured in the same run: a bare pgoutput consumer over the same backlog,
// a bare keep-alive HTTP client against the same receiver, and the disk's
// fdatasync latency.
//
// It owns the scenarios, the measurements (latency percentiles, the
// process's RSS and CPU time, profiles) and the report (a text table and
// JSON). cmd/deskhook-bench is its command line; BENCHMARKS.md holds a full
// run and what it showed.
package bench
