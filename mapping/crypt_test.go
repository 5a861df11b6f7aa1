package mapping

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// testAppKey is a Laravel APP_KEY made for the tests.
const testAppKey = "base64:q2Ko9Zf1NnQ3m7bL0a8cW4xYtR6uV2sE9dH1jK5pG3A="

// laravelDecrypt is an independent implementation of Laravel's
// Encrypter::decryptString for AES-256-CBC: it checks the payload's keys,
// the MAC (constant time), then decrypts and strips PKCS#7 padding.
func laravelDecrypt(appKey, payload string) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(appKey, "base64:"))
	if err != nil {
		return "", err
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return "", fmt.Errorf("payload not base64: %w", err)
	}
	var p map[string]any
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("payload not JSON: %w", err)
	}
	get := func(k string) (string, error) {
		s, ok := p[k].(string)
		if !ok {
			return "", fmt.Errorf("payload has no string %q", k)
		}
		return s, nil
	}
	ivB64, err := get("iv")
	if err != nil {
		return "", err
	}
	value, err := get("value")
	if err != nil {
		return "", err
	}
	macHex, err := get("mac")
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ivB64 + value))
	want, _ := hex.DecodeString(macHex)
	if !hmac.Equal(m.Sum(nil), want) {
		return "", errors.New("the MAC is invalid")
	}
	iv, err := base64.StdEncoding.DecodeString(ivB64)
	if err != nil || len(iv) != aes.BlockSize {
		return "", errors.New("bad iv")
	}
	ct, err := base64.StdEncoding.DecodeString(value)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return "", errors.New("bad value")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(ct, ct)
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(ct[len(ct)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return "", errors.New("bad padding")
	}
	return string(ct[:len(ct)-pad]), nil
}

func TestEncryptedIDRoundTrip(t *testing.T) {
	enc, err := newIDEncrypter(testAppKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{0, 1, 9, 10, 99999, 1234567890123456} {
		s := strconv.FormatInt(id, 10)
		got, err := laravelDecrypt(testAppKey, enc.encryptString(s))
		if err != nil || got != s {
			t.Errorf("id %d: decrypted %q, %v", id, got, err)
		}
	}
	// Tampering is caught by the MAC.
	p := enc.encryptString("10")
	raw, _ := base64.StdEncoding.DecodeString(p)
	raw = bytes.Replace(raw, []byte(`"value":"`), []byte(`"value":"A`), 1)
	if _, err := laravelDecrypt(testAppKey, base64.StdEncoding.EncodeToString(raw)); err == nil {
		t.Error("tampered value decrypted")
	}
	if _, err := laravelDecrypt("base64:"+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)), p); err == nil {
		t.Error("decrypted under another key")
	}
}

// TestEncryptedIDShape: the JSON inside is the shape Faveo's documented
// examples show, deterministic per id and key, different across ids.
func TestEncryptedIDShape(t *testing.T) {
	enc, err := newIDEncrypter(testAppKey)
	if err != nil {
		t.Fatal(err)
	}
	a, b := enc.encryptString("10"), enc.encryptString("10")
	if a != b {
		t.Errorf("not deterministic: %s vs %s", a, b)
	}
	if a == enc.encryptString("11") {
		t.Error("ids 10 and 11 encrypt the same")
	}
	slashes := 0
	for id := 1; id <= 200; id++ {
		raw, err := base64.StdEncoding.DecodeString(enc.encryptString(strconv.Itoa(id)))
		if err != nil {
			t.Fatal(err)
		}
		js := string(raw)
		if !strings.HasPrefix(js, `{"iv":"`) || !strings.Contains(js, `","value":"`) || !strings.Contains(js, `","mac":"`) || !strings.HasSuffix(js, `"}`) {
			t.Fatalf("id %d: unexpected JSON %s", id, js)
		}
		if strings.Contains(strings.ReplaceAll(js, `\/`, ""), "/") {
			t.Fatalf("id %d: unescaped '/' in %s", id, js)
		}
		slashes += strings.Count(js, `\/`)
	}
	if slashes == 0 {
		t.Error("200 ids produced no '/' in base64: the escaping is untested")
	}
	// Faveo's documented example has the same layout (no tag, escaped '/').
	docs, _ := base64.StdEncoding.DecodeString("eyJpdiI6IkhrOHp0Y0dNUkw3cGp1K3NKU2R3WHc9PSIsInZhbHVlIjoiSTNOcHNkRUM3XC9RbUtqZmptc2xTcXc9PSIsIm1hYyI6ImVmOWYwYzhjODdmODdkZmEwODIxNDBmNjNiMWZmYWEwMGM1YzBkOTU5NDQ5NGI1YjFmMWE4NWNjNGRmZWVhZmIifQ==")
	ours, _ := base64.StdEncoding.DecodeString(a)
	if shape(string(docs)) != shape(string(ours)) {
		t.Errorf("layout differs from Faveo's example:\n%s\n%s", docs, ours)
	}
}

// shape blanks the values of an encrypted_id's JSON, keeping its keys.
func shape(js string) string {
	return regexp.MustCompile(`:"(?:[^"\\]|\\.)*"`).ReplaceAllString(js, `:"x"`)
}

func TestParseAppKey(t *testing.T) {
	for _, tc := range []struct {
		key     string
		wantErr string
	}{
		{testAppKey, ""},
		{"0123456789abcdef0123456789abcdef", ""},
		{"base64:!!!", "not valid base64"},
		{"base64:" + base64.StdEncoding.EncodeToString([]byte("short")), "got 5 bytes"},
		{"tooshort", "got 8 bytes"},
	} {
		_, err := parseAppKey(tc.key)
		if tc.wantErr == "" && err != nil {
			t.Errorf("%q: %v", tc.key, err)
		}
		if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%q: error %v, want one containing %q", tc.key, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimPrefix(tc.key, "base64:")) {
			t.Errorf("error leaks the key: %v", err)
		}
	}
}

// encryptString returns Laravel's Crypt::encryptString(plain), with the
// deterministic IV explained on idEncrypter (the payloads append it in
// place with appendEncryptedID).
func (e *idEncrypter) encryptString(plain string) string {
	return string(e.appendEncrypted(nil, []byte(plain)))
}

func BenchmarkEncryptedID(b *testing.B) {
	enc, err := newIDEncrypter(testAppKey)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		enc.encryptString("123456")
	}
}

// TestPayloadEncryptedIDDecrypts: the encrypted_id a mapped payload
// carries decrypts, MAC checked, to that payload's ticket id.
func TestPayloadEncryptedIDDecrypts(t *testing.T) {
	m, _ := newTestMapper(t, newMemSource(), nil)
	for _, id := range []int{1, 10, 4711} {
		evs := mustMap(t, m, txn(id, ins(ticketRow(id, 5, 1, 1, nil)), ins(threadRow(id, id, 5, "client", 0))))
		var p struct {
			Ticket struct {
				ID          string `json:"id"`
				EncryptedID string `json:"encrypted_id"`
			} `json:"ticket"`
		}
		if err := json.Unmarshal(evs[0].Payload, &p); err != nil {
			t.Fatal(err)
		}
		got, err := laravelDecrypt(testAppKey, p.Ticket.EncryptedID)
		if err != nil || got != strconv.Itoa(id) || p.Ticket.ID != got {
			t.Errorf("ticket %s: encrypted_id decrypts to %q, %v", p.Ticket.ID, got, err)
		}
	}
}
