package mapping

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// docsReplyPayload is Faveo's documented ticket_reply example as canonical
// JSON: the realistic payload the renderer tests and benchmarks use.
var docsReplyPayload = mustReadDocs("ticket_reply")

func mustReadDocs(event string) []byte {
	b, err := os.ReadFile("testdata/docs/" + event + ".json")
	if err != nil {
		panic(err)
	}
	return bytes.TrimSpace(b)
}

// phpBinary finds php-cli. A missing binary fails the test: the tests parse
// our bodies with PHP itself and cannot prove anything without it.
func phpBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("php")
	if err != nil {
		t.Fatalf("php not found on PATH: install php-cli (`make test` installs it via scripts/test-deps.sh, or: apt-get install php-cli): %v", err)
	}
	return p
}

// runPHP runs code with php -r, stdin as given, and returns stdout.
func runPHP(t testing.TB, code string, stdin []byte) []byte {
	t.Helper()
	cmd := exec.Command(phpBinary(t), "-d", "display_errors=stderr", "-r", code)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php -r failed: %v\n%s", err, stderr.String())
	}
	return out
}
