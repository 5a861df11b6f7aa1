package mapping

// Users as Faveo's User model shows them: its toArray (thread.user) and
// the five-column form of requester / replied_by, each with the model's
// appends. The rules are those of Faveo's App\User (the model whose hidden
// columns and appends docs/faveo-webhooks.md, "Users", lists), including
// PHP's notion of truth ("" and "0" are false) and its loose comparison
// `== 1`.

import (
	"crypto/md5"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"

	"github.com/deskhook/deskhook/change"
)

// hiddenUserColumns are the users columns Faveo's User model hides from
// its array form.
var hiddenUserColumns = map[string]bool{
	"password": true, "remember_token": true, "hash_ids": true,
	"google2fa_secret": true, "mobile_verify": true, "email_verify": true,
}

// shortUserColumns are the columns of requester and replied_by.
var shortUserColumns = [...]string{"id", "first_name", "last_name", "email", "user_name"}

// renderUser renders a users row in both forms the payloads use: full (the
// whole row minus the hidden columns, through the model's accessors, plus
// the appends: thread.user) and short (id, first_name, last_name, email,
// user_name plus the appends: requester, replied_by).
//
// The appends are computed from the whole row in both forms. Faveo builds
// requester and replied_by from a five-column select, so there its
// email_verified and mobile_verified always read "0" and meta_name never
// falls back to the mobile number; the database holds the real values and
// deskhook shows them.
func renderUser(row *change.Row) (full, short []byte) {
	appends := userAppends(row)
	email := rowText(row, "email")

	full = make([]byte, 0, 1024)
	first := true
	for i, col := range row.Table.Columns {
		if i >= len(row.Values) || hiddenUserColumns[col.Name] {
			continue
		}
		if !first {
			full = append(full, ',')
		}
		first = false
		full = appendJSONString(full, col.Name)
		full = append(full, ':')
		v := row.Values[i]
		switch col.Name {
		case "profile_pic":
			// getProfilePicAttribute: $value ?: Gravatar::src($email). With
			// no email Faveo shows an image of its own installation, whose
			// URL the database does not hold: the Gravatar default stands in.
			if pic, _ := scalarText(v, col.Type); !phpTrue(pic) {
				full = appendJSONString(full, gravatarURL(email))
				continue
			}
		case "mobile":
			// getMobileAttribute: (string) $value, so NULL shows as "".
			s, _ := scalarText(v, col.Type)
			full = appendJSONString(full, s)
			continue
		case "country_code":
			// getCountryCodeAttribute: '' unless is_numeric.
			if s, _ := scalarText(v, col.Type); !phpNumeric(s) {
				full = appendJSONString(full, "")
				continue
			}
		}
		full = appendScalar(full, v, col.Type)
	}
	full = appendAppends(full, !first, appends)

	short = make([]byte, 0, 320)
	first = true
	for _, name := range shortUserColumns {
		v, typ, ok := rowValue(row, name)
		if !ok {
			continue
		}
		if !first {
			short = append(short, ',')
		}
		first = false
		short = appendJSONString(short, name)
		short = append(short, ':')
		short = appendScalar(short, v, typ)
	}
	short = appendAppends(short, !first, appends)
	return full, short
}

func appendAppends(dst []byte, comma bool, kv [4][2]string) []byte {
	for _, p := range kv {
		if comma {
			dst = append(dst, ',')
		}
		comma = true
		dst = appendJSONString(dst, p[0])
		dst = append(dst, ':')
		dst = appendJSONString(dst, p[1])
	}
	return dst
}

// userAppends computes the User model's appends:
//   - full_name (name()): "first last" when both are set, else the first
//     name when set, else the user name;
//   - meta_name: trim("first last") followed by " <email>", or else by
//     " <mobile>"; with no name, the email or else the user name;
//   - email_verified, mobile_verified: email_verify == 1, mobile_verify == 1
//     ("1" or "0").
func userAppends(row *change.Row) [4][2]string {
	first, last := rowText(row, "first_name"), rowText(row, "last_name")
	userName, email, mobile := rowText(row, "user_name"), rowText(row, "email"), rowText(row, "mobile")

	fullName := userName
	switch {
	case phpTrue(first) && phpTrue(last):
		fullName = first + " " + last
	case phpTrue(first):
		fullName = first
	}

	name := strings.Trim(first+" "+last, phpTrimChars)
	var metaName string
	switch {
	case phpTrue(name) && phpTrue(email):
		metaName = name + " <" + email + ">"
	case phpTrue(name) && phpTrue(mobile):
		metaName = name + " <" + mobile + ">"
	case !phpTrue(name) && phpTrue(email):
		metaName = email
	case !phpTrue(name):
		metaName = userName
	default:
		metaName = name
	}

	verified := func(col string) string {
		if v, _, ok := rowValue(row, col); ok && !v.IsNull() && phpEqualsOne(rowText(row, col)) {
			return "1"
		}
		return "0"
	}
	return [4][2]string{
		{"full_name", fullName},
		{"meta_name", metaName},
		{"email_verified", verified("email_verify")},
		{"mobile_verified", verified("mobile_verify")},
	}
}

// phpTrimChars are the characters PHP's trim() strips by default.
const phpTrimChars = " \t\n\r\x00\x0B"

// phpTrue is PHP's truth of a string: false for "" and "0".
func phpTrue(s string) bool { return s != "" && s != "0" }

// phpNumericRE is PHP 8's numeric string: optional surrounding whitespace,
// an optional sign, a decimal number, an optional exponent.
var phpNumericRE = regexp.MustCompile(`^[ \t\n\r\v\f]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r\v\f]*$`)

// phpNumeric is PHP's is_numeric on a string.
func phpNumeric(s string) bool { return phpNumericRE.MatchString(s) }

// phpEqualsOne is PHP 8's $s == 1 for a string $s: a numeric string equal
// to 1 as a number; any other string compares as the string "1".
func phpEqualsOne(s string) bool {
	if !phpNumeric(s) {
		return s == "1"
	}
	f, err := strconv.ParseFloat(strings.Trim(s, " \t\n\r\v\f"), 64)
	return err == nil && f == 1
}

// gravatarURL is what Faveo's Gravatar::src($email) returns.
func gravatarURL(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(strings.TrimSpace(email))))
	return "https://secure.gravatar.com/avatar/" + hex.EncodeToString(sum[:]) + "?s=80&r=g&d=mm"
}
