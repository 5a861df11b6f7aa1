package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
)

type mysqlColumn struct {
	name, typ string
	null      bool
	def       sql.NullString // the default as information_schema shows it; "NULL" for DEFAULT NULL, invalid for none
}

func (c mysqlColumn) String() string {
	s := c.name + " " + c.typ
	if !c.null {
		s += " NOT NULL"
	}
	if c.def.Valid {
		s += " DEFAULT " + c.def.String
	}
	return s
}

func mysqlColumns(t *testing.T, pool *sql.DB, db, table string) []mysqlColumn {
	t.Helper()
	rows, err := pool.Query(`SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES', COLUMN_DEFAULT
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []mysqlColumn
	for rows.Next() {
		var c mysqlColumn
		if err := rows.Scan(&c.name, &c.typ, &c.null, &c.def); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		t.Fatalf("no table %s", table)
	}
	return cols
}

// The tables the binlog reader decodes most are column for column Faveo
// v9's (copied from its MariaDB schema dump): order, types, nullability,
// defaults — the zero date's column has none — and character sets.
func TestMySQLSchemaIsFaveos(t *testing.T) {
	db := MariaDB(t)
	pool := db.Pool(t)
	want := map[string]string{
		"tickets": `id int(10) unsigned NOT NULL
ticket_number varchar(255) NOT NULL
user_id int(10) unsigned DEFAULT NULL
dept_id int(10) unsigned DEFAULT NULL
team_id int(10) unsigned DEFAULT NULL
priority_id int(10) unsigned DEFAULT NULL
sla int(10) unsigned DEFAULT NULL
help_topic_id int(10) unsigned DEFAULT NULL
status int(10) unsigned DEFAULT NULL
rating tinyint(1) NOT NULL
ratingreply tinyint(1) NOT NULL
flags int(11) NOT NULL
ip_address int(11) NOT NULL
assigned_to int(10) unsigned DEFAULT NULL
lock_by int(11) NOT NULL
lock_at datetime DEFAULT NULL
source int(10) unsigned DEFAULT NULL
isoverdue int(11) NOT NULL
reopened int(11) NOT NULL
isanswered int(11) NOT NULL
html int(11) NOT NULL
is_deleted int(11) NOT NULL
closed int(11) NOT NULL
is_transferred tinyint(1) NOT NULL
transferred_at datetime NOT NULL
reopened_at datetime DEFAULT NULL
duedate datetime DEFAULT NULL
closed_at datetime DEFAULT NULL
last_message_at datetime DEFAULT NULL
first_response_time datetime DEFAULT NULL
created_at timestamp DEFAULT NULL
updated_at timestamp DEFAULT NULL
resolution_time int(11) DEFAULT NULL
is_response_sla tinyint(1) DEFAULT NULL
is_resolution_sla tinyint(1) DEFAULT NULL
type int(10) unsigned DEFAULT NULL
last_estd_duedate timestamp DEFAULT NULL
location_id int(11) DEFAULT NULL
creator_id int(10) unsigned DEFAULT NULL
response_due_by timestamp DEFAULT NULL
is_manual_duedate tinyint(1) NOT NULL DEFAULT 0
average_response_time int(11) DEFAULT NULL
resolution_due_by timestamp DEFAULT NULL
parent_id int(10) unsigned DEFAULT NULL
parent_ticket_id varchar(255) DEFAULT NULL
category_id int(10) unsigned DEFAULT NULL
status_changed_at timestamp DEFAULT NULL
assigned_at timestamp DEFAULT NULL`,
		"ticket_thread": `id int(10) unsigned NOT NULL
ticket_id int(10) unsigned DEFAULT NULL
user_id int(10) unsigned DEFAULT NULL
thread_type varchar(255) DEFAULT NULL
poster varchar(255) NOT NULL
source int(10) unsigned DEFAULT NULL
reply_rating int(11) NOT NULL
rating_count int(11) NOT NULL
is_internal tinyint(1) NOT NULL
title longblob DEFAULT NULL
body longblob DEFAULT NULL
format varchar(255) NOT NULL
ip_address varchar(255) NOT NULL
created_at timestamp DEFAULT NULL
updated_at timestamp DEFAULT NULL
response_time int(11) DEFAULT NULL`,
		"ticket_collaborator": `id int(10) unsigned NOT NULL
isactive tinyint(1) NOT NULL
ticket_id int(10) unsigned DEFAULT NULL
user_id int(10) unsigned DEFAULT NULL
role varchar(255) NOT NULL
created_at timestamp DEFAULT NULL
updated_at timestamp DEFAULT NULL`,
		"ticket_attachment": `id int(10) unsigned NOT NULL
name varchar(255) NOT NULL
thread_id int(10) unsigned DEFAULT NULL
size varchar(255) NOT NULL
type varchar(255) NOT NULL
poster varchar(255) NOT NULL
created_at timestamp DEFAULT NULL
updated_at timestamp DEFAULT NULL
file mediumblob DEFAULT NULL
content_id varchar(255) DEFAULT NULL`,
	}
	for table, w := range want {
		var got []string
		for _, c := range mysqlColumns(t, pool, db.Name, table) {
			got = append(got, c.String())
		}
		if g := strings.Join(got, "\n"); g != w {
			t.Errorf("%s columns:\n%s\nwant Faveo's:\n%s", table, g, w)
		}
	}
	for table, collation := range map[string]string{"tickets": "utf8mb3_unicode_ci", "ticket_thread": "utf8mb4_general_ci",
		"users": "utf8mb3_unicode_ci", "ticket_status": "utf8mb3_unicode_ci"} {
		var got, engine string
		err := pool.QueryRow(`SELECT TABLE_COLLATION, ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
			db.Name, table).Scan(&got, &engine)
		if err != nil || got != collation || engine != "InnoDB" {
			t.Errorf("%s: collation %q engine %q (%v), want %s InnoDB", table, got, engine, err, collation)
		}
	}
}

