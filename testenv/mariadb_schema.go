package testenv

import _ "embed"

// mysqlSchemaSQL creates Faveo v9's tables on MySQL/MariaDB; mysqlSeedSQL
// inserts the rows seed.sql gives PostgreSQL (their ids are the constants
// in seed.go).
var (
	//go:embed schema_mysql.sql
	mysqlSchemaSQL string
	//go:embed seed_mysql.sql
	mysqlSeedSQL string
)

// MySQLSchemaSQL returns the statements that build a MySQL/MariaDB test
// database: Faveo's schema followed by the seed rows, to be run in the
// session OpenFaveoMySQL opens with multiStatements=true. MariaDB and
// CreateDatabase apply it for you.
func MySQLSchemaSQL() string { return mysqlSchemaSQL + "\n" + mysqlSeedSQL }
