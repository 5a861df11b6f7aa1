package binlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zone names resolve on machines without /usr/share/zoneinfo
)

// zoneByName resolves a time zone as MySQL and the configuration name one:
// "UTC", an IANA name, or an offset "+hh:mm" / "-hh:mm".
func zoneByName(name string) (*time.Location, error) {
	switch {
	case name == "":
		return nil, errors.New("no time zone")
	case strings.EqualFold(name, "UTC"), name == "+00:00", name == "-00:00", name == "+0:00":
		return time.UTC, nil
	case name[0] == '+' || name[0] == '-':
		h, m, ok := strings.Cut(name[1:], ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || hh > 14 || mm > 59 || len(m) != 2 || len(h) > 2 {
			return nil, errors.New("not an offset of the form +hh:mm")
		}
		off := (hh*60 + mm) * 60
		if name[0] == '-' {
			off = -off
		}
		return time.FixedZone(name, off), nil
	case strings.EqualFold(name, "SYSTEM"):
		return nil, errors.New("SYSTEM is the server's zone; name the zone itself (e.g. Europe/Berlin)")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, errors.New("unknown time zone: use an IANA name such as Europe/Berlin, UTC, or an offset such as +02:00")
	}
	return loc, nil
}

// serverZone resolves the server's time zone as Faveo's sessions see it:
// @@global.time_zone, or for SYSTEM the system zone the server started
// with, which must be UTC (or GMT) or an offset to be taken as it is.
func serverZone(global, system string) (*time.Location, error) {
	if !strings.EqualFold(global, "SYSTEM") {
		loc, err := zoneByName(global)
		if err != nil {
			return nil, fmt.Errorf("the server's time_zone %q: %w; set source.time_zone to the helpdesk's zone", global, err)
		}
		return loc, nil
	}
	switch strings.ToUpper(system) {
	case "UTC", "GMT", "ETC/UTC", "Z", "UCT", "UNIVERSAL", "ZULU":
		return time.UTC, nil
	}
	if loc, err := zoneByName(system); err == nil && (system[0] == '+' || system[0] == '-') {
		return loc, nil
	}
	return nil, fmt.Errorf("the server's time zone is SYSTEM, whose system zone %q is an abbreviation that does not "+
		"say its daylight saving rules; set source.time_zone to the helpdesk's IANA zone (e.g. Europe/Berlin), "+
		"or the server's default_time_zone", system)
}
