package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deskhook/deskhook/cdc"
	"github.com/deskhook/deskhook/sender"
)

// LoadConfig reads, expands, decodes strictly, defaults and validates the
// file at path.
func LoadConfig(path string) (*Config, error) {
	return loadConfig(path, nil)
}

// LoadOpsConfig is LoadConfig for the operator commands (status, dlq,
// endpoints), which need only store.path and the admin section: a ${VAR}
// elsewhere that is not set in this environment (the database password,
// an endpoint secret: systemd keeps them in a root-only file) is no error.
// Such values stay unexpanded, unvalidated and listed in
// Config.Unresolved; admin.token may be unresolved too, and is then an
// error only when the token is needed (ClientToken).
func LoadOpsConfig(path string) (*Config, error) {
	return loadConfig(path, func(p string) bool {
		return p == "admin.token" || !(p == "store" || strings.HasPrefix(p, "store.") ||
			p == "admin" || strings.HasPrefix(p, "admin."))
	})
}

func loadConfig(path string, mayBeUnset func(yamlPath string) bool) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Path: path, Err: err}
	}
	c, err := parseConfig(raw, mayBeUnset)
	if err != nil {
		return nil, &ConfigError{Path: path, Err: err}
	}
	return c, nil
}

// ParseConfig turns YAML into a valid Config. ${VAR} is replaced by the
// environment variable VAR in every value (an unset variable is an error;
// $$ is a literal $); keys deskhook does not know are errors with their
// line. Every problem is reported at once — unset variables, unknown keys,
// values of the wrong type and invalid values — each naming its YAML path.
func ParseConfig(raw []byte) (*Config, error) {
	return parseConfig(raw, nil)
}

// parseConfig is ParseConfig; a value at a YAML path for which mayBeUnset
// (when not nil) is true may refer to unset variables: it is then left
// out of every check and listed in Config.Unresolved.
func parseConfig(raw []byte, mayBeUnset func(yamlPath string) bool) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return nil, errors.New("empty config: source.dsn and at least one endpoints[].url are needed")
	}
	if doc := root.Content[0]; doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: the config must be a mapping of keys (source, store, endpoints, ...)", doc.Line)
	}
	idx := indexPaths(&root)

	var errs []error
	unset := map[string]string{}
	expandNode(&root, idx, &errs, unset)
	errs = append(errs, unknownKeys(raw, idx)...)
	var c Config
	if err := root.Decode(&c); err != nil {
		errs = append(errs, translateYAMLErrors(err, idx)...)
	}
	c.Source.Type = canonicalSourceType(c.Source.Type)
	errs = append(errs, sourceKeyErrors(&root, c.Source.Type)...)
	// Values left unexpanded where that is allowed: no error about them.
	skipped := map[string]bool{}
	for p, v := range unset {
		if mayBeUnset != nil && mayBeUnset(p) {
			skipped[p] = true
			if c.Unresolved == nil {
				c.Unresolved = map[string]string{}
			}
			c.Unresolved[p] = v
		}
	}
	if len(skipped) > 0 {
		kept := errs[:0]
		for _, e := range errs {
			if !coveredBy(e.Error(), skipped) {
				kept = append(kept, e)
			}
		}
		errs = kept
	}
	// Validate too, so one run reports everything; but not a second error
	// for a value already reported (an unset variable, a wrong type).
	reported := skipped
	for _, e := range errs {
		if p, _, ok := strings.Cut(e.Error(), ": "); ok {
			reported[p] = true
		}
	}
	c.SetDefaults()
	for _, e := range joined(c.Validate()) {
		if !coveredBy(e.Error(), reported) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// joined flattens an errors.Join tree into its leaves.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, joined(e)...)
		}
		return out
	}
	return []error{err}
}

// coveredBy reports whether msg ("path: ...") is about a path, or a part
// of a path, already reported.
func coveredBy(msg string, reported map[string]bool) bool {
	p, _, ok := strings.Cut(msg, ": ")
	if !ok {
		return false
	}
	for r := range reported {
		if p == r || strings.HasPrefix(p, r+".") || strings.HasPrefix(p, r+"[") {
			return true
		}
	}
	return false
}

