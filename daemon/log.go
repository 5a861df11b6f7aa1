package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// NewLogger builds the process logger from cfg. Every line passes through
// red, which replaces the configured secrets (DSN password, endpoint
// secrets and header values, app key) with [redacted]: the packages never
// log them, and this makes sure of it whatever an error message quotes.
// red may be nil (nothing scrubbed).
func NewLogger(w io.Writer, cfg LogConfig, red *Redactor) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: plainValues}
	w = NewScrubWriter(w, red)
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// plainValues writes errors as their message and durations as Go writes
// them ("1.5s", "2m0s"). slog's text handler formats an error with %+v,
// which for the errors of go-mysql (pingcap/errors) prints a goroutine
// stack trace into the line; its JSON handler writes durations as
// nanoseconds, which nobody reads right.
func plainValues(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(err.Error())
		}
	}
	return a
}

// Redactor replaces secrets in text. Add extends its list (a reloaded
// config's new secrets) without forgetting the old ones, which messages
// about the old config may still quote.
type Redactor struct {
	mu      sync.Mutex
	secrets map[string]bool
	r       atomic.Pointer[strings.Replacer]
}

// NewRedactor returns a Redactor for secrets.
func NewRedactor(secrets []string) *Redactor {
	r := &Redactor{secrets: map[string]bool{}}
	r.Add(secrets)
	return r
}

// Add adds secrets to the list.
func (r *Redactor) Add(secrets []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			r.secrets[s] = true
		}
	}
	r.r.Store(newReplacer(r.secrets))
}

// Replace returns s with every secret replaced by [redacted].
func (r *Redactor) Replace(s string) string {
	if r == nil {
		return s
	}
	if rep := r.r.Load(); rep != nil {
		return rep.Replace(s)
	}
	return s
}

func newReplacer(secrets map[string]bool) *strings.Replacer {
	if len(secrets) == 0 {
		return nil
	}
	forms := map[string]bool{}
	for s := range secrets {
		forms[s] = true
		// Also as the text handler quotes it (strconv.Quote) and as the
		// JSON handler escapes it.
		q := strconv.Quote(s)
		forms[q[1:len(q)-1]] = true
		if j, err := json.Marshal(s); err == nil {
			forms[string(j[1:len(j)-1])] = true
		}
	}
	list := make([]string, 0, len(forms))
	for s := range forms {
		if s != "" {
			list = append(list, s)
		}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(list, func(i, j int) bool {
		if len(list[i]) != len(list[j]) {
			return len(list[i]) > len(list[j])
		}
		return list[i] < list[j]
	})
	pairs := make([]string, 0, 2*len(list))
	for _, s := range list {
		pairs = append(pairs, s, "[redacted]")
	}
	return strings.NewReplacer(pairs...)
}

// NewScrubWriter returns a writer that replaces red's secrets in each
// write (w itself when red is nil). It suits writers of whole lines or
// records: slog handlers write one record per Write, fmt.Fprintf one
// formatted text, so a secret is never split across two writes.
func NewScrubWriter(w io.Writer, red *Redactor) io.Writer {
	if red == nil {
		return w
	}
	return &scrubWriter{w: w, red: red}
}

type scrubWriter struct {
	mu  sync.Mutex
	w   io.Writer
	red *Redactor
}

func (s *scrubWriter) Write(p []byte) (int, error) {
	out := s.red.Replace(string(p))
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}
