package binlog

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/deskhook/deskhook/change"
)

// Values are rendered as Faveo's Laravel sees them through PDO: the text
// MySQL's client protocol sends for the column, in a session with
// character set utf8mb4 and the helpdesk's time zone. Integers in decimal
// (unsigned ones as unsigned), DECIMAL with its scale, TIMESTAMP converted
// from the binlog's UTC seconds to the time zone and DATETIME as the wall
// clock it is, both "Y-m-d H:i:s" with the column's fraction digits, zero
// dates as "0000-00-00 00:00:00", ENUM and SET as their labels, BLOB and
// TEXT bytes as they are (Faveo's LONGBLOB title and body are text), latin1
// text converted to UTF-8 as the server converts it for a utf8mb4 session.
// The Value's Kind and typed field follow from the text, as in package
// cdc: a text that does not parse as its type (a zero date) stays
// KindText.

// column is how one column of a table map is decoded.
type column struct {
	name     string
	typ      byte // the real type: ENUM and SET resolved from STRING's metadata
	meta     uint16
	unsigned bool
	labels   []string // ENUM and SET labels
	charset  charset
	key      bool
}

type charset uint8

const (
	charsetUTF8   charset = iota // utf8mb3, utf8mb4, ascii and others passed as they are
	charsetBinary                // binary strings and BLOBs
	charsetLatin1                // latin1 (MySQL's is Windows-1252), converted to UTF-8
)

// charsetOf classifies a collation id.
func charsetOf(collation uint64) charset {
	switch collation {
	case 63:
		return charsetBinary
	case 5, 8, 15, 31, 47, 48, 49, 94:
		return charsetLatin1
	}
	return charsetUTF8
}

// typeName is the column's type as SHOW COLUMNS would name it, roughly
// (informational: change.Column.Type).
func (c *column) typeName() string {
	var n string
	switch c.typ {
	case mysql.MYSQL_TYPE_TINY:
		n = "tinyint"
	case mysql.MYSQL_TYPE_SHORT:
		n = "smallint"
	case mysql.MYSQL_TYPE_INT24:
		n = "mediumint"
	case mysql.MYSQL_TYPE_LONG:
		n = "int"
	case mysql.MYSQL_TYPE_LONGLONG:
		n = "bigint"
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		n = "decimal"
	case mysql.MYSQL_TYPE_FLOAT:
		n = "float"
	case mysql.MYSQL_TYPE_DOUBLE:
		n = "double"
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2:
		return "timestamp"
	case mysql.MYSQL_TYPE_DATETIME, mysql.MYSQL_TYPE_DATETIME2:
		return "datetime"
	case mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		return "date"
	case mysql.MYSQL_TYPE_TIME, mysql.MYSQL_TYPE_TIME2:
		return "time"
	case mysql.MYSQL_TYPE_YEAR:
		return "year"
	case mysql.MYSQL_TYPE_ENUM:
		return "enum"
	case mysql.MYSQL_TYPE_SET:
		return "set"
	case mysql.MYSQL_TYPE_BIT:
		return "bit"
	case mysql.MYSQL_TYPE_JSON:
		return "json"
	case mysql.MYSQL_TYPE_GEOMETRY:
		return "geometry"
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING:
		if c.charset == charsetBinary {
			return "varbinary"
		}
		return "varchar"
	case mysql.MYSQL_TYPE_STRING:
		if c.charset == charsetBinary {
			return "binary"
		}
		return "char"
	case mysql.MYSQL_TYPE_BLOB:
		size := [...]string{"", "tiny", "", "medium", "long"}
		s := ""
		if int(c.meta) < len(size) {
			s = size[c.meta]
		}
		if c.charset == charsetBinary {
			return s + "blob"
		}
		return s + "text"
	default:
		return fmt.Sprintf("type%d", c.typ)
	}
	if c.unsigned {
		n += " unsigned"
	}
	return n
}