// pathIndex finds the YAML path of a node from the line yaml.v3's errors
// give.
type pathIndex struct {
	path   map[*yaml.Node]string
	byLine map[int][]indexed
}

type indexed struct {
	n     *yaml.Node
	path  string
	isKey bool
}

func indexPaths(root *yaml.Node) *pathIndex {
	idx := &pathIndex{path: map[*yaml.Node]string{}, byLine: map[int][]indexed{}}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if _, seen := idx.path[n]; seen {
			return
		}
		idx.path[n] = path
		idx.byLine[n.Line] = append(idx.byLine[n.Line], indexed{n: n, path: path})
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				idx.byLine[k.Line] = append(idx.byLine[k.Line], indexed{n: k, path: p, isKey: true})
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(root, "")
	return idx
}

// key finds the path of mapping key name on line.
func (idx *pathIndex) key(line int, name string) (string, bool) {
	for _, e := range idx.byLine[line] {
		if e.isKey && e.n.Value == name {
			return e.path, true
		}
	}
	return "", false
}

// value finds the value node on line whose (possibly shortened, as
// yaml.v3 quotes it: first 7 bytes and "...") text is shown, or of kind
// tag when no text is shown.
func (idx *pathIndex) value(line int, shown, tag string) (*yaml.Node, string, bool) {
	short := strings.TrimSuffix(shown, "...")
	for _, e := range idx.byLine[line] {
		if e.isKey || e.n.Kind == yaml.DocumentNode {
			continue
		}
		switch {
		case shown != "" && e.n.Kind == yaml.ScalarNode && (e.n.Value == shown || short != shown && strings.HasPrefix(e.n.Value, short)):
			return e.n, e.path, true
		case shown == "" && (tag == "!!map" && e.n.Kind == yaml.MappingNode || tag == "!!seq" && e.n.Kind == yaml.SequenceNode):
			return e.n, e.path, true
		}
	}
	return nil, "", false
}

var varRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{[^}]*\}?`)

// expandNode replaces ${VAR} in every scalar value below n. Expansion works
// on parsed values, never on the raw text, so a secret holding YAML syntax
// (#, :, quotes) stays one value. A value referring to an unset variable is
// an error, and is listed in unset (its path → "${VAR}").
func expandNode(n *yaml.Node, idx *pathIndex, errs *[]error, unset map[string]string) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			expandNode(c, idx, errs, unset)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			expandNode(n.Content[i], idx, errs, unset)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		path := idx.path[n]
		n.Value = varRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$$" {
				return "$"
			}
			sub := varRE.FindStringSubmatch(m)
			if sub[1] == "" {
				*errs = append(*errs, fmt.Errorf("%s: malformed variable reference %q (line %d); write ${NAME}, or $$ for a literal $", path, m, n.Line))
				return m
			}
			v, ok := os.LookupEnv(sub[1])
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: environment variable %s is not set (line %d)", path, sub[1], n.Line))
				unset[path] = m
				return m
			}
			return v
		})
		// A plain scalar's tag was resolved from the unexpanded text
		// ("!!str"); resolve it again from the value so `port: ${PORT}`
		// decodes as a number. A value that would read as null stays a
		// string: a variable set to "null" is not an absent key.
		if n.Style == 0 {
			switch n.Value {
			case "", "~", "null", "Null", "NULL":
				n.Tag = "!!str"
			default:
				n.Tag = ""
			}
		}
	}
}

var (
	yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
	notFoundRE = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	dupKeyRE   = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	typeErrRE  = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// unknownKeys decodes the original text strictly and reports only the keys
// deskhook does not know, with their paths and lines. (yaml.v3 can be
// strict only when decoding text; values are decoded from the expanded
// tree.)
func unknownKeys(raw []byte, idx *pathIndex) []error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var c Config
	var te *yaml.TypeError
	if !errors.As(dec.Decode(&c), &te) {
		return nil
	}
	var errs []error
	for _, msg := range te.Errors {
		m := yamlLineRE.FindStringSubmatch(msg)
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[1])
		k := notFoundRE.FindStringSubmatch(m[2])
		if k == nil {
			continue
		}
		if path, ok := idx.key(line, k[1]); ok {
			errs = append(errs, fmt.Errorf("%s: unknown key (line %d)", path, line))
		} else {
			errs = append(errs, fmt.Errorf("line %d: unknown key %q", line, k[1]))
		}
	}
	return errs
}

// translateYAMLErrors turns yaml.v3's decoding errors into one line each,
// naming the YAML path and saying what was expected.
func translateYAMLErrors(err error, idx *pathIndex) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []error{err}
	}
	errs := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		errs = append(errs, translateYAMLError(msg, idx))
	}
	return errs
}

func translateYAMLError(msg string, idx *pathIndex) error {
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return errors.New(msg)
	}
	line, _ := strconv.Atoi(m[1])
	if d := dupKeyRE.FindStringSubmatch(m[2]); d != nil {
		if path, ok := idx.key(line, d[1]); ok {
			return fmt.Errorf("%s: set twice (lines %s and %d)", path, d[2], line)
		}
		return errors.New(msg)
	}
	t := typeErrRE.FindStringSubmatch(m[2])
	if t == nil {
		return errors.New(msg)
	}
	tag, shown, into := t[1], t[2], t[3]
	n, path, ok := idx.value(line, shown, tag)
	if !ok {
		return errors.New(msg)
	}
	if into == "time.Duration" && n.Kind == yaml.ScalarNode && durationSyntaxRE.MatchString(n.Value) {
		// Written as a duration, but beyond what one can hold (~292 years).
		return fmt.Errorf("%s: must be at most %s (got %q, line %d)", path, durationLimit(path), n.Value, line)
	}
	var got string
	switch n.Kind {
	case yaml.MappingNode:
		got = "a mapping"
	case yaml.SequenceNode:
		got = "a list"
	default:
		got = strconv.Quote(n.Value)
	}
	return fmt.Errorf("%s: %s (got %s, line %d)", path, expected(into), got, line)
}

// durationSyntaxRE matches what time.ParseDuration reads, whatever the
// size.
var durationSyntaxRE = regexp.MustCompile(`^\+?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)

