package mapping

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/deskhook/deskhook/change"
)

// Scalars are written the way MySQL hands them to Laravel, whatever the
// source's type: every non-null value a string; integers in decimal ("10");
// booleans "1"/"0" (MySQL's tinyint(1)); timestamps "Y-m-d H:i:s" in UTC
// without zone or fraction, dates "Y-m-d"; anything else (text, numerics,
// bytea) as the source printed it.

// appendScalar appends v as a JSON string (or null). KindUnchanged — a
// value the source could not send — is written as null; callers that can
// tell check for it first (hasUnchanged).
func appendScalar(dst []byte, v change.Value, colType string) []byte {
	switch v.Kind {
	case change.KindNull, change.KindUnchanged:
		return append(dst, "null"...)
	case change.KindInt:
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, v.Int, 10)
		return append(dst, '"')
	case change.KindBool:
		if v.Int != 0 {
			return append(dst, `"1"`...)
		}
		return append(dst, `"0"`...)
	case change.KindTime:
		dst = append(dst, '"')
		if colType == "date" {
			dst = appendDate(dst, v.Time.UTC())
		} else {
			dst = appendDateTime(dst, v.Time.UTC())
		}
		return append(dst, '"')
	}
	return appendJSONString(dst, v.Text)
}

// scalarText is a value as a payload shows it; ok is false for NULL.
func scalarText(v change.Value, colType string) (s string, ok bool) {
	switch v.Kind {
	case change.KindNull, change.KindUnchanged:
		return "", false
	case change.KindInt:
		return strconv.FormatInt(v.Int, 10), true
	case change.KindBool:
		if v.Int != 0 {
			return "1", true
		}
		return "0", true
	case change.KindTime:
		var b [20]byte
		if colType == "date" {
			return string(appendDate(b[:0], v.Time.UTC())), true
		}
		return string(appendDateTime(b[:0], v.Time.UTC())), true
	}
	return v.Text, true
}

func appendDate(dst []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return append(dst, t.Format(time.DateOnly)...)
	}
	return append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+mo/10), byte('0'+mo%10), '-', byte('0'+d/10), byte('0'+d%10))
}

func appendDateTime(dst []byte, t time.Time) []byte {
	dst = appendDate(dst, t)
	h, mi, s := t.Clock()
	return append(dst, ' ', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10))
}

// hasUnchanged reports whether row holds a value the source did not send.
func hasUnchanged(row *change.Row) bool {
	for _, v := range row.Values {
		if v.Kind == change.KindUnchanged {
			return true
		}
	}
	return false
}

// rowValue returns the named column's value and type.
func rowValue(row *change.Row, col string) (change.Value, string, bool) {
	if row == nil || row.Table == nil {
		return change.Value{}, "", false
	}
	i := row.Table.Col(col)
	if i < 0 || i >= len(row.Values) {
		return change.Value{}, "", false
	}
	return row.Values[i], row.Table.Columns[i].Type, true
}

// rowText returns the named column as a payload shows it ("" for NULL).
func rowText(row *change.Row, col string) string {
	v, typ, ok := rowValue(row, col)
	if !ok {
		return ""
	}
	s, _ := scalarText(v, typ)
	return s
}