// value turns what go-mysql decoded for this column into a Value.
func (c *column) value(v any, loc *time.Location) (change.Value, error) {
	switch x := v.(type) {
	case nil:
		return change.Value{Kind: change.KindNull}, nil
	case int8:
		if c.unsigned {
			return uintValue(uint64(uint8(x))), nil
		}
		return intValue(int64(x)), nil
	case int16:
		if c.unsigned {
			return uintValue(uint64(uint16(x))), nil
		}
		return intValue(int64(x)), nil
	case int32:
		if c.unsigned {
			if c.typ == mysql.MYSQL_TYPE_INT24 {
				return uintValue(uint64(uint32(x) & 0xffffff)), nil
			}
			return uintValue(uint64(uint32(x))), nil
		}
		return intValue(int64(x)), nil
	case int64:
		switch c.typ {
		case mysql.MYSQL_TYPE_ENUM:
			return c.enumValue(x)
		case mysql.MYSQL_TYPE_SET:
			return c.setValue(x)
		case mysql.MYSQL_TYPE_BIT:
			return bitValue(x, c.meta), nil
		}
		if c.unsigned {
			return uintValue(uint64(x)), nil
		}
		return intValue(x), nil
	case int: // YEAR: 0 or 1901-2155
		return intValue(int64(x)), nil
	case float32:
		return floatValue(float64(x), 32), nil
	case float64:
		return floatValue(x, 64), nil
	case string:
		return c.stringValue(x, loc)
	case []byte:
		return c.bytesValue(x)
	}
	return change.Value{}, fmt.Errorf("column %s (%s): unexpected value of Go type %T", c.name, c.typeName(), v)
}

func intValue(n int64) change.Value {
	return change.Value{Kind: change.KindInt, Int: n, Text: strconv.FormatInt(n, 10)}
}

// uintValue is an unsigned integer; one beyond int64 is kept as text.
func uintValue(n uint64) change.Value {
	if n > math.MaxInt64 {
		return change.Value{Kind: change.KindText, Text: strconv.FormatUint(n, 10)}
	}
	return intValue(int64(n))
}

// floatValue prints a FLOAT or DOUBLE as MariaDB's client protocol does,
// which is Go's %g: a DOUBLE with the shortest digits that read back as
// the same value, a FLOAT with 6 significant digits; exponent form (1e+14,
// 1e-05) below 1e-4 and from 1e6 (shortest) or 10^precision on. MySQL 8
// prints FLOAT with its shortest digits instead; Faveo's tables have no
// FLOAT or DOUBLE column.
func floatValue(f float64, bits int) change.Value {
	v := change.Value{Kind: change.KindFloat, Float: f}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		v.Kind = change.KindText
	}
	if bits == 32 {
		v.Text = strconv.FormatFloat(f, 'g', 6, 32)
		v.Float, _ = strconv.ParseFloat(v.Text, 64) // the value the text says, as a lookup reads it
	} else {
		v.Text = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return v
}

func (c *column) enumValue(i int64) (change.Value, error) {
	switch {
	case i == 0: // the error value MySQL stores for an invalid label in a non-strict session
		return change.Value{Kind: change.KindText}, nil
	case i < 0 || int(i) > len(c.labels):
		return change.Value{}, fmt.Errorf("column %s: ENUM index %d beyond its %d labels", c.name, i, len(c.labels))
	}
	return change.Value{Kind: change.KindText, Text: c.labels[i-1]}, nil
}

func (c *column) setValue(bits int64) (change.Value, error) {
	var b strings.Builder
	for i := 0; i < 64 && bits>>i != 0; i++ {
		if bits>>i&1 == 0 {
			continue
		}
		if i >= len(c.labels) {
			return change.Value{}, fmt.Errorf("column %s: SET member %d beyond its %d labels", c.name, i+1, len(c.labels))
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c.labels[i])
	}
	return change.Value{Kind: change.KindText, Text: b.String()}, nil
}

