package mapping

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// idEncrypter computes the ticket appends' encrypted_id: Laravel's
// Crypt::encryptString((string) $id) under the helpdesk's APP_KEY with
// Faveo's cipher, AES-256-CBC.
//
// Laravel's algorithm: PKCS#7-pad the plaintext, encrypt with AES-256-CBC
// under a random 16-byte IV, value = base64(ciphertext), mac =
// hex(HMAC-SHA256(key, base64(iv) . value)), then base64 of the JSON
// {"iv":...,"value":...,"mac":...}.
//
// Two deliberate choices:
//
//   - The IV is not random: it is HMAC-SHA256(key, "deskhook encrypted_id
//     iv" || 0 || id) truncated to 16 bytes. Design rule 4 says the same
//     event always carries the same body, so mapping a transaction again
//     (after a crash) must give the same bytes. Laravel's decrypt takes the
//     IV from the payload and accepts any IV, so Faveo still decrypts it.
//     The only thing a fixed IV per id reveals is that two encrypted_ids
//     encrypt the same id, which the payload's "id" field says anyway.
//   - The JSON is the form Faveo's own examples show (Laravel 5.x, which
//     Faveo 4 runs on): keys iv, value, mac, no "tag", and '/' escaped as
//     "\/" (PHP json_encode's default). Laravel 9+ adds "tag":"" and stops
//     escaping '/', but its decrypter accepts payloads without a tag (tag
//     is optional for CBC), and json_decode reads "\/" either way, so every
//     Laravel version decrypts what we emit, and receivers that compare with
//     Faveo's documented bytes see the same shape.
type idEncrypter struct {
	key   []byte
	block cipher.Block
}

// parseAppKey reads Laravel's APP_KEY: "base64:<32 bytes in base64>", or a
// raw 32-character key. The error never contains the key.
func parseAppKey(appKey string) ([]byte, error) {
	var key []byte
	if b64, ok := strings.CutPrefix(appKey, "base64:"); ok {
		k, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, errors.New("not valid base64 after \"base64:\"")
		}
		key = k
	} else {
		key = []byte(appKey)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("must be 32 bytes for AES-256-CBC, Faveo's cipher (got %d bytes)", len(key))
	}
	return key, nil
}

func newIDEncrypter(appKey string) (*idEncrypter, error) {
	key, err := parseAppKey(appKey)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &idEncrypter{key: key, block: block}, nil
}

// encryptString returns Laravel's Crypt::encryptString(plain), with the
// deterministic IV explained on idEncrypter.
func (e *idEncrypter) encryptString(plain string) string {
	mac := hmac.New(sha256.New, e.key)
	mac.Write([]byte("deskhook encrypted_id iv\x00"))
	mac.Write([]byte(plain))
	var sum [sha256.Size]byte
	iv := mac.Sum(sum[:0])[:aes.BlockSize]

	// PKCS#7: always pad, a whole block when the length is a multiple.
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := make([]byte, len(plain)+pad)
	copy(buf, plain)
	for i := len(plain); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(e.block, iv).CryptBlocks(buf, buf)

	ivB64 := base64.StdEncoding.EncodeToString(iv)
	valueB64 := base64.StdEncoding.EncodeToString(buf)
	mac = hmac.New(sha256.New, e.key)
	mac.Write([]byte(ivB64))
	mac.Write([]byte(valueB64))
	macHex := hex.EncodeToString(mac.Sum(sum[:0]))

	js := make([]byte, 0, 40+2*len(ivB64)+2*len(valueB64)+len(macHex))
	js = append(js, `{"iv":"`...)
	js = appendSlashEscaped(js, ivB64)
	js = append(js, `","value":"`...)
	js = appendSlashEscaped(js, valueB64)
	js = append(js, `","mac":"`...)
	js = append(js, macHex...)
	js = append(js, `"}`...)
	return base64.StdEncoding.EncodeToString(js)
}

// appendSlashEscaped appends base64 text as PHP's json_encode writes it:
// the only character of the base64 alphabet it escapes is '/'.
func appendSlashEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return dst
}
