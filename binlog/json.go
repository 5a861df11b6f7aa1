package binlog

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MySQL's JSON columns travel in the binlog in MySQL's binary JSON format.
// The reader decodes them itself (go-mysql is handed them as BLOBs, same
// framing): its own decoder recurses without bound on a document whose
// offsets point back into themselves, which a damaged event must not be
// able to do, and prints JSON compactly with sorted keys, where MySQL
// prints keys in stored order with ", " and ": " between items. MariaDB's
// JSON is LONGTEXT and needs none of this.

// jsonMaxDepth is MySQL's own nesting limit.
const jsonMaxDepth = 100

var errJSON = errors.New("malformed binary JSON")

// mysqlJSONText turns a binary JSON document into the text MySQL prints.
func mysqlJSONText(doc []byte) (string, error) {
	if len(doc) == 0 {
		return "null", nil // MySQL logs an empty value for a NULL inserted into a NOT NULL column without strict mode
	}
	var b strings.Builder
	if err := jsonValue(&b, doc[0], doc[1:], 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

const (
	jsonSmallObject = 0x00
	jsonLargeObject = 0x01
	jsonSmallArray  = 0x02
	jsonLargeArray  = 0x03
	jsonLiteral     = 0x04
	jsonInt16       = 0x05
	jsonUint16      = 0x06
	jsonInt32       = 0x07
	jsonUint32      = 0x08
	jsonInt64       = 0x09
	jsonUint64      = 0x0a
	jsonDouble      = 0x0b
	jsonString      = 0x0c
	jsonOpaque      = 0x0f
)

func jsonValue(b *strings.Builder, typ byte, data []byte, depth int) error {
	if depth > jsonMaxDepth {
		return fmt.Errorf("%w: nested deeper than %d", errJSON, jsonMaxDepth)
	}
	need := func(n int) error {
		if len(data) < n {
			return errJSON
		}
		return nil
	}
	switch typ {
	case jsonSmallObject, jsonLargeObject, jsonSmallArray, jsonLargeArray:
		return jsonContainer(b, typ, data, depth)
	case jsonLiteral:
		if err := need(1); err != nil {
			return err
		}
		switch data[0] {
		case 0:
			b.WriteString("null")
		case 1:
			b.WriteString("true")
		case 2:
			b.WriteString("false")
		default:
			return errJSON
		}
	case jsonInt16, jsonUint16:
		if err := need(2); err != nil {
			return err
		}
		v := binary.LittleEndian.Uint16(data)
		if typ == jsonInt16 {
			b.WriteString(strconv.FormatInt(int64(int16(v)), 10))
		} else {
			b.WriteString(strconv.FormatUint(uint64(v), 10))
		}
	case jsonInt32, jsonUint32:
		if err := need(4); err != nil {
			return err
		}
		v := binary.LittleEndian.Uint32(data)
		if typ == jsonInt32 {
			b.WriteString(strconv.FormatInt(int64(int32(v)), 10))
		} else {
			b.WriteString(strconv.FormatUint(uint64(v), 10))
		}
	case jsonInt64, jsonUint64:
		if err := need(8); err != nil {
			return err
		}
		v := binary.LittleEndian.Uint64(data)
		if typ == jsonInt64 {
			b.WriteString(strconv.FormatInt(int64(v), 10))
		} else {
			b.WriteString(strconv.FormatUint(v, 10))
		}
	case jsonDouble:
		if err := need(8); err != nil {
			return err
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(data))
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return errJSON
		}
		s := strconv.FormatFloat(f, 'g', -1, 64)
		s = strings.Replace(s, "e+", "e", 1)
		if !strings.ContainsAny(s, ".e") {
			s += ".0" // MySQL keeps a double a double: 1.0, not 1
		}
		b.WriteString(s)
	case jsonString:
		n, used, err := jsonVarLen(data)
		if err != nil || len(data)-used < n {
			return errJSON
		}
		jsonQuote(b, data[used:used+n])
	case jsonOpaque:
		if err := need(1); err != nil {
			return err
		}
		n, used, err := jsonVarLen(data[1:])
		if err != nil || len(data)-1-used < n {
			return errJSON
		}
		// As MySQL prints an opaque value it has no text for.
		fmt.Fprintf(b, `"base64:type%d:%s"`, data[0], base64.StdEncoding.EncodeToString(data[1+used:1+used+n]))
	default:
		return fmt.Errorf("%w: value type %d", errJSON, typ)
	}
	return nil
}

func jsonContainer(b *strings.Builder, typ byte, data []byte, depth int) error {
	large := typ == jsonLargeObject || typ == jsonLargeArray
	object := typ == jsonSmallObject || typ == jsonLargeObject
	w := 2
	if large {
		w = 4
	}
	word := func(off int) int {
		if large {
			return int(binary.LittleEndian.Uint32(data[off:]))
		}
		return int(binary.LittleEndian.Uint16(data[off:]))
	}
	if len(data) < 2*w {
		return errJSON
	}
	count, size := word(0), word(w)
	if size > len(data) || size < 2*w {
		return errJSON
	}
	data = data[:size]
	keyEntry, valueEntry := 0, 1+w
	if object {
		keyEntry = w + 2
	}
	header := 2*w + count*(keyEntry+valueEntry)
	if count < 0 || count > size || header > size {
		return errJSON
	}
	open, close := byte('['), byte(']')
	if object {
		open, close = '{', '}'
	}
	b.WriteByte(open)
	for i := 0; i < count; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		if object {
			e := 2*w + i*keyEntry
			off, n := word(e), int(binary.LittleEndian.Uint16(data[e+w:]))
			if off < header || off+n > size {
				return errJSON
			}
			jsonQuote(b, data[off:off+n])
			b.WriteString(": ")
		}
		e := 2*w + count*keyEntry + i*valueEntry
		vt := data[e]
		inline := vt == jsonLiteral || vt == jsonInt16 || vt == jsonUint16 ||
			large && (vt == jsonInt32 || vt == jsonUint32)
		if inline {
			if err := jsonValue(b, vt, data[e+1:e+1+w], depth+1); err != nil {
				return err
			}
			continue
		}
		off := word(e + 1)
		// A value lies after the header: an offset into it (or before it)
		// would make the document contain itself.
		if off < header || off >= size {
			return errJSON
		}
		if err := jsonValue(b, vt, data[off:], depth+1); err != nil {
			return err
		}
	}
	b.WriteByte(close)
	return nil
}

// jsonVarLen reads a length of 7 bits per byte, least significant first.
func jsonVarLen(data []byte) (n, used int, err error) {
	for i := 0; i < 5 && i < len(data); i++ {
		n |= int(data[i]&0x7f) << (7 * i)
		if data[i]&0x80 == 0 {
			return n, i + 1, nil
		}
	}
	return 0, 0, errJSON
}

// jsonQuote writes s as a JSON string, escaped as MySQL escapes it.
func jsonQuote(b *strings.Builder, s []byte) {
	b.WriteByte('"')
	for len(s) > 0 {
		r, n := utf8.DecodeRune(s)
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.Write(s[:n])
		}
		s = s[n:]
	}
	b.WriteByte('"')
}
