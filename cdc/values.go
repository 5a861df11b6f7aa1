package cdc

import (
	"strconv"
	"time"

	"github.com/deskhook/deskhook/change"
)

// Built-in type OIDs the decoder treats specially (pg_type.dat).
const (
	oidBool        = 16
	oidBytea       = 17
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
)

// kindOf says how values of a column type are decoded.
func kindOf(oid uint32) change.Kind {
	switch oid {
	case oidInt2, oidInt4, oidInt8, oidOID:
		return change.KindInt
	case oidBool:
		return change.KindBool
	case oidFloat4, oidFloat8, oidNumeric:
		return change.KindFloat
	case oidDate, oidTimestamp, oidTimestampTZ:
		return change.KindTime
	case oidBytea:
		return change.KindBytes
	}
	return change.KindText
}

// decodeValue turns the text form PostgreSQL printed for a column of type
// oid into a Value. The text is always kept; when it does not parse as the
// type promises (a date BC, 'infinity', a numeric beyond float64), the value
// stays KindText so nothing is lost or invented.
func decodeValue(oid uint32, text string) change.Value {
	v := change.Value{Kind: change.KindText, Text: text}
	switch kindOf(oid) {
	case change.KindInt:
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			v.Kind, v.Int = change.KindInt, n
		}
	case change.KindBool:
		switch text {
		case "t":
			v.Kind, v.Int = change.KindBool, 1
		case "f":
			v.Kind, v.Int = change.KindBool, 0
		}
	case change.KindFloat:
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			v.Kind, v.Float = change.KindFloat, f
		}
	case change.KindTime:
		if t, ok := parseTime(oid, text); ok {
			v.Kind, v.Time = change.KindTime, t
		}
	case change.KindBytes:
		v.Kind = change.KindBytes
	}
	return v
}

// parseTime parses PostgreSQL's ISO DateStyle output (the reader sets
// DateStyle=ISO on its connection): "2006-01-02", "2006-01-02 15:04:05[.ffffff]"
// and, for timestamptz, a zone offset "+hh[:mm[:ss]]". Values without a zone
// come back in UTC so their wall clock reads as printed.
func parseTime(oid uint32, s string) (time.Time, bool) {
	switch oid {
	case oidDate:
		t, err := time.Parse(time.DateOnly, s)
		return t, err == nil
	case oidTimestamp:
		t, err := time.Parse("2006-01-02 15:04:05.999999999", s)
		return t, err == nil
	case oidTimestampTZ:
		for _, layout := range tzLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

var tzLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00:00",
}
