package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRenderForm(t *testing.T) {
	cases := []struct {
		name, payload, want string
	}{
		{"flat", `{"event":"ticket_created","id":"10"}`, `event=ticket_created&id=10`},
		{"nested brackets encoded", `{"ticket":{"statuses":{"type":{"name":"open"}}}}`,
			`ticket%5Bstatuses%5D%5Btype%5D%5Bname%5D=open`},
		{"space plus and reserved", `{"a b":"x y&z=1+2%/?#~"}`, `a+b=x+y%26z%3D1%2B2%25%2F%3F%23%7E`},
		{"unreserved kept", `{"k":"AZaz09-_."}`, `k=AZaz09-_.`},
		{"nulls dropped", `{"a":null,"b":"1","c":{"d":null}}`, `b=1`},
		{"empty object dropped", `{"a":{},"b":"","c":[]}`, `b=`},
		{"empty string kept", `{"a":""}`, `a=`},
		{"booleans", `{"t":true,"f":false}`, `t=1&f=0`},
		{"numbers as written", `{"n":-1.5e+3,"z":0}`, `n=-1.5e%2B3&z=0`},
		{"arrays indexed", `{"a":["x",null,{"b":"y"}]}`, `a%5B0%5D=x&a%5B2%5D%5Bb%5D=y`},
		{"top-level array", `["x","y"]`, `0=x&1=y`},
		{"escapes decoded", `{"body":"<p>a\"b\\c\/d\n\u00e9\ud83d\ude00</p>"}`,
			`body=%3Cp%3Ea%22b%5Cc%2Fd%0A%C3%A9%F0%9F%98%80%3C%2Fp%3E`},
		{"lone surrogate", `{"s":"\ud800x"}`, `s=%EF%BF%BDx`},
		{"utf8 bytes", `{"name":"Zoë 日本"}`, `name=Zo%C3%AB+%E6%97%A5%E6%9C%AC`},
		{"escaped key", `{"a\"b":{"c d":"1"}}`, `a%22b%5Bc+d%5D=1`},
		{"whitespace", " { \"a\" : [ \"1\" , \"2\" ] } \n", `a%5B0%5D=1&a%5B1%5D=2`},
		{"order kept", `{"z":"1","a":"2","m":"3"}`, `z=1&a=2&m=3`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, ct, err := Render(FormatForm, []byte(tc.payload))
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if ct != ContentTypeForm {
				t.Errorf("content type %q, want %q", ct, ContentTypeForm)
			}
			if string(body) != tc.want {
				t.Errorf("got  %s\nwant %s", body, tc.want)
			}
			ref, err := formByTokens([]byte(tc.payload))
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			if string(ref) != tc.want {
				t.Errorf("reference renderer disagrees: %s", ref)
			}
		})
	}
}

func TestRenderFormErrors(t *testing.T) {
	for _, payload := range []string{
		``, `"x"`, `1`, `null`, `{`, `{"a"}`, `{"a":}`, `{"a":"1",}`, `{"a":"1"} x`, `{"a":tru}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{1:"a"}`,
		`[` + strings.Repeat(`[`, maxFormDepth) + strings.Repeat(`]`, maxFormDepth+1),
	} {
		if body, err := AppendForm(nil, []byte(payload)); err == nil {
			t.Errorf("AppendForm(%q) = %q, want an error", payload, body)
		}
	}
}

func TestRenderJSON(t *testing.T) {
	payload := []byte(`{"event":"ticket_reply","a":null}`)
	body, ct, err := Render(FormatJSON, payload)
	if err != nil || ct != ContentTypeJSON || !bytes.Equal(body, payload) {
		t.Fatalf("Render(json) = %q, %q, %v", body, ct, err)
	}
	if _, _, err := Render("xml", payload); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("Render(xml) error = %v, want one naming the format", err)
	}
	if !FormatForm.Valid() || !FormatJSON.Valid() || Format("xml").Valid() {
		t.Fatal("Format.Valid is wrong")
	}
}

