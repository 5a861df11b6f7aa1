package testenv

import (
	"bytes"
	"os/exec"
	"testing"
)

// PHP finds php-cli. A missing binary fails the test, with what to install:
// tests that parse deskhook's bodies with PHP itself (as a PHP receiver
// does) cannot prove anything without it.
func PHP(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("php")
	if err != nil {
		t.Fatalf("php not found on PATH: install php-cli (`make test` installs it via scripts/test-deps.sh, or: apt-get install php-cli): %v", err)
	}
	return p
}

// RunPHP runs code with php -r, stdin as given, and returns its stdout; a
// failure fails the test with PHP's stderr.
func RunPHP(t testing.TB, code string, stdin []byte) []byte {
	t.Helper()
	cmd := exec.Command(PHP(t), "-d", "display_errors=stderr", "-r", code)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php -r failed: %v\n%s", err, stderr.String())
	}
	return out
}
