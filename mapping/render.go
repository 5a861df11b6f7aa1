package mapping

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Format is a wire format for an event's payload.
type Format string

const (
	// FormatForm is what Faveo sends: application/x-www-form-urlencoded built
	// like PHP's http_build_query.
	FormatForm Format = "faveo-form"
	// FormatJSON is the same tree as application/json, nulls kept.
	FormatJSON Format = "json"
)

// Content types of the formats.
const (
	ContentTypeForm = "application/x-www-form-urlencoded"
	ContentTypeJSON = "application/json"
)

// Valid reports whether f is a known format.
func (f Format) Valid() bool { return f == FormatForm || f == FormatJSON }

// Render turns an event's canonical JSON payload into the body of a request
// in format f. For FormatJSON the body is the payload itself (not a copy).
func Render(f Format, payload []byte) (body []byte, contentType string, err error) {
	switch f {
	case FormatJSON:
		return payload, ContentTypeJSON, nil
	case FormatForm:
		size, err := RenderSize(f, payload)
		if err != nil {
			return nil, "", err
		}
		body, err = AppendForm(make([]byte, 0, size), payload)
		return body, ContentTypeForm, err
	}
	return nil, "", fmt.Errorf("mapping: unknown format %q (want %q or %q)", f, FormatForm, FormatJSON)
}

// RenderSize is the memory Render allocates for payload's body in format
// f: none for FormatJSON (the body is the payload); for FormatForm the
// body's exact size when the payload is large (a pass over it that builds
// nothing), a guess for a small one (at least its size).
func RenderSize(f Format, payload []byte) (int, error) {
	switch {
	case f == FormatJSON:
		return 0, nil
	case f != FormatForm:
		return 0, fmt.Errorf("mapping: unknown format %q (want %q or %q)", f, FormatForm, FormatJSON)
	case len(payload) <= exactFormFrom:
		return formSizeHint(len(payload)), nil
	}
	return FormLen(payload)
}

// exactFormFrom is the payload size from which Render measures the body
// before building it: a guess that is too small copies a large body as it
// grows, one too large holds memory for nothing.
const exactFormFrom = 64 << 10

// formSizeHint guesses the form body's size from the JSON's: nested keys
// repeat their prefixes, so forms of Faveo payloads run about 1.5-2x larger.
func formSizeHint(n int) int { return n*2 + 64 }

// FormLen returns the length of AppendForm's encoding of payload, without
// building it.
func FormLen(payload []byte) (int, error) {
	fw := formWriterPool.Get().(*formWriter)
	defer func() {
		*fw = formWriter{prefix: fw.prefix[:0], scratch: fw.scratch[:0]}
		formWriterPool.Put(fw)
	}()
	fw.counting = true
	if err := fw.document(payload, nil); err != nil {
		return 0, err
	}
	return fw.n, nil
}

// maxFormDepth bounds nesting so that hostile input cannot exhaust the stack.
// PHP's own limit for parse_str is 64 (max_input_nesting_level).
const maxFormDepth = 64

var errFormSyntax = errors.New("mapping: payload is not valid JSON")

// AppendForm appends the http_build_query encoding of the JSON document
// payload to dst: nested keys as a%5Bb%5D, keys in document order, arrays
// indexed [0], [1], ..., nulls and empty objects dropped, true/false as 1/0,
// values and keys urlencoded like PHP's urlencode (RFC 1738: space as '+').
// The top level must be an object or an array.
//
// The document is scanned once, without building a tree: each scalar is
// written as soon as it is read, under the key path that leads to it.
func AppendForm(dst, payload []byte) ([]byte, error) {
	fw := formWriterPool.Get().(*formWriter)
	defer func() {
		*fw = formWriter{prefix: fw.prefix[:0], scratch: fw.scratch[:0]}
		formWriterPool.Put(fw)
	}()
	if err := fw.document(payload, dst); err != nil {
		return dst, err
	}
	return fw.out, nil
}

// document encodes (or, counting, measures) one JSON document.
func (w *formWriter) document(payload, dst []byte) error {
	w.in, w.out, w.start = payload, dst, len(dst)
	w.skipSpace()
	if w.pos >= len(w.in) || (w.in[w.pos] != '{' && w.in[w.pos] != '[') {
		return fmt.Errorf("mapping: payload must be a JSON object or array")
	}
	if err := w.value(0); err != nil {
		return err
	}
	w.skipSpace()
	if w.pos != len(w.in) {
		return fmt.Errorf("%w: trailing data at offset %d", errFormSyntax, w.pos)
	}
	return nil
}

