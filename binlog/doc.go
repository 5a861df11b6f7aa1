// Package binlog owns everything MySQL/MariaDB in deskhook's change stream,
// as package cdc does for PostgreSQL.
//
// It reads the server's row-based binary log as a replica would (Reader,
// with go-mysql's replication package and go-mysql's own retry turned
// off), keeps the transactions of the helpdesk tables in the DSN's
// database, and hands them over as source-neutral change.Batch values in
// commit order: whole committed transactions, large ones in bounded chunks,
// several at once to a change.BatchHandler, with the memory they hold
// bounded by queue_bytes. Column names come from the table maps
// (binlog_row_metadata=FULL); values are rendered as Faveo's Laravel sees
// them through PDO (values.go). Heartbeats show a dead connection, which
// is reconnected with backoff; DDL on a watched table is logged and the
// next table map's columns are used from then on.
//
// Positions: change.Position is the transaction's GTID sequence number in
// the one GTID domain (MariaDB) or source UUID (MySQL) the server writes;
// each batch's Resume token is the GTID (set) to resume after it. The
// server keeps no position for deskhook, so the consumer stores Resume
// with the position in the same commit as the transaction's events and
// passes it to the next Reader.Run (the durability rule). A position the
// server's binlogs no longer hold is ErrPositionLost, never a silent
// restart elsewhere; CheckRetention says how close the oldest binlog is.
//
// Now and AfterGap say where a store starts reading and where it reads on
// from after an accepted gap; SourceID names what the server's positions
// count. Check verifies the server's settings and the account's
// privileges, Verify the schema against what the mapping reads, PrintSQL
// prints the account and grants, and Lookup reads rows by primary key
// (rendered exactly as the stream renders them) and answers the mapping's
// aggregate reads (mapping.Aggregate): Faveo's rules stay in mapping.
package binlog
