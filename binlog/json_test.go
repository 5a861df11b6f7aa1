package binlog

import (
	"errors"
	"testing"
)

func TestMySQLJSONText(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want string
	}{
		{"\x00\x01\x00\x0c\x00\x0b\x00\x01\x00\x05\xd2\x04a", `{"a": 1234}`},
		{"\x02\x03\x00\x0f\x00\x04\x01\x00\x04\x00\x00\x0c\x0d\x00\x01x", `[true, null, "x"]`},
		{"\x0c\x05a\"\n\x01b", `"a\"\n\u0001b"`},
		{"\x0b\x00\x00\x00\x00\x00\x00\xf8\x3f", `1.5`},
		{"\x02\x00\x00\x04\x00", `[]`},
		{"", `null`},
	} {
		got, err := mysqlJSONText([]byte(tc.doc))
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.doc, got, err, tc.want)
		}
	}
	// A document whose array contains itself, and one nested too deep:
	// errors, not endless recursion.
	for _, doc := range []string{"\x02\x01\x00\x07\x00\x02\x00\x00", "\x02\x01\x00\x07\x00\x02\x07\x00", "\x04\x07"} {
		if _, err := mysqlJSONText([]byte(doc)); !errors.Is(err, errJSON) {
			t.Errorf("%q: %v, want errJSON", doc, err)
		}
	}
}

func FuzzMySQLJSON(f *testing.F) {
	f.Add([]byte("\x00\x01\x00\x0c\x00\x0b\x00\x01\x00\x05\xd2\x04a"))
	f.Add([]byte("\x02\x03\x00\x0f\x00\x04\x01\x00\x04\x00\x00\x0c\x0d\x00\x01x"))
	f.Add([]byte("\x01\x01\x00\x00\x00\x14\x00\x00\x00\x12\x00\x00\x00\x01\x00\x04\x01\x00\x00\x00a"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _ = mysqlJSONText(doc) // terminates, never panics
	})
}
