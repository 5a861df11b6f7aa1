package cdc

import (
	"math"
	"testing"
	"time"

	"github.com/deskhook/deskhook/change"
)

func TestDecodeValue(t *testing.T) {
	ist := time.FixedZone("", 5*3600+30*60)
	tests := []struct {
		oid   uint32
		text  string
		kind  change.Kind
		int   int64
		float float64
		time  time.Time
	}{
		{oidInt8, "9007199254740993", change.KindInt, 9007199254740993, 0, time.Time{}},
		{oidInt4, "-12", change.KindInt, -12, 0, time.Time{}},
		{oidInt2, "7", change.KindInt, 7, 0, time.Time{}},
		{oidOID, "4294967295", change.KindInt, 4294967295, 0, time.Time{}},
		{oidBool, "t", change.KindBool, 1, 0, time.Time{}},
		{oidBool, "f", change.KindBool, 0, 0, time.Time{}},
		{oidFloat8, "1.5e-07", change.KindFloat, 0, 1.5e-07, time.Time{}},
		{oidFloat4, "Infinity", change.KindFloat, 0, math.Inf(1), time.Time{}},
		{oidNumeric, "12.50", change.KindFloat, 0, 12.5, time.Time{}},
		{oidNumeric, "1e400", change.KindText, 0, 0, time.Time{}}, // beyond float64: text kept
		{oidTimestamp, "2022-06-16 07:52:32", change.KindTime, 0, 0, time.Date(2022, 6, 16, 7, 52, 32, 0, time.UTC)},
		{oidTimestamp, "2022-06-16 07:52:32.123456", change.KindTime, 0, 0, time.Date(2022, 6, 16, 7, 52, 32, 123456000, time.UTC)},
		{oidTimestamp, "infinity", change.KindText, 0, 0, time.Time{}},
		{oidTimestamp, "0044-03-15 12:00:00 BC", change.KindText, 0, 0, time.Time{}},
		{oidTimestampTZ, "2022-06-16 07:52:32+00", change.KindTime, 0, 0, time.Date(2022, 6, 16, 7, 52, 32, 0, time.UTC)},
		{oidTimestampTZ, "2022-06-16 13:22:32.5+05:30", change.KindTime, 0, 0, time.Date(2022, 6, 16, 13, 22, 32, 5e8, ist)},
		{oidDate, "2022-06-16", change.KindTime, 0, 0, time.Date(2022, 6, 16, 0, 0, 0, 0, time.UTC)},
		{oidBytea, `\x00ff`, change.KindBytes, 0, 0, time.Time{}},
		{25, "plain text", change.KindText, 0, 0, time.Time{}},
		{1043, "", change.KindText, 0, 0, time.Time{}},
		{3802, `{"a": 1}`, change.KindText, 0, 0, time.Time{}},
		{oidInt8, "not a number", change.KindText, 0, 0, time.Time{}},
	}
	for _, tc := range tests {
		v := decodeValue(tc.oid, tc.text)
		if v.Text != tc.text {
			t.Errorf("%d %q: text %q not kept", tc.oid, tc.text, v.Text)
		}
		if v.Kind != tc.kind || v.Int != tc.int || v.Float != tc.float || !v.Time.Equal(tc.time) {
			t.Errorf("%d %q: got kind %d int %d float %g time %s; want kind %d int %d float %g time %s",
				tc.oid, tc.text, v.Kind, v.Int, v.Float, v.Time, tc.kind, tc.int, tc.float, tc.time)
		}
		if tc.kind == change.KindTime && tc.oid != oidTimestampTZ && v.Time.Location() != time.UTC {
			t.Errorf("%d %q: zone-less value not in UTC: %s", tc.oid, tc.text, v.Time.Location())
		}
	}
}

func TestParsePGDuration(t *testing.T) {
	tests := map[string]time.Duration{"10s": 10 * time.Second, "1min": time.Minute, "500ms": 500 * time.Millisecond,
		"0": 0, "60000": time.Minute, "2h": 2 * time.Hour}
	for in, want := range tests {
		if got, err := parsePGDuration(in); err != nil || got != want {
			t.Errorf("parsePGDuration(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "s", "10 parsecs", "1.5s"} {
		if _, err := parsePGDuration(bad); err == nil {
			t.Errorf("parsePGDuration(%q) accepted", bad)
		}
	}
}

func TestStatusInterval(t *testing.T) {
	tests := []struct{ cfg, timeout, want time.Duration }{
		{5 * time.Second, time.Minute, 5 * time.Second},
		{5 * time.Second, 10 * time.Second, 10 * time.Second / 3},
		{5 * time.Second, 0, 5 * time.Second}, // wal_sender_timeout disabled
		{30 * time.Second, 0, 10 * time.Second},
		{5 * time.Second, 100 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		if got := statusInterval(tc.cfg, tc.timeout); got != tc.want {
			t.Errorf("statusInterval(%s, %s) = %s, want %s", tc.cfg, tc.timeout, got, tc.want)
		}
	}
}

// FuzzParseISO: the fast path gives exactly what time.Parse gives, and
// takes nothing time.Parse refuses.
func FuzzParseISO(f *testing.F) {
	for _, s := range []string{"2022-06-16", "2022-06-16 07:52:32", "2022-06-16 07:52:32.123456", "2024-02-29",
		"2023-02-29", "2022-06-16 24:00:00", "2022-06-16 07:52:60", "0000-01-01 00:00:00.1", "2022-06-16 07:52:32.",
		"2022-6-16", "12022-06-16", "2022-06-16 07:52:32.1234567891", "2022-04-31", "2022-06-16T07:52:32"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, clock := range []bool{false, true} {
			layout := time.DateOnly
			if clock {
				layout = "2006-01-02 15:04:05.999999999"
			}
			got, ok := parseISO(s, clock)
			want, err := time.Parse(layout, s)
			if ok && (err != nil || !got.Equal(want) || got.Location() != want.Location()) {
				t.Errorf("parseISO(%q, %v) = %v; time.Parse: %v, %v", s, clock, got, want, err)
			}
		}
	})
}