// durationLimits are the bounds Validate sets on durations, quoted when a
// value is too long to be read at all.
var durationLimits = []struct {
	path *regexp.Regexp
	max  time.Duration
}{
	{regexp.MustCompile(`^endpoints\[\d+\]\.timeout$`), sender.MaxTimeout},
	{regexp.MustCompile(`^endpoints\[\d+\]\.retry\.schedule\[\d+\]$`), sender.MaxRetryDelay},
	{regexp.MustCompile(`^retry_after_cap$`), sender.MaxRetryAfterCap},
	{regexp.MustCompile(`^shutdown_timeout$`), MaxShutdownTimeout},
	{regexp.MustCompile(`^source\.status_interval$`), cdc.MaxStatusInterval},
	{regexp.MustCompile(`^source\.reconnect_m(in|ax)$`), cdc.MaxReconnect},
	{regexp.MustCompile(`^source\.verify_interval$`), cdc.MaxVerifyInterval},
}

func durationLimit(path string) time.Duration {
	for _, l := range durationLimits {
		if l.path.MatchString(path) {
			return l.max
		}
	}
	return time.Duration(math.MaxInt64).Truncate(time.Hour)
}

// expected says in words what a Go type accepts.
func expected(goType string) string {
	switch {
	case goType == "time.Duration":
		return "must be a duration such as 500ms, 15s or 2m"
	case goType == "daemon.ByteSize":
		return "must be a size such as 1073741824, 512MB or 1GiB"
	case goType == "daemon.MemoryLimit":
		return "must be auto, off, or a size such as 268435456, 256MB or 256MiB"
	case goType == "bool":
		return "must be true or false"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "must be a whole number"
	case strings.HasPrefix(goType, "float"):
		return "must be a number"
	case strings.HasPrefix(goType, "[]"):
		return "must be a list"
	case strings.HasPrefix(goType, "map["), structTypes[goType]:
		return "must be a mapping of keys"
	}
	return "must be a single value"
}

// structTypes are the names of the struct types in Config, as yaml.v3
// prints them ("sender.Endpoint").
var structTypes = func() map[string]bool {
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem())
		case reflect.Struct:
			if seen[t.String()] || t == reflect.TypeFor[time.Time]() {
				return
			}
			seen[t.String()] = true
			for i := range t.NumField() {
				walk(t.Field(i).Type)
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	return seen
}()
