package mapping

import (
	"strings"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
	"gopkg.in/yaml.v3"
)

// TestScalarsAsMySQLGivesThem: whatever the PostgreSQL type, a payload
// scalar is the string MySQL would hand Laravel.
func TestScalarsAsMySQLGivesThem(t *testing.T) {
	plus2 := time.FixedZone("+02", 2*3600)
	cases := []struct {
		name string
		v    change.Value
		typ  string
		want string
	}{
		{"null", change.Value{Kind: change.KindNull}, "int8", `null`},
		{"unchanged", change.Value{Kind: change.KindUnchanged}, "text", `null`},
		{"int", change.Value{Kind: change.KindInt, Int: 10, Text: "10"}, "int8", `"10"`},
		{"zero", change.Value{Kind: change.KindInt, Int: 0, Text: "0"}, "int2", `"0"`},
		{"negative", change.Value{Kind: change.KindInt, Int: -7, Text: "-7"}, "int4", `"-7"`},
		{"bool true", change.Value{Kind: change.KindBool, Int: 1, Text: "t"}, "bool", `"1"`},
		{"bool false", change.Value{Kind: change.KindBool, Int: 0, Text: "f"}, "bool", `"0"`},
		{"timestamp", change.Value{Kind: change.KindTime, Time: time.Date(2022, 6, 16, 7, 52, 32, 0, time.UTC),
			Text: "2022-06-16 07:52:32"}, "timestamp", `"2022-06-16 07:52:32"`},
		{"timestamp fraction dropped", change.Value{Kind: change.KindTime,
			Time: time.Date(2022, 6, 16, 7, 52, 32, 999999000, time.UTC)}, "timestamp", `"2022-06-16 07:52:32"`},
		{"timestamptz in UTC", change.Value{Kind: change.KindTime, Time: time.Date(2022, 6, 16, 9, 52, 32, 0, plus2)},
			"timestamptz", `"2022-06-16 07:52:32"`},
		{"date", change.Value{Kind: change.KindTime, Time: time.Date(2022, 6, 16, 0, 0, 0, 0, time.UTC)}, "date", `"2022-06-16"`},
		{"early year padded", change.Value{Kind: change.KindTime, Time: time.Date(33, 1, 2, 3, 4, 5, 0, time.UTC)},
			"timestamp", `"0033-01-02 03:04:05"`},
		{"numeric as printed", change.Value{Kind: change.KindFloat, Float: 12.5, Text: "12.50"}, "numeric", `"12.50"`},
		{"float as printed", change.Value{Kind: change.KindFloat, Float: 0.1, Text: "0.1"}, "float8", `"0.1"`},
		{"bytea as printed", change.Value{Kind: change.KindBytes, Text: `\x0102`}, "bytea", `"\\x0102"`},
		{"infinity stays text", change.Value{Kind: change.KindText, Text: "infinity"}, "timestamp", `"infinity"`},
		{"text", change.Value{Kind: change.KindText, Text: "<p>\"hi\"</p>\n"}, "text", `"<p>\"hi\"</p>\n"`},
		{"json text", change.Value{Kind: change.KindText, Text: `{"a":1}`}, "json", `"{\"a\":1}"`},
	}
	for _, tc := range cases {
		if got := string(appendScalar(nil, tc.v, tc.typ)); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
		s, ok := scalarText(tc.v, tc.typ)
		if want := tc.want != "null"; ok != want {
			t.Errorf("%s: scalarText ok = %v", tc.name, ok)
		} else if ok && string(appendJSONString(nil, s)) != tc.want {
			t.Errorf("%s: scalarText %q disagrees with appendScalar %s", tc.name, s, tc.want)
		}
	}
}

func TestAppendJSONAsStrings(t *testing.T) {
	for in, want := range map[string]string{
		`{"client":"1","admin":0,"x":true,"y":false,"z":null,"n":{"a":[1,"b"]}}`: `{"client":"1","admin":"0","x":"1","y":"0","z":null,"n":{"a":["1","b"]}}`,
		``:          `null`,
		`  `:        `null`,
		`{bad`:      `null`,
		`{"a":1} x`: `null`,
		`"str"`:     `"str"`,
		`1.50`:      `"1.50"`,
	} {
		got, _ := appendJSONAsStrings([]byte("X"), in)
		if string(got) != "X"+want {
			t.Errorf("%q: got %s, want %s", in, got[1:], want)
		}
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[int](3)
	for i := 1; i <= 3; i++ {
		c.put(int64(i), i)
	}
	c.get(1)     // 1 is now the most recent
	c.put(4, 4)  // evicts 2
	c.put(3, 33) // update in place
	c.remove(4)  // and removal
	c.put(5, 5)  // no eviction: 1, 3, 5
	if _, ok := c.get(2); ok {
		t.Error("2 should have been evicted")
	}
	for k, want := range map[int64]int{1: 1, 3: 33, 5: 5} {
		if v, ok := c.get(k); !ok || v != want {
			t.Errorf("get(%d) = %d, %v", k, v, ok)
		}
	}
	if c.len() != 3 {
		t.Errorf("len %d", c.len())
	}
	c.clear()
	if c.len() != 0 || c.head != nil || c.tail != nil {
		t.Error("clear left entries")
	}
}

func TestConfigValidate(t *testing.T) {
	c := Defaults()
	if err := c.Validate("mapping"); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.StateSize != DefaultStateSize || c.Tables.Threads != "ticket_thread" || c.TeamAssignment {
		t.Errorf("defaults: %+v", c)
	}
	bad := Config{AppKey: "base64:c2VjcmV0LWtleQ==", StateSize: -1,
		Tables: Tables{Tickets: "t", Threads: "t", Users: "u", Statuses: "s", StatusTypes: "st", Departments: "", Teams: "x"}}
	err := bad.Validate("mapping")
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"mapping.app_key: must be 32 bytes", "mapping.state_size: must be at least 1 (got -1)",
		`mapping.tables.threads: same table as mapping.tables.tickets (got "t")`, "mapping.tables.departments: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error leaks the key: %v", err)
	}
}

// FuzzConfig: any YAML either fails to parse or validates without panic,
// and errors never quote the app key.
func FuzzConfig(f *testing.F) {
	f.Add("app_key: base64:q2Ko9Zf1NnQ3m7bL0a8cW4xYtR6uV2sE9dH1jK5pG3A=\nteam_assignment: true\nstate_size: 5\n")
	f.Add("tables: {tickets: a, threads: a}\nstate_size: -3\napp_key: hunter2hunter2\n")
	f.Fuzz(func(t *testing.T, doc string) {
		var c Config
		if yaml.Unmarshal([]byte(doc), &c) != nil {
			return
		}
		c.SetDefaults()
		err := c.Validate("mapping")
		if err != nil && len(c.AppKey) > 8 && strings.Contains(err.Error(), c.AppKey) {
			t.Fatalf("error quotes the app key: %v", err)
		}
	})
}
