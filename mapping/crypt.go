package mapping

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
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
//     iv" || 0 || id) truncated to 16 bytes. Design rule 4 (docs/design.md)
//     says the same event always carries the same body, so mapping a
//     transaction again (after a crash) must give the same bytes. Laravel's
//     decrypt takes the IV from the payload and accepts any IV, so Faveo
//     still decrypts it.
//     The only thing a fixed IV per id reveals is that two encrypted_ids
//     encrypt the same id, which the payload's "id" field says anyway.
//   - The JSON is the form Faveo's own examples show (Laravel 5.x, which
//     Faveo 4 runs on): keys iv, value, mac, no "tag", and '/' escaped as
//     "\/" (PHP json_encode's default). Laravel 9+ adds "tag":"" and stops
//     escaping '/', but its decrypter accepts payloads without a tag (tag
//     is optional for CBC), and json_decode reads "\/" either way, so every
//     Laravel version decrypts what we emit, and receivers that compare with
//     Faveo's documented bytes see the same shape.
//
// Not safe for concurrent use: it reuses its HMAC state and buffers (it is
// on the mapper's path of every ticket object).
type idEncrypter struct {
	block cipher.Block
	mac   hash.Hash // HMAC-SHA256 under key, Reset before each use
	// scratch buffers
	plain, ct, ivB64, valB64, js, sum []byte
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
	return &idEncrypter{block: block, mac: hmac.New(sha256.New, key)}, nil
}

// appendEncryptedID appends the encrypted_id of ticket id as a JSON string.
func (e *idEncrypter) appendEncryptedID(dst []byte, id int64) []byte {
	e.plain = strconv.AppendInt(e.plain[:0], id, 10)
	dst = append(dst, '"')
	dst = e.appendEncrypted(dst, e.plain)
	return append(dst, '"')
}

var ivLabel = []byte("deskhook encrypted_id iv\x00")

// appendEncrypted appends Crypt::encryptString(plain) (base64: nothing to
// escape in JSON). plain must not alias e's buffers other than e.plain.
func (e *idEncrypter) appendEncrypted(dst, plain []byte) []byte {
	e.mac.Reset()
	e.mac.Write(ivLabel)
	e.mac.Write(plain)
	e.sum = e.mac.Sum(e.sum[:0])
	var iv [aes.BlockSize]byte
	copy(iv[:], e.sum)

	// PKCS#7: always pad, a whole block when the length is a multiple.
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	ct := append(e.ct[:0], plain...)
	for range pad {
		ct = append(ct, byte(pad))
	}
	// CBC by hand: cipher.NewCBCEncrypter allocates on every call.
	prev := iv[:]
	for off := 0; off < len(ct); off += aes.BlockSize {
		blk := ct[off : off+aes.BlockSize]
		subtle.XORBytes(blk, blk, prev)
		e.block.Encrypt(blk, blk)
		prev = blk
	}
	e.ct = ct

	e.ivB64 = base64.StdEncoding.AppendEncode(e.ivB64[:0], iv[:])
	e.valB64 = base64.StdEncoding.AppendEncode(e.valB64[:0], ct)
	e.mac.Reset()
	e.mac.Write(e.ivB64)
	e.mac.Write(e.valB64)
	e.sum = e.mac.Sum(e.sum[:0])
	macSum := e.sum

	js := append(e.js[:0], `{"iv":"`...)
	js = appendSlashEscaped(js, e.ivB64)
	js = append(js, `","value":"`...)
	js = appendSlashEscaped(js, e.valB64)
	js = append(js, `","mac":"`...)
	js = hex.AppendEncode(js, macSum)
	js = append(js, `"}`...)
	e.js = js
	return base64.StdEncoding.AppendEncode(dst, js)
}

// appendSlashEscaped appends base64 text as PHP's json_encode writes it:
// the only character of the base64 alphabet it escapes is '/'.
func appendSlashEscaped(dst []byte, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return dst
}
