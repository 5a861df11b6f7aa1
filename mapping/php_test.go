package mapping

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/testenv"
)

// phpLaravelDecrypt is Laravel 10's Encrypter::decryptString for
// AES-256-CBC, written out with the same PHP functions Laravel calls
// (validPayload, validMac with hash_equals, ensureTagIsValid,
// openssl_decrypt). argv[1] is the APP_KEY, stdin the payload.
const phpLaravelDecrypt = `
$key = base64_decode(substr($argv[1], 7));
$payload = json_decode(base64_decode(file_get_contents("php://stdin")), true);
if (!is_array($payload)) { fwrite(STDERR, "payload is not JSON"); exit(1); }
foreach (['iv', 'value', 'mac'] as $item) {
  if (!isset($payload[$item]) || !is_string($payload[$item])) { fwrite(STDERR, "missing $item"); exit(1); }
}
if (isset($payload['tag']) && !is_string($payload['tag'])) { fwrite(STDERR, "bad tag"); exit(1); }
if (strlen(base64_decode($payload['iv'], true)) !== openssl_cipher_iv_length('aes-256-cbc')) { fwrite(STDERR, "bad iv"); exit(1); }
$mac = hash_hmac('sha256', $payload['iv'].$payload['value'], $key);
if (!hash_equals($mac, $payload['mac'])) { fwrite(STDERR, "The MAC is invalid."); exit(1); }
$tag = empty($payload['tag']) ? null : base64_decode($payload['tag']);
if (is_string($tag)) { fwrite(STDERR, "tag with a CBC cipher"); exit(1); }
$plain = openssl_decrypt($payload['value'], 'aes-256-cbc', $key, 0, base64_decode($payload['iv']));
if ($plain === false) { fwrite(STDERR, "Could not decrypt the data."); exit(1); }
echo $plain;`

func TestEncryptedIDDecryptsInPHP(t *testing.T) {
	enc, err := newIDEncrypter(testAppKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{1, 10, 123456789012, 0} {
		got := string(testenv.RunPHP(t, strings.Replace(phpLaravelDecrypt, "$argv[1]", "'"+testAppKey+"'", 1),
			[]byte(enc.encryptString(strconv.FormatInt(id, 10)))))
		if got != strconv.FormatInt(id, 10) {
			t.Errorf("PHP decrypted %q, want %d", got, id)
		}
	}
}

// TestEncryptedIDTamperingRejectedInPHP: the PHP decrypter above really
// checks the MAC: a changed value, IV or MAC, or another key, is refused.
func TestEncryptedIDTamperingRejectedInPHP(t *testing.T) {
	enc, err := newIDEncrypter(testAppKey)
	if err != nil {
		t.Fatal(err)
	}
	good := enc.encryptString("10")
	raw, err := base64.StdEncoding.DecodeString(good)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]string
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	flip := func(s string) string { // change one base64/hex character, keeping the alphabet
		b := []byte(s)
		if b[0] == 'A' || b[0] == 'a' {
			b[0]++
		} else {
			b[0] = 'a'
		}
		return string(b)
	}
	tampered := func(key, val string) string {
		q := map[string]string{"iv": p["iv"], "value": p["value"], "mac": p["mac"]}
		q[key] = val
		js, _ := json.Marshal(q)
		return base64.StdEncoding.EncodeToString(js)
	}
	otherKey := "base64:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	for name, tc := range map[string]struct{ key, payload string }{
		"value":     {testAppKey, tampered("value", flip(p["value"]))},
		"iv":        {testAppKey, tampered("iv", flip(p["iv"]))},
		"mac":       {testAppKey, tampered("mac", flip(p["mac"]))},
		"other key": {otherKey, good},
	} {
		cmd := exec.Command(testenv.PHP(t), "-d", "display_errors=stderr", "-r",
			strings.Replace(phpLaravelDecrypt, "$argv[1]", "'"+tc.key+"'", 1))
		cmd.Stdin = strings.NewReader(tc.payload)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err == nil || !strings.Contains(stderr.String(), "The MAC is invalid.") {
			t.Errorf("%s tampered: PHP decrypted %q (err %v, stderr %q)", name, out, err, stderr.String())
		}
	}
}
