package change

import "testing"

// TestTextRow: a nil column is NULL, an empty one the empty text, and each
// value gets its own column's text.
func TestTextRow(t *testing.T) {
	tbl := &Table{Name: "tickets"}
	row := TextRow(tbl, [][]byte{[]byte("7"), nil, {}, []byte("abc")}, func(i int, s string) Value {
		return Value{Kind: KindText, Text: s + "/" + string(rune('0'+i))}
	})
	want := []Value{{Kind: KindText, Text: "7/0"}, {Kind: KindNull}, {Kind: KindText, Text: "/2"}, {Kind: KindText, Text: "abc/3"}}
	if row.Table != tbl || len(row.Values) != len(want) {
		t.Fatalf("row %+v", row)
	}
	for i, v := range row.Values {
		if v.Kind != want[i].Kind || v.Text != want[i].Text {
			t.Errorf("value %d: %+v, want %+v", i, v, want[i])
		}
	}
}
