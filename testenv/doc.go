// Package testenv gives tests, the demo and the benchmark a real helpdesk to
// run against: throwaway PostgreSQL clusters holding Faveo's schema
// (Postgres, StartServer), a simulator that writes to them exactly as Faveo
// does (Helpdesk), a load generator on top of it (Load), and a recording HTTP
// receiver (Receiver).
//
// A test asks for a database with Postgres(t). The first call in a test
// process starts a cluster shared by the whole process, from an initdb'd data
// directory cached per machine and PostgreSQL version (schema and seed rows
// already loaded into a template database); every call then creates a fresh
// database from that template, which is dropped at cleanup. Tests that stop
// or reconfigure the server ask for a cluster of their own with Dedicated()
// or WithSettings. With DESKHOOK_TEST_DSN set, shared databases are created
// on that server instead.
//
// Clusters listen on 127.0.0.1 only, with wal_level=logical and trust
// authentication (replication included). When the test process runs as root
// the server runs as the unprivileged user "nobody", since PostgreSQL refuses
// to run as root. A small reaper process per cluster stops it and removes its
// files if the test process dies without cleaning up.
package testenv
