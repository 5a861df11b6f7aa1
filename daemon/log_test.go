package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// stackError formats like the errors of go-mysql (pingcap/errors): its
// message with %v, its message and a stack trace with %+v.
type stackError struct{ msg string }

func (e stackError) Error() string { return e.msg }

func (e stackError) Format(s fmt.State, verb rune) {
	io.WriteString(s, e.msg)
	if verb == 'v' && s.Flag('+') {
		io.WriteString(s, "\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:12")
	}
}

func TestLoggerWritesPlainValues(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			log := NewLogger(&buf, LogConfig{Level: "info", Format: format}, NewRedactor(nil))
			log.Warn("binlog connection failed", "err", stackError{"connection was bad"},
				"wrapped", fmt.Errorf("reading: %w", errors.New("EOF")), "retry_in", 1500*time.Millisecond)
			line := buf.String()
			if strings.Count(line, "\n") != 1 || strings.Contains(line, "goroutine") {
				t.Errorf("the log line carries more than the message (a stack trace?):\n%s", line)
			}
			for _, want := range []string{"connection was bad", "reading: EOF", "1.5s"} {
				if !strings.Contains(line, want) {
					t.Errorf("the log line lacks %q:\n%s", want, line)
				}
			}
		})
	}
}
