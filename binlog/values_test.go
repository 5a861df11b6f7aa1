package binlog

import (
	"testing"
	"time"

	"github.com/deskhook/deskhook/testenv"
)

// allTypes is a table with a column of every type a helpdesk table may
// have, beyond Faveo's own.
const allTypes = "CREATE TABLE all_types (\n" +
	"id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,\n" +
	"ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned, mi mediumint, miu mediumint unsigned,\n" +
	"i int, iu int unsigned, bi bigint, biu bigint unsigned, b1 tinyint(1),\n" +
	"dec1 decimal(10,2), dec2 decimal(30,10), dec3 decimal(5,0) unsigned, f float, d double,\n" +
	"dt datetime, dt3 datetime(3), ts timestamp NULL DEFAULT NULL, ts6 timestamp(6) NULL DEFAULT NULL,\n" +
	"da date, tm time, tm2 time(2), yr year,\n" +
	"e enum('a','b','ç'), s set('x','y','z'), j json, bit5 bit(5), bit12 bit(12),\n" +
	"vc varchar(100), l1 varchar(50) CHARACTER SET latin1, ch char(10), bin varbinary(10), bl blob, tx text,\n" +
	"lt longtext, lb longblob\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"

var allTypesRows = []string{
	"INSERT INTO all_types VALUES (NULL, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, " +
		"-9223372036854775808, 18446744073709551615, 1, -12345678.90, 12345678901234567890.0123456789, 99999, " +
		"3.4028e38, -1.7976931348623157e308, '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '1970-01-01 00:00:01', " +
		"'2038-01-19 03:14:07.499999', '1000-01-01', '-838:59:59', '838:59:58.99', 1901, 'ç', 'x,z', " +
		"'{\"a\": [1, 2.5, \"ü\"], \"b\": null}', b'10101', b'111100001111', 'héllo wörld 😀', 'façade €', 'abc', " +
		"0x00ff10, 0x0001feff, 'text\\nwith\\ttabs', REPEAT('long ', 3000), 0xdeadbeef00)",
	"INSERT INTO all_types VALUES (NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, " +
		"'0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', " +
		"'0000-00-00', '00:00:00', '00:00:00.00', 0, '', '', '[]', 0, 0, '', '', '', '', '', '', '', '')",
	"INSERT INTO all_types VALUES (NULL, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, -0.0000000001, 1, " +
		"0.1, 123456789012345.6, '2024-02-29 12:34:56', '2024-06-30 22:30:00.5', '2024-06-30 22:30:00', " +
		"'2024-12-31 23:59:59.000001', '2024-02-29', '12:00:00', '-00:00:01.00', 2024, 'b', 'x,y,z', " +
		"'1e3', 1, 4095, 'x', 'ÿ', 'padded', 'b', 'b', 't', 'l', 'b')",
	"INSERT INTO all_types VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, " +
		"NULL, 1e-7, 1.5e20, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, " +
		"NULL, NULL, NULL, NULL, NULL, NULL)",
	"UPDATE all_types SET f = 1234567, d = 0.000123, dec1 = -0.01, ts = '2001-09-09 01:46:40', e = 'a' WHERE id = 3",
	"UPDATE all_types SET f = 100, d = 1e15, s = 'y' WHERE id = 4",
	"INSERT INTO all_types (f, d) VALUES (1e-7, -2.5e-9), (123456, 1e14), (0.000123456789, 99999999999999.9), " +
		"(3.33e-5, 123456789.123456789), (1e13, 12345678901234567)",
}

// Every column type, in the default time zone (the server's, UTC here)
// and in another one: the stream's text equals what SELECT returns through
// the client protocol in a session of that time zone.
func TestValuesEqualSelect(t *testing.T) {
	for _, zone := range []string{"", "+05:30", "-08:00"} {
		t.Run("zone"+zone, func(t *testing.T) {
			db := testenv.MariaDB(t)
			db.Exec(t, allTypes)
			db.Exec(t, "GRANT SELECT ON "+db.Name+".* TO ?@'%'", db.User)
			cfg := testConfig(db)
			cfg.Tables.Departments = "all_types"
			cfg.TimeZone = zone
			run := startReader(t, cfg, "", nil)
			for _, q := range allTypesRows {
				db.Exec(t, q)
			}
			db.Exec(t, "DELETE FROM all_types WHERE id = 2")
			m := mark(t, db)
			bs := run.c.waitFor(t, "the marker", time.Minute, sawMarker(m))
			rp := replica{}
			rp.apply(t, bs)
			if len(rp["all_types"]) != 8 {
				t.Fatalf("stream holds %d all_types rows, want 8", len(rp["all_types"]))
			}
			n := compareTable(t, "all_types", rp["all_types"], selectAll(t, db.DSN, "all_types", zone))
			t.Logf("compared %d values", n)
			// The deleted row's old image: zero dates as PDO shows them.
			for _, b := range bs {
				for _, c := range b.Changes {
					if c.Op.String() == "delete" && c.Table.Name == "all_types" {
						for col, want := range map[string]string{"dt": "0000-00-00 00:00:00", "dt3": "0000-00-00 00:00:00.000",
							"ts": "0000-00-00 00:00:00", "da": "0000-00-00", "yr": "0", "e": "", "bit5": "\x00", "tm2": "00:00:00.00"} {
							if got := c.Old.Text(col); got != want {
								t.Errorf("deleted row %s = %q, want %q", col, got, want)
							}
						}
					}
				}
			}
		})
	}
}
