package testenv

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
)

// schemaSQL creates Faveo's tables (translated from MySQL); seedSQL inserts
// the reference rows Faveo seeds plus a few departments, teams, agents, an
// admin and clients (their ids are the constants in seed.go).
var (
	//go:embed schema.sql
	schemaSQL string
	//go:embed seed.sql
	seedSQL string
)

// SchemaSQL returns the statements that build a test database: Faveo's
// schema followed by the seed rows. Postgres and CreateDatabase apply it for
// you; it is exported for tests that build a database by other means.
func SchemaSQL() string { return schemaSQL + "\n" + seedSQL }

// schemaHash identifies the schema and seed, so cached templates built from
// an older schema.sql are never used.
func schemaHash() string {
	sum := sha256.Sum256([]byte(SchemaSQL()))
	return hex.EncodeToString(sum[:])[:16]
}
