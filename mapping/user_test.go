package mapping

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/change"
)

// userColsT has the users columns the appends and accessors read.
var userColsT = change.NewTable("public", "users", []change.Column{
	{Name: "id", Type: "int8", Key: true}, {Name: "user_name", Type: "varchar"}, {Name: "first_name", Type: "varchar"},
	{Name: "last_name", Type: "varchar"}, {Name: "email", Type: "varchar"}, {Name: "password", Type: "varchar"},
	{Name: "country_code", Type: "varchar"}, {Name: "mobile", Type: "varchar"}, {Name: "profile_pic", Type: "varchar"},
	{Name: "email_verify", Type: "varchar"}, {Name: "mobile_verify", Type: "varchar"},
})

// renderedUser renders a users row and decodes both forms.
func renderedUser(t *testing.T, row *change.Row) (full, short map[string]any) {
	t.Helper()
	f, s := renderUser(row)
	for _, x := range []struct {
		b   []byte
		out *map[string]any
	}{{f, &full}, {s, &short}} {
		if err := json.Unmarshal([]byte("{"+string(x.b)+"}"), x.out); err != nil {
			t.Fatalf("%s: %v", x.b, err)
		}
	}
	return full, short
}

// TestUserAppends: full_name, meta_name, email_verified and
// mobile_verified as Faveo's User model computes them (name(),
// getMetaNameAttribute, getEmailVerifiedAttribute: email_verify == 1,
// with PHP's truthiness and loose comparison), in both user forms.
func TestUserAppends(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		first, last, user          any
		email, mobile              any
		emailVerify, mobileVerify  any
		fullName, metaName, ev, mv string
	}{
		{"as stored, no ucfirst", "mohammad", "asif", "m", "m@x", nil, "1", "0", "mohammad asif", "mohammad asif <m@x>", "1", "0"},
		{"first name only", "Zoë", "", "z", "z@x", nil, "0", "1", "Zoë", "Zoë <z@x>", "0", "1"},
		{"last name only", "", "Ghost", "ghost_user", "g@x", nil, "token", nil, "ghost_user", "Ghost <g@x>", "0", "0"},
		{"PHP: \"0\" is false", "0", "Zero", "zero_user", "z0@x", nil, nil, nil, "zero_user", "0 Zero <z0@x>", "0", "0"},
		{"no email: mobile", "Ann", "Lee", "ann", nil, "555", "1", "1", "Ann Lee", "Ann Lee <555>", "1", "1"},
		{"no email nor mobile", "Ann", "Lee", "ann", "", nil, nil, nil, "Ann Lee", "Ann Lee", "0", "0"},
		{"no name: email", "", "", "bob_user", "b@x", "555", nil, nil, "bob_user", "b@x", "0", "0"},
		{"no name, no email: user name", nil, nil, "bob_user", nil, nil, nil, nil, "bob_user", "bob_user", "0", "0"},
		{"meta_name trims", " Sp ", "", "sp", "s@x", nil, nil, nil, " Sp ", "Sp <s@x>", "0", "0"},
		{"== 1 on numeric strings", "A", "B", "ab", "a@x", nil, " 1", "1.0", "A B", "A B <a@x>", "1", "1"},
		{"== 1: not numeric", "A", "B", "ab", "a@x", nil, "1abc", "x1", "A B", "A B <a@x>", "0", "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := mkRow(userColsT, 7, tc.user, tc.first, tc.last, tc.email, "secret", "", tc.mobile, "",
				tc.emailVerify, tc.mobileVerify)
			full, short := renderedUser(t, row)
			for form, obj := range map[string]map[string]any{"full": full, "short": short} {
				got := [4]any{obj["full_name"], obj["meta_name"], obj["email_verified"], obj["mobile_verified"]}
				want := [4]any{tc.fullName, tc.metaName, tc.ev, tc.mv}
				if got != want {
					t.Errorf("%s form: appends %q, want %q", form, got, want)
				}
			}
		})
	}
	if got := gravatarURL(" Mohammad.Asif@LadybirdWeb.com "); got !=
		"https://secure.gravatar.com/avatar/941c192ece664c957da927fb44cdfb99?s=80&r=g&d=mm" {
		t.Errorf("gravatar: %s (Faveo's documented example has 941c192e...)", got)
	}
}

// TestUserAccessors: thread.user shows the columns through the User
// model's accessors, as its toArray does: mobile cast to a string (NULL
// becomes ""), country_code only when numeric, an empty (PHP-false)
// profile_pic replaced by the email's Gravatar; hidden columns never.
func TestUserAccessors(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		country, mobile, pic    any
		wantCountry, wantMobile string
		wantPic                 string
	}{
		{"numeric country code", "91", "9876543210", "pic.png", "91", "9876543210", "pic.png"},
		{"null mobile; a sign is numeric", "+44", nil, nil, "+44", "", gravatarURL("u@x")},
		{"letters are not numeric", "IN", "", "0", "", "", gravatarURL("u@x")},
		{"null country code", nil, "1", "", "", "1", gravatarURL("u@x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := mkRow(userColsT, 7, "u", "U", "Ser", "u@x", "secret", tc.country, tc.mobile, tc.pic, "1", "token")
			full, short := renderedUser(t, row)
			if full["country_code"] != tc.wantCountry || full["mobile"] != tc.wantMobile || full["profile_pic"] != tc.wantPic {
				t.Errorf("country_code %q, mobile %q, profile_pic %q; want %q, %q, %q", full["country_code"],
					full["mobile"], full["profile_pic"], tc.wantCountry, tc.wantMobile, tc.wantPic)
			}
			for _, hidden := range []string{"password", "email_verify", "mobile_verify"} {
				if _, ok := full[hidden]; ok {
					t.Errorf("hidden column %s shown", hidden)
				}
			}
			var keys []string
			for k := range short {
				keys = append(keys, k)
			}
			if len(short) != 9 {
				t.Errorf("short form has %d keys: %s", len(short), strings.Join(keys, ","))
			}
		})
	}
}
