package mapping

import (
	"slices"
	"unicode/utf8"
)

// jsonBuf writes canonical JSON: no spaces, keys in the order written, and
// strings escaped minimally (quote, backslash, control characters, U+2028/9,
// invalid UTF-8 as U+FFFD). '/', '<', '>' and '&' stay as they are, so HTML
// bodies read as the helpdesk stored them.
type jsonBuf struct {
	b     []byte
	comma bool // the next key or element needs a ',' first
}

func (j *jsonBuf) openObject() {
	j.b = append(j.b, '{')
	j.comma = false
}

func (j *jsonBuf) closeObject() {
	j.b = append(j.b, '}')
	j.comma = true
}

func (j *jsonBuf) key(k string) {
	if j.comma {
		j.b = append(j.b, ',')
	}
	j.b = appendJSONString(j.b, k)
	j.b = append(j.b, ':')
	j.comma = false
}

func (j *jsonBuf) str(v string) {
	j.b = appendJSONString(j.b, v)
	j.comma = true
}

func (j *jsonBuf) null() {
	j.b = append(j.b, "null"...)
	j.comma = true
}

// field writes "k":"v".
func (j *jsonBuf) field(k, v string) {
	j.key(k)
	j.str(v)
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	if len(s) > 4096 {
		// Grow once for a large value (a mail's body) and its few escapes,
		// rather than in steps that copy it several times over.
		dst = slices.Grow(dst, len(s)+len(s)/16+2)
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', lowerHex[c>>4], lowerHex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', lowerHex[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const lowerHex = "0123456789abcdef"

// cloneBytes copies b into a slice of exactly its length. The make+copy
// form lets the runtime skip zeroing the new memory (slices.Clone rounds up
// and clears), which showed in the mapper's profile.
func cloneBytes(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}
