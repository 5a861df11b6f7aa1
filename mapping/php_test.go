package mapping

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/deskhook/deskhook/testenv"
)

// phpLaravelDecrypt decrypts stdin with the APP_KEY argv[1], or says why
// not on stderr and exits 1.
const phpLaravelDecrypt = testenv.PHPLaravelDecrypt + `
try { echo laravel_decrypt($argv[1], file_get_contents("php://stdin")); }
catch (Exception $e) { fwrite(STDERR, $e->getMessage()); exit(1); }`

// TestGoldenEncryptedIDsDecryptInPHP: the encrypted_id of every golden
// payload (PostgreSQL's and MySQL's) decrypts with Laravel's code to its
// ticket's id. One PHP process decrypts them all.
func TestGoldenEncryptedIDsDecryptInPHP(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden*", "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden payloads (%v)", err)
	}
	var in bytes.Buffer
	var want []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var p map[string]any
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range p {
			obj := asObject(v)
			// the ticket, or a thread's ticket
			for _, tk := range []map[string]any{obj, asObject(obj["ticket"])} {
				if enc, ok := tk["encrypted_id"].(string); ok {
					in.WriteString(enc + "\n")
					want = append(want, fmt.Sprintf("%s: %v", f, tk["id"]))
				}
			}
		}
	}
	if len(want) < len(files)/2 {
		t.Fatalf("%d encrypted ids in %d payloads: the test reads the wrong keys", len(want), len(files))
	}
	out := testenv.RunPHP(t, testenv.PHPLaravelDecrypt+`while (($l = fgets(STDIN)) !== false) {
  try { echo laravel_decrypt('`+testAppKey+`', trim($l)), "\n"; } catch (Exception $e) { echo "ERR ", $e->getMessage(), "\n"; } }`,
		in.Bytes())
	got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("PHP decrypted %d ids of %d", len(got), len(want))
	}
	for i, w := range want {
		if file, id, _ := strings.Cut(w, ": "); got[i] != id {
			t.Errorf("%s: encrypted_id decrypts to %q, the ticket's id is %s", file, got[i], id)
		}
	}
}

func asObject(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

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
