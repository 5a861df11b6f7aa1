// Package testenv gives tests, the demo and the benchmark a real helpdesk to
// run against: throwaway PostgreSQL clusters (Postgres, StartServer) and
// MariaDB servers (MariaDB, StartMariaDB) holding Faveo's schema, a
// simulator that writes to either exactly as Faveo does (Helpdesk), a load
// generator on top of it (Load, LoadMySQL), and a recording HTTP receiver
// (Receiver).
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
// MariaDB(t) does the same with a MariaDB server, from a data directory
// made by mariadb-install-db and cached per machine and version; each call
// creates a database holding Faveo v9's MySQL schema and seed rows, and an
// account for deskhook with the replication privileges and SELECT on it.
// The server writes a row-based binlog with full row images and column
// metadata, and GTIDs. With DESKHOOK_TEST_MYSQL_DSN set, databases are
// created on that MySQL or MariaDB server instead.
//
// Servers listen on 127.0.0.1 only and on a Unix-domain socket in their own
// directory; PostgreSQL with wal_level=logical and trust authentication
// (replication included), MariaDB with a password-less root. When the test
// process runs as root the servers run as the unprivileged user "nobody",
// since PostgreSQL refuses to run as root. A small reaper process per server
// stops it and removes its files if the test process dies without cleaning
// up.
package testenv