// rowInt returns the named column as an integer; ok is false when it is
// missing, NULL or not a whole number.
func rowInt(row *change.Row, col string) (int64, bool) {
	v, _, ok := rowValue(row, col)
	if !ok {
		return 0, false
	}
	switch v.Kind {
	case change.KindInt, change.KindBool:
		return v.Int, true
	case change.KindText, change.KindFloat:
		n, err := strconv.ParseInt(strings.TrimSpace(v.Text), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// errNoID reports a row without a usable primary key.
var errNoID = errors.New(`no integer "id" column`)

// appendMembers appends row's columns as JSON object members ("k":v,...),
// without braces, in column order; skip names columns left out.
func appendMembers(dst []byte, row *change.Row, skip func(string) bool) []byte {
	first := true
	for i, col := range row.Table.Columns {
		if i >= len(row.Values) || (skip != nil && skip(col.Name)) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, col.Name)
		dst = append(dst, ':')
		dst = appendScalar(dst, row.Values[i], col.Type)
	}
	return dst
}

// renderStatus renders a ticket_status row's members; send_email, a JSON
// column that Laravel casts to an array, becomes a nested object with
// string scalars. badJSON reports a send_email that is not JSON (written as
// null, which is what Laravel's cast gives).
func renderStatus(row *change.Row) (members []byte, badJSON bool) {
	members = make([]byte, 0, 512)
	for i, col := range row.Table.Columns {
		if i >= len(row.Values) {
			continue
		}
		if i > 0 {
			members = append(members, ',')
		}
		members = appendJSONString(members, col.Name)
		members = append(members, ':')
		v := row.Values[i]
		if col.Name == "send_email" && (v.Kind == change.KindText || v.Kind == change.KindBytes) {
			var err error
			if members, err = appendJSONAsStrings(members, v.Text); err != nil {
				badJSON = true
			}
			continue
		}
		members = appendScalar(members, v, col.Type)
	}
	return members, badJSON
}

// appendJSONAsStrings appends the JSON document doc with every scalar made
// a string the way PHP would print it after json_decode (numbers as
// written, true/false as "1"/"0"), object key order kept. An empty or
// invalid document is written as null.
func appendJSONAsStrings(dst []byte, doc string) ([]byte, error) {
	if strings.TrimSpace(doc) == "" {
		return append(dst, "null"...), nil
	}
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	start := len(dst)
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > maxFormDepth {
			return errors.New("nesting too deep")
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			obj := v == '{'
			if obj {
				dst = append(dst, '{')
			} else {
				dst = append(dst, '[')
			}
			for i := 0; dec.More(); i++ {
				if i > 0 {
					dst = append(dst, ',')
				}
				if obj {
					kt, err := dec.Token()
					if err != nil {
						return err
					}
					dst = appendJSONString(dst, kt.(string))
					dst = append(dst, ':')
				}
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return err
			}
			if obj {
				dst = append(dst, '}')
			} else {
				dst = append(dst, ']')
			}
		case string:
			dst = appendJSONString(dst, v)
		case json.Number:
			dst = appendJSONString(dst, string(v))
		case bool:
			if v {
				dst = append(dst, `"1"`...)
			} else {
				dst = append(dst, `"0"`...)
			}
		case nil:
			dst = append(dst, "null"...)
		}
		return nil
	}
	err := walk(0)
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data")
		}
	}
	if err != nil {
		return append(dst[:start], "null"...), err
	}
	return dst, nil
}

// appendRawMembers appends members rendered earlier, with a separating comma
// when the object already has members.
func appendRawMembers(j *jsonBuf, members []byte) {
	if len(members) == 0 {
		return
	}
	if j.comma {
		j.b = append(j.b, ',')
	}
	j.b = append(j.b, members...)
	j.comma = true
}

// equalScalar reports whether two values show the same in a payload.
func equalScalar(a, b change.Value, colType string) bool {
	if a.Kind == b.Kind {
		// Without rendering (and allocating) when the kind tells.
		switch a.Kind {
		case change.KindNull, change.KindUnchanged:
			return true
		case change.KindInt:
			return a.Int == b.Int
		case change.KindBool:
			return (a.Int != 0) == (b.Int != 0)
		case change.KindText, change.KindFloat, change.KindBytes:
			return a.Text == b.Text
		case change.KindTime:
			var ab, bb [24]byte
			return string(appendScalar(ab[:0], a, colType)) == string(appendScalar(bb[:0], b, colType))
		}
	}
	as, aok := scalarText(a, colType)
	bs, bok := scalarText(b, colType)
	return aok == bok && as == bs
}
