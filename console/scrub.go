package console

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// A page is scrubbed whole, after rendering, of every secret the daemon
// names (Options.Secrets), in each form a page may print it in: as is, as
// JSON or Go quoting escapes it, query- or path-escaped (a form body, a
// URL), and each of those as the templates' HTML escaping writes it (which
// turns + into &#43;, for one). Secrets shorter than minScrubLen are left
// alone: replacing them would mangle the page's own markup, and nothing
// prints them (header values and signing keys are never handed to a page).

const minScrubLen = 6

type scrubber struct {
	secrets func() []string
	mu      sync.Mutex
	key     string // the secrets the replacer was built for
	rep     *strings.Replacer
}

func (s *scrubber) scrub(page string) string {
	if s.secrets == nil {
		return page
	}
	list := s.secrets()
	sort.Strings(list)
	key := strings.Join(list, "\x00")
	s.mu.Lock()
	if s.rep == nil || key != s.key {
		s.rep, s.key = newScrubReplacer(list), key
	}
	rep := s.rep
	s.mu.Unlock()
	if rep == nil {
		return page
	}
	return rep.Replace(page)
}

var htmlOnce = template.Must(template.New("").Parse("{{.}}"))

// htmlForm is s as the templates write it in HTML text and attributes.
func htmlForm(s string) string {
	var b bytes.Buffer
	if htmlOnce.Execute(&b, s) != nil {
		return s
	}
	return b.String()
}

func newScrubReplacer(secrets []string) *strings.Replacer {
	forms := map[string]bool{}
	for _, s := range secrets {
		if len(s) < minScrubLen {
			continue
		}
		q := strconv.Quote(s)
		j, _ := json.Marshal(s)
		for _, f := range []string{s, q[1 : len(q)-1], string(j[1 : len(j)-1]), url.QueryEscape(s), url.PathEscape(s)} {
			forms[f] = true
			forms[htmlForm(f)] = true
		}
	}
	if len(forms) == 0 {
		return nil
	}
	list := make([]string, 0, len(forms))
	for f := range forms {
		list = append(list, f)
	}
	// Longest first, so that a secret containing another goes whole.
	sort.Slice(list, func(i, j int) bool {
		if len(list[i]) != len(list[j]) {
			return len(list[i]) > len(list[j])
		}
		return list[i] < list[j]
	})
	pairs := make([]string, 0, 2*len(list))
	for _, f := range list {
		pairs = append(pairs, f, "[redacted]")
	}
	return strings.NewReplacer(pairs...)
}
