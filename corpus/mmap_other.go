//go:build !unix

package corpus

import "os"

// Mapped holds a file's bytes. Without mmap the file is read into memory.
type Mapped struct {
	Data []byte
}

// MapFile reads path into memory (platforms without mmap).
func MapFile(path string) (*Mapped, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return &Mapped{Data: data}, nil
}

func (m *Mapped) adviseRandom() {}

// Close drops the bytes.
func (m *Mapped) Close() error {
	if m != nil {
		m.Data = nil
	}
	return nil
}

// SyncFS is a no-op where syncfs(2) is missing; files are still renamed
// into place atomically.
func SyncFS(dir string) error { return nil }
