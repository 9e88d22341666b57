package dataset

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// xBench-DeepSearch publishes its questions encrypted so that they do not
// end up in web crawls: each text cell is base64 of the UTF-8 text XOR-ed
// with the bytes of that row's "canary" string, repeated. The text is
// decrypted here, in memory, and never written back to disk.

// xbenchEncrypted are the columns decrypted at load time. reference_steps
// (the worked solution) stays encrypted in Meta: nothing needs it, and
// results files should not carry it in the clear.
var xbenchEncrypted = []string{"prompt", "answer"}

func decryptXBenchRecord(rec map[string]any, header []string, cols map[string]int) error {
	canary := rec[header[cols["canary"]]].(string)
	if canary == "" {
		return errors.New(`empty "canary" column; it is the key of xBench's encrypted columns`)
	}
	for _, name := range xbenchEncrypted {
		i, ok := cols[name]
		if !ok {
			return fmt.Errorf("encrypted xBench file without a %q column", name)
		}
		plain, err := DecryptXBench(rec[header[i]].(string), canary)
		if err != nil {
			return fmt.Errorf("column %q: %w", header[i], err)
		}
		rec[header[i]] = plain
	}
	return nil
}

// DecryptXBench decrypts one xBench cell: base64-decode, XOR with the
// repeated bytes of key (the row's canary), and check the result is UTF-8.
func DecryptXBench(cell, key string) (string, error) {
	if key == "" {
		return "", errors.New("empty key")
	}
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cell))
	if err != nil {
		return "", fmt.Errorf("not base64: %w", err)
	}
	for i := range data {
		data[i] ^= key[i%len(key)]
	}
	if !utf8.Valid(data) {
		return "", errors.New("decrypts to invalid UTF-8; wrong canary or a damaged file")
	}
	return string(data), nil
}

// EncryptXBench is the inverse of DecryptXBench, for building test files.
// An empty key leaves the text as it is.
func EncryptXBench(plain, key string) string {
	data := []byte(plain)
	if key != "" {
		for i := range data {
			data[i] ^= key[i%len(key)]
		}
	}
	return base64.StdEncoding.EncodeToString(data)
}