func TestAppendFormAppends(t *testing.T) {
	out, err := AppendForm([]byte("x=1"), []byte(`{"a":"b"}`))
	if err != nil || string(out) != "x=1a=b" {
		// AppendForm appends one document; joining documents is the caller's business.
		t.Fatalf("got %q, %v", out, err)
	}
}

func TestAppendJSONString(t *testing.T) {
	cases := map[string]string{
		"plain":            `"plain"`,
		"<p>a/b&c</p>":     `"<p>a/b&c</p>"`,
		"q\"b\\":           `"q\"b\\"`,
		"n\nr\rt\t\x01":    `"n\nr\rt\t\u0001"`,
		"\x1f":             `"\u001f"`,
		"bad\xffutf8":      `"bad\ufffdutf8"`,
		"ls\u2028ps\u2029": `"ls\u2028ps\u2029"`,
		"é日本😀":             `"é日本😀"`,
	}
	for in, want := range cases {
		got := string(appendJSONString(nil, in))
		if got != want {
			t.Errorf("appendJSONString(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s is not valid JSON: %v", got, err)
		} else if utf8.ValidString(in) && back != in {
			t.Errorf("round trip of %q gave %q", in, back)
		}
	}
}

// formByTokens is an independent implementation of the form renderer on
// encoding/json's Decoder.Token: the reference for differential tests, and
// the baseline the hand-written scanner was measured against.
func formByTokens(payload []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var out []byte
	var walk func(prefix string, top bool) error
	walk = func(prefix string, top bool) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		emit := func(v string) {
			if len(out) > 0 {
				out = append(out, '&')
			}
			out = append(out, prefix...)
			out = append(out, '=')
			out = appendURLEncoded(out, []byte(v))
		}
		sub := func(key string) string {
			k := string(appendURLEncoded(nil, []byte(key)))
			if top {
				return k
			}
			return prefix + "%5B" + k + "%5D"
		}
		switch v := tok.(type) {
		case json.Delim:
			obj := v == '{'
			for i := 0; dec.More(); i++ {
				key := fmt.Sprint(i)
				if obj {
					kt, err := dec.Token()
					if err != nil {
						return err
					}
					key = kt.(string)
				}
				if err := walk(sub(key), false); err != nil {
					return err
				}
			}
			_, err := dec.Token() // closing delimiter
			return err
		case string:
			emit(v)
		case json.Number:
			emit(string(v))
		case bool:
			if v {
				emit("1")
			} else {
				emit("0")
			}
		case nil:
		}
		return nil
	}
	if err := walk("", true); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("trailing data")
	}
	return out, nil
}

// FuzzRenderForm: the scanner never panics, and whatever it accepts the
// reference renderer renders identically.
func FuzzRenderForm(f *testing.F) {
	for _, s := range []string{
		`{"event":"ticket_created","ticket":{"id":"10","statuses":{"type":{"name":"open"}}},"x":null}`,
		`{"a":["x",null,{"b":true}],"n":-1.5e3}`, `{"s":"\ud83d\ude00\u00e9\n"}`, `[]`, `{}`, `[[[]]]`,
		string(docsReplyPayload),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := AppendForm(nil, payload)
		if err != nil {
			return
		}
		if !utf8.Valid(payload) {
			return // encoding/json replaces invalid UTF-8; the scanner passes bytes through
		}
		if !json.Valid(payload) {
			t.Fatalf("scanner accepted invalid JSON %q", payload)
		}
		want, err := formByTokens(payload)
		if err != nil {
			t.Fatalf("reference rejects %q: %v", payload, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("payload %q\nscanner   %q\nreference %q", payload, got, want)
		}
	})
}

func BenchmarkRenderForm(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(docsReplyPayload)))
	for b.Loop() {
		if _, _, err := Render(FormatForm, docsReplyPayload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderFormTokens measures the Decoder.Token alternative the
// scanner replaced.
func BenchmarkRenderFormTokens(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(docsReplyPayload)))
	for b.Loop() {
		if _, err := formByTokens(docsReplyPayload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderJSON(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(docsReplyPayload)))
	for b.Loop() {
		if _, _, err := Render(FormatJSON, docsReplyPayload); err != nil {
			b.Fatal(err)
		}
	}
}