// bitValue is a BIT(n) as the client protocol sends it: (n+7)/8 bytes,
// big-endian.
func bitValue(x int64, meta uint16) change.Value {
	nbits := int(meta>>8)*8 + int(meta&0xff)
	n := (nbits + 7) / 8
	b := make([]byte, n)
	for i := n - 1; i >= 0; i-- {
		b[i] = byte(x)
		x >>= 8
	}
	return change.Value{Kind: change.KindBytes, Text: string(b)}
}

// stringValue is a value go-mysql decoded as text: character strings,
// DECIMAL, JSON (MySQL's binary JSON printed), and dates and times
// (TIMESTAMP already in the helpdesk's time zone).
func (c *column) stringValue(s string, loc *time.Location) (change.Value, error) {
	v := change.Value{Kind: change.KindText, Text: s}
	switch c.typ {
	case mysql.MYSQL_TYPE_NEWDECIMAL, mysql.MYSQL_TYPE_DECIMAL:
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			v.Kind, v.Float = change.KindFloat, f
		}
	case mysql.MYSQL_TYPE_TIMESTAMP, mysql.MYSQL_TYPE_TIMESTAMP2, mysql.MYSQL_TYPE_DATETIME,
		mysql.MYSQL_TYPE_DATETIME2, mysql.MYSQL_TYPE_DATE, mysql.MYSQL_TYPE_NEWDATE:
		if t, ok := parseWallClock(s); ok {
			v.Kind, v.Time = change.KindTime, t
		}
	case mysql.MYSQL_TYPE_TIME2:
		// go-mysql leaves out a fraction of zero; the server prints its
		// digits.
		if c.meta > 0 && c.meta <= 6 && !strings.Contains(s, ".") {
			v.Text = s + "." + strings.Repeat("0", int(c.meta))
		}
	case mysql.MYSQL_TYPE_VARCHAR, mysql.MYSQL_TYPE_VAR_STRING, mysql.MYSQL_TYPE_STRING:
		if c.charset == charsetLatin1 {
			v.Text = latin1ToUTF8(s)
		}
	}
	return v, nil
}

// bytesValue is a BLOB, TEXT (MariaDB's JSON is one), MySQL JSON or
// GEOMETRY value.
// The text shares the event's memory: go-mysql reads each event into a
// buffer of its own that it never reuses, and the batch counts the event's
// bytes.
func (c *column) bytesValue(b []byte) (change.Value, error) {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	switch {
	case c.typ == mysql.MYSQL_TYPE_JSON: // MySQL's binary JSON (see decodeRows)
		text, err := mysqlJSONText(b)
		if err != nil {
			return change.Value{}, fmt.Errorf("column %s: %w", c.name, err)
		}
		return change.Value{Kind: change.KindText, Text: text}, nil
	case c.typ == mysql.MYSQL_TYPE_GEOMETRY:
		return change.Value{Kind: change.KindBytes, Text: s}, nil
	case c.charset == charsetLatin1:
		s = latin1ToUTF8(s)
	}
	return change.Value{Kind: change.KindText, Text: s}, nil
}

// parseWallClock parses "YYYY-MM-DD[ hh:mm:ss[.f]]" into a time in UTC
// (its wall clock as printed, as change.KindTime wants). Zero dates and
// dates with a zero month or day do not parse.
func parseWallClock(s string) (time.Time, bool) {
	layout := time.DateOnly
	if len(s) > 10 {
		layout = "2006-01-02 15:04:05.999999"
	}
	if strings.HasPrefix(s, "0000-") || strings.Contains(s[:min(len(s), 10)], "-00") {
		return time.Time{}, false
	}
	t, err := time.Parse(layout, s)
	return t, err == nil
}

// cp1252 maps the bytes 0x80-0x9f of MySQL's latin1 (which is Windows-1252,
// with the five bytes it leaves undefined mapped to the C1 controls).
var cp1252 = [32]rune{
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
	0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
}

func latin1ToUTF8(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	b := make([]byte, 0, len(s)+len(s)/2)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x80:
			b = append(b, c)
		case c < 0xa0:
			b = utf8.AppendRune(b, cp1252[c-0x80])
		default:
			b = utf8.AppendRune(b, rune(c))
		}
	}
	return string(b)
}