// formWriterPool keeps the writers' key-path and string buffers across
// calls, so rendering allocates only the body.
var formWriterPool = sync.Pool{New: func() any {
	return &formWriter{prefix: make([]byte, 0, 256), scratch: make([]byte, 0, 1024)}
}}

type formWriter struct {
	in      []byte
	pos     int
	out     []byte
	start   int    // len(out) before this document: no '&' before the first pair
	prefix  []byte // encoded key path of the value being read
	scratch []byte // decoded form of strings with escapes
	// counting: FormLen's pass, which adds up n instead of writing out.
	counting bool
	n        int
}

func (w *formWriter) skipSpace() {
	for w.pos < len(w.in) {
		switch w.in[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *formWriter) syntax(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errFormSyntax, what, w.pos)
}

// value reads one JSON value at depth and writes what it contributes.
func (w *formWriter) value(depth int) error {
	w.skipSpace()
	if w.pos >= len(w.in) {
		return w.syntax("unexpected end")
	}
	switch c := w.in[w.pos]; {
	case c == '{' || c == '[':
		if depth >= maxFormDepth {
			return w.syntax("nesting too deep")
		}
		return w.container(depth, c == '{')
	case c == '"':
		s, err := w.str()
		if err != nil {
			return err
		}
		w.pair(s)
		return nil
	case c == 'n':
		return w.literal("null")
	case c == 't':
		if err := w.literal("true"); err != nil {
			return err
		}
		w.pair([]byte{'1'})
		return nil
	case c == 'f':
		if err := w.literal("false"); err != nil {
			return err
		}
		w.pair([]byte{'0'})
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		num, err := w.number()
		if err != nil {
			return err
		}
		w.pair(num)
		return nil
	}
	return w.syntax("unexpected character")
}

// container reads an object or array; each member's key path is the
// container's path plus the member's key (bracketed below the top level).
func (w *formWriter) container(depth int, object bool) error {
	closer := byte(']')
	if object {
		closer = '}'
	}
	w.pos++ // '{' or '['
	base := len(w.prefix)
	defer func() { w.prefix = w.prefix[:base] }()
	w.skipSpace()
	if w.pos < len(w.in) && w.in[w.pos] == closer {
		w.pos++
		return nil
	}
	for index := 0; ; index++ {
		w.prefix = w.prefix[:base]
		if depth > 0 {
			w.prefix = append(w.prefix, "%5B"...)
		}
		if object {
			w.skipSpace()
			if w.pos >= len(w.in) || w.in[w.pos] != '"' {
				return w.syntax("object key expected")
			}
			key, err := w.str()
			if err != nil {
				return err
			}
			w.prefix = appendURLEncoded(w.prefix, key)
			w.skipSpace()
			if w.pos >= len(w.in) || w.in[w.pos] != ':' {
				return w.syntax("':' expected")
			}
			w.pos++
		} else {
			w.prefix = appendInt(w.prefix, index)
		}
		if depth > 0 {
			w.prefix = append(w.prefix, "%5D"...)
		}
		if err := w.value(depth + 1); err != nil {
			return err
		}
		w.skipSpace()
		if w.pos >= len(w.in) {
			return w.syntax("unexpected end")
		}
		switch w.in[w.pos] {
		case ',':
			w.pos++
		case closer:
			w.pos++
			return nil
		default:
			return w.syntax("',' or end of container expected")
		}
	}
}

// pair writes prefix=value.
func (w *formWriter) pair(v []byte) {
	if w.counting {
		if w.n > 0 {
			w.n++ // '&'
		}
		w.n += len(w.prefix) + 1 + urlEncodedLen(v)
		return
	}
	if len(w.out) > w.start {
		w.out = append(w.out, '&')
	}
	w.out = append(w.out, w.prefix...)
	w.out = append(w.out, '=')
	w.out = appendURLEncoded(w.out, v)
}

func (w *formWriter) literal(lit string) error {
	if len(w.in)-w.pos < len(lit) || string(w.in[w.pos:w.pos+len(lit)]) != lit {
		return w.syntax("invalid literal")
	}
	w.pos += len(lit)
	return nil
}

// number returns a JSON number's literal text, validated.
func (w *formWriter) number() ([]byte, error) {
	start := w.pos
	in := w.in
	if w.pos < len(in) && in[w.pos] == '-' {
		w.pos++
	}
	digits := func() int {
		n := 0
		for w.pos < len(in) && in[w.pos] >= '0' && in[w.pos] <= '9' {
			w.pos++
			n++
		}
		return n
	}
	if w.pos < len(in) && in[w.pos] == '0' {
		w.pos++
	} else if digits() == 0 {
		return nil, w.syntax("invalid number")
	}
	if w.pos < len(in) && in[w.pos] == '.' {
		w.pos++
		if digits() == 0 {
			return nil, w.syntax("invalid number")
		}
	}
	if w.pos < len(in) && (in[w.pos] == 'e' || in[w.pos] == 'E') {
		w.pos++
		if w.pos < len(in) && (in[w.pos] == '+' || in[w.pos] == '-') {
			w.pos++
		}
		if digits() == 0 {
			return nil, w.syntax("invalid number")
		}
	}
	return in[start:w.pos], nil
}

// str reads a JSON string and returns its bytes: a slice of the input when
// it has no escapes (the common case), else the decoded form in scratch,
// valid until the next call.
func (w *formWriter) str() ([]byte, error) {
	w.pos++ // opening quote
	start := w.pos
	in := w.in
	for w.pos < len(in) {
		c := in[w.pos]
		if !strSpecial[c] {
			w.pos++
			continue
		}
		if c == '"' {
			w.pos++
			return in[start : w.pos-1], nil
		}
		if c == '\\' {
			w.scratch = append(w.scratch[:0], in[start:w.pos]...)
			return w.strEscaped()
		}
		if c < 0x20 {
			return nil, w.syntax("control character in string")
		}
		w.pos++
	}
	return nil, w.syntax("unterminated string")
}

func (w *formWriter) strEscaped() ([]byte, error) {
	in := w.in
	for w.pos < len(in) {
		c := in[w.pos]
		switch {
		case c == '"':
			w.pos++
			return w.scratch, nil
		case c < 0x20:
			return nil, w.syntax("control character in string")
		case c != '\\':
			w.scratch = append(w.scratch, c)
			w.pos++
			continue
		}
		if w.pos+1 >= len(in) {
			break
		}
		e := in[w.pos+1]
		w.pos += 2
		switch e {
		case '"', '\\', '/':
			w.scratch = append(w.scratch, e)
		case 'b':
			w.scratch = append(w.scratch, '\b')
		case 'f':
			w.scratch = append(w.scratch, '\f')
		case 'n':
			w.scratch = append(w.scratch, '\n')
		case 'r':
			w.scratch = append(w.scratch, '\r')
		case 't':
			w.scratch = append(w.scratch, '\t')
		case 'u':
			r, ok := w.hex4()
			if !ok {
				return nil, w.syntax("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair decodes to one rune; a lone half becomes U+FFFD, as
				// encoding/json and PHP's json_decode(..., JSON_INVALID_UTF8_SUBSTITUTE) do.
				save := w.pos
				if w.pos+1 < len(in) && in[w.pos] == '\\' && in[w.pos+1] == 'u' {
					w.pos += 2
					if r2, ok := w.hex4(); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							w.scratch = utf8.AppendRune(w.scratch, dec)
							continue
						}
					}
				}
				w.pos = save
				r = utf8.RuneError
			}
			w.scratch = utf8.AppendRune(w.scratch, r)
		default:
			return nil, w.syntax("invalid escape")
		}
	}
	return nil, w.syntax("unterminated string")
}

func (w *formWriter) hex4() (rune, bool) {
	if len(w.in)-w.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range w.in[w.pos : w.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	w.pos += 4
	return r, true
}

// strSpecial marks the bytes that end a plain run inside a JSON string.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// urlSafe marks the bytes PHP's urlencode leaves as they are.
var urlSafe = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['.'] = true, true, true
	return t
}()

const upperHex = "0123456789ABCDEF"

// appendURLEncoded appends s encoded like PHP's urlencode: letters, digits
// and -_. as they are, space as '+', every other byte %XX (uppercase).
func appendURLEncoded(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		// Copy runs of safe bytes in one append.
		j := i
		for j < len(s) && urlSafe[s[j]] {
			j++
		}
		dst = append(dst, s[i:j]...)
		if j == len(s) {
			break
		}
		c := s[j]
		if c == ' ' {
			dst = append(dst, '+')
		} else {
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
		i = j + 1
	}
	return dst
}

// urlEncodedLen is len(appendURLEncoded(nil, s)).
func urlEncodedLen(s []byte) int {
	n := len(s)
	for _, c := range s {
		if !urlSafe[c] && c != ' ' {
			n += 2
		}
	}
	return n
}

func appendInt(dst []byte, n int) []byte {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}
