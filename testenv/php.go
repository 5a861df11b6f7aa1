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

// PHPLaravelDecrypt is Laravel 10's Encrypter::decryptString for
// AES-256-CBC, written out as a PHP function with the same PHP functions
// Laravel calls (validPayload, validMac with hash_equals,
// ensureTagIsValid, openssl_decrypt); it throws Laravel's messages. Tests decrypt encrypted_id with it, as
// a Laravel receiver would.
const PHPLaravelDecrypt = `
function laravel_decrypt($appKey, $b64) {
  $key = base64_decode(substr($appKey, 7));
  $payload = json_decode(base64_decode($b64), true);
  if (!is_array($payload)) throw new Exception("payload is not JSON");
  foreach (['iv', 'value', 'mac'] as $item) {
    if (!isset($payload[$item]) || !is_string($payload[$item])) throw new Exception("missing $item");
  }
  if (isset($payload['tag']) && !is_string($payload['tag'])) throw new Exception("bad tag");
  if (strlen(base64_decode($payload['iv'], true)) !== openssl_cipher_iv_length('aes-256-cbc')) throw new Exception("bad iv");
  $mac = hash_hmac('sha256', $payload['iv'].$payload['value'], $key);
  if (!hash_equals($mac, $payload['mac'])) throw new Exception("The MAC is invalid.");
  $tag = empty($payload['tag']) ? null : base64_decode($payload['tag']);
  if (is_string($tag)) throw new Exception("tag with a CBC cipher");
  $plain = openssl_decrypt($payload['value'], 'aes-256-cbc', $key, 0, base64_decode($payload['iv']));
  if ($plain === false) throw new Exception("Could not decrypt the data.");
  return $plain;
}
`