// The two test schemas differ only where Faveo v9 on MySQL and the older
// Faveo the PostgreSQL schema follows differ. Each difference is named in
// SchemaDifferences, so a change to either schema shows up and the payload
// comparisons know which columns a MySQL row adds or lacks.
func TestMySQLAndPostgresSchemasDifferAsDocumented(t *testing.T) {
	my := MariaDB(t)
	pg := Postgres(t)
	mpool, ppool := my.Pool(t), pg.Pool(t)
	tables := SchemaDifferences
	for table, d := range tables {
		var myCols []string
		for _, c := range mysqlColumns(t, mpool, my.Name, table) {
			myCols = append(myCols, c.name)
		}
		rows, err := ppool.Query(context.Background(), `SELECT column_name FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`, table)
		if err != nil {
			t.Fatal(err)
		}
		var pgCols []string
		for rows.Next() {
			var c string
			rows.Scan(&c)
			pgCols = append(pgCols, c)
		}
		rows.Close()
		var onlyPG, onlyMy, commonPG, commonMy []string
		for _, c := range pgCols {
			if slices.Contains(myCols, c) {
				commonPG = append(commonPG, c)
			} else {
				onlyPG = append(onlyPG, c)
			}
		}
		for _, c := range myCols {
			if slices.Contains(pgCols, c) {
				commonMy = append(commonMy, c)
			} else {
				onlyMy = append(onlyMy, c)
			}
		}
		if fmt.Sprint(onlyPG) != fmt.Sprint(d.OnlyPG) || fmt.Sprint(onlyMy) != fmt.Sprint(d.OnlyMySQL) {
			t.Errorf("%s: only in PostgreSQL %v, only in MySQL %v; want %v and %v", table, onlyPG, onlyMy, d.OnlyPG, d.OnlyMySQL)
		}
		if sameOrder := slices.Equal(commonPG, commonMy); sameOrder != d.SameOrderCommon {
			t.Errorf("%s: common columns in the same order %v, want %v:\nPostgreSQL %v\nMySQL      %v",
				table, sameOrder, d.SameOrderCommon, commonPG, commonMy)
		}
	}
}
