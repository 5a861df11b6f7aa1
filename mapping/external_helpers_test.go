package mapping_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

func readDocs(t testing.TB, event string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/docs/" + event + ".json")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(b)
}

// jsonString writes s as a JSON string, as the payloads do.
func jsonString(s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// tree is a JSON value with object key order kept.
type tree struct {
	scalar *string // set for scalars (strings, numbers as written, bools as 1/0)
	isNull bool
	// isString: a JSON string (not a number or boolean made a string).
	isString bool
	keys     []string
	vals     []*tree
	array    bool
}

func parseTree(t testing.TB, doc []byte) *tree {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var walk func() *tree
	walk = func() *tree {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("parse %s: %v", doc, err)
		}
		switch v := tok.(type) {
		case json.Delim:
			n := &tree{array: v == '['}
			for i := 0; dec.More(); i++ {
				key := fmt.Sprint(i)
				if !n.array {
					kt, err := dec.Token()
					if err != nil {
						t.Fatalf("parse %s: %v", doc, err)
					}
					key = kt.(string)
				}
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, walk())
			}
			if _, err := dec.Token(); err != nil {
				t.Fatalf("parse %s: %v", doc, err)
			}
			return n
		case string:
			return &tree{scalar: &v, isString: true}
		case json.Number:
			s := string(v)
			return &tree{scalar: &s}
		case bool:
			s := "0"
			if v {
				s = "1"
			}
			return &tree{scalar: &s}
		}
		return &tree{isNull: true}
	}
	return walk()
}

// formView is what a form body can carry of a tree: nulls and empty
// containers dropped, arrays as objects keyed by index.
func (n *tree) formView() *tree {
	if n.isNull {
		return nil
	}
	if n.scalar != nil {
		return n
	}
	out := &tree{}
	for i, v := range n.vals {
		if fv := v.formView(); fv != nil {
			out.keys = append(out.keys, n.keys[i])
			out.vals = append(out.vals, fv)
		}
	}
	if len(out.keys) == 0 {
		return nil
	}
	return out
}

func (n *tree) String() string {
	var sb strings.Builder
	n.write(&sb)
	return sb.String()
}

func (n *tree) write(sb *strings.Builder) {
	switch {
	case n == nil || n.isNull:
		sb.WriteString("null")
	case n.scalar != nil:
		sb.Write(jsonString(*n.scalar))
	default:
		open, closer := byte('{'), byte('}')
		if n.array {
			open, closer = '[', ']'
		}
		sb.WriteByte(open)
		for i, k := range n.keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			if !n.array {
				sb.Write(jsonString(k))
				sb.WriteByte(':')
			}
			n.vals[i].write(sb)
		}
		sb.WriteByte(closer)
	}
}
